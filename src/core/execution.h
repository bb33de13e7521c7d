#pragma once
// Ports the reconciler uses to act on the world, implemented by adapters and wired in the
// composition root: the agent link (send a task to a connected agent) and the registry client
// (resolve a tag to a digest). Also the event records the agent link hands to the reconciler.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/secret.h"
#include "core/types.h"

namespace berth::core {

// Everything an agent needs to deploy one revision, except the password, which travels beside
// it as a Secret and only inside the encrypted agent link.
struct DeployOrder {
  std::string task_id;
  std::string service_id;
  std::string revision_id;
  std::int64_t revision = 0;
  std::string image_ref;     // as the user wrote it
  std::string image_digest;  // sha256:...
  std::string pull_ref;      // what the agent pulls: repository@digest when the digest is known
  int container_port = 0;
  std::map<std::string, std::string> env;
  HealthCheck health;
  std::vector<std::string> auth_keys;  // empty: public image
  std::string username;
};

class AgentGateway {
 public:
  virtual ~AgentGateway() = default;
  // kUnavailable when the agent is not connected (the outbox keeps the task for later).
  virtual Status send_deploy(const std::string& agent, const DeployOrder& order,
                             const Secret* password) = 0;
  virtual Status send_restart(const std::string& agent, const std::string& task_id,
                              const std::string& service_id) = 0;
  virtual Status send_remove(const std::string& agent, const std::string& task_id,
                             const std::string& service_id) = 0;
};

struct RegistryLogin {
  std::string username;
  Secret password;
};

class DigestResolver {
 public:
  virtual ~DigestResolver() = default;
  // The manifest digest of `image_ref`. kPermissionDenied: the registry refused the credential;
  // kNotFound: no such image or tag; kUnavailable / kDeadlineExceeded: try again later.
  virtual Result<std::string> resolve(const std::string& image_ref, const RegistryLogin* login) = 0;
};

// What an agent reports when it finishes a task.
struct TaskOutcome {
  std::string task_id;
  std::string service_id;
  std::string revision_id;
  bool ok = false;
  std::string error;
  std::string image_digest;
  int stable_port = 0;
  std::vector<DeployLogEntry> logs;
};

// What an agent's continuous probe reports about one app it serves, when that changes.
enum class AppState { kRunning, kUnhealthy, kMissing };
struct AppReport {
  std::string service_id;
  std::string revision_id;
  AppState state = AppState::kRunning;
  std::string detail;  // why unhealthy or missing, one sentence
};

}  // namespace berth::core
