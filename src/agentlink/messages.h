#pragma once
// The controller <-> agent protocol: versioned JSON messages over a WebSocket (TLS 1.3, mutual
// authentication). Every message is one text frame {"v": 1, "type": "...", ...}.
//
//   agent -> controller: hello, ack, progress, result, status, heartbeat
//   controller -> agent: deploy, restart, remove, heartbeat
//
// Delivery: the controller sends tasks at least once (from its outbox, again after a
// reconnect); the agent acks every task id it receives and applies each id once, answering a
// repeated id with the result it recorded. The password travels only inside DeployTask and
// is never part of any other message, log line or stored record.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"
#include "common/secret.h"
#include "core/types.h"

namespace berth::agentlink {

inline constexpr int kProtocolVersion = 1;

struct RegistryAuth {
  std::vector<std::string> auth_keys;  // auth-file keys (see core image refs)
  std::string username;
  Secret password;
};

// What the agent observes about one app it runs.
struct ObservedApp {
  std::string service_id;
  std::string revision_id;  // serving revision, empty when none
  std::string image_digest;
  int stable_port = 0;    // the app's loopback port (the proxy)
  std::string container;  // container name serving now
  bool healthy = false;
  std::string last_task_id;  // last task applied for this app
};

struct Hello {
  std::string name;
  std::string zone;
  std::string version;
  std::vector<ObservedApp> apps;  // full observed state, re-sent on every (re)connect
};

struct DeployTask {
  std::string task_id;
  std::string service_id;
  std::string revision_id;
  std::int64_t revision = 0;
  std::string image_ref;     // as the user wrote it
  std::string image_digest;  // sha256:...; when set the agent pulls repository@digest
  std::string pull_ref;      // the reference the agent pulls (normalized, pinned when possible)
  int container_port = 0;
  std::map<std::string, std::string> env;
  core::HealthCheck health;
  std::optional<RegistryAuth> auth;  // present only when the image needs a credential
};

struct RestartTask {
  std::string task_id;
  std::string service_id;
};

struct RemoveTask {
  std::string task_id;
  std::string service_id;
};

struct Ack {
  std::string task_id;
};

// How far an image pull has come (docs/agent.md "Pull progress"). Totals are 0 when the agent
// could not learn them (the manifest could not be read): then only bytes_done means anything.
struct PullCounts {
  int layers_done = 0;
  int layers_total = 0;
  std::int64_t bytes_done = 0;
  std::int64_t bytes_total = 0;
  bool operator==(const PullCounts&) const = default;
};

// One step of a running task. `pull` is set on the throttled pull reports (entry.step "pull",
// status "info"); a controller that does not know the field ignores it (docs/agent-link.md).
struct Progress {
  std::string task_id;
  core::DeployLogEntry entry;
  std::optional<PullCounts> pull;
};

struct TaskResult {
  std::string task_id;
  std::string service_id;
  std::string revision_id;
  bool ok = false;
  std::string error;  // one sentence when !ok
  std::string image_digest;
  int stable_port = 0;
  std::vector<core::DeployLogEntry> logs;
};

struct Heartbeat {
  std::int64_t sent_at_ms = 0;
};

// What the agent's continuous probe observes about an app it serves, sent when it changes
// (after cutover the agent keeps probing every app; a state is reported once it has held for
// the agent's threshold of consecutive probes, so one slow answer is not news).
enum class AppState { kRunning, kUnhealthy, kMissing };
const char* to_string(AppState s);  // "running" | "unhealthy" | "missing"
std::optional<AppState> parse_app_state(std::string_view text);

struct AppStatus {
  std::string service_id;
  std::string revision_id;  // the revision the agent serves for this app
  std::string container;    // the serving container's name ("" when missing)
  AppState state = AppState::kRunning;
  std::string detail;  // one sentence: why unhealthy or missing ("" when running)
  std::int64_t observed_at_ms = 0;
};

using Message = std::variant<Hello, DeployTask, RestartTask, RemoveTask, Ack, Progress, TaskResult,
                             AppStatus, Heartbeat>;

// Which side may send which message; a frame of the other side's kind is a protocol error.
bool agent_may_send(const Message& m);       // hello, ack, progress, result, status, heartbeat
bool controller_may_send(const Message& m);  // deploy, restart, remove, heartbeat

// Encodes one message as a JSON text frame. The only function that ever writes a password
// (DeployTask::auth) into bytes: the frame goes straight to the TLS stream and is wiped after.
std::string encode(const Message& message);
// Decodes a frame: unknown type, wrong version, wrong field types, missing fields and frames
// over 1 MiB are errors naming the problem.
Result<Message> decode(std::string_view frame);

}  // namespace berth::agentlink
