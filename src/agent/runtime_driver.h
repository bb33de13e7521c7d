#pragma once
// RuntimeDriver: the container runtime as the agent needs it. PodmanDriver (podman_driver.h)
// is the real one; unit tests use a fake. No method ever receives a password: a pull gets the
// path of an auth file (auth_file.h) instead.
//
// Contract: every call is bounded by a deadline chosen by the implementation; errors are values
// whose message is one sentence carrying the runtime's own reason (e.g. "unauthorized: ...").
// Implementations are thread-safe.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace berth::agent {

// Labels every berth container carries.
inline constexpr const char* kLabelService = "berth.service";
inline constexpr const char* kLabelRevision = "berth.revision";
inline constexpr const char* kLabelTask = "berth.task";

struct PullRequest {
  std::string image;     // repository@sha256:... or repository:tag
  std::string authfile;  // empty: anonymous pull
  std::string cert_dir;  // empty: system trust only
  // Pull progress (pull_progress.h): a fresh, empty directory the runtime writes the blobs of
  // this pull into (podman's TMPDIR), and a callback given, every few hundred milliseconds while
  // the pull runs, the sizes of the files in it. Both empty/null: no progress.
  std::string tmp_dir;
  std::function<void(const std::vector<std::int64_t>& blob_sizes)> on_blobs;
};

struct ContainerSpec {
  std::string name;
  std::string image;
  int host_port = 0;  // published as 127.0.0.1:host_port:container_port
  int container_port = 0;
  std::string env_file;  // empty: no environment
  std::map<std::string, std::string> labels;
  // Seconds between SIGTERM and SIGKILL when the container is stopped or force-removed.
  int stop_grace_seconds = 10;
};

struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;
  std::string state;  // "running", "exited", "created", ...
  std::map<std::string, std::string> labels;
  bool running() const { return state == "running"; }
};

class RuntimeDriver {
 public:
  virtual ~RuntimeDriver() = default;
  // Returns the image id.
  virtual Result<std::string> pull(const PullRequest& request) = 0;
  // The id of `image` (repository@sha256:... or repository:tag) when local storage holds it;
  // nullopt when it does not. Reads local storage only: no registry, no credentials.
  virtual Result<std::optional<std::string>> local_image(const std::string& image) = 0;
  // Creates and starts a detached container, with an init process as PID 1 (so SIGTERM reaches
  // the app: a process that is PID 1 ignores signals it installed no handler for); returns its
  // id.
  virtual Result<std::string> run(const ContainerSpec& spec) = 0;
  // kNotFound when no such container exists.
  virtual Result<ContainerInfo> inspect(const std::string& name) = 0;
  // All containers (running or not) carrying label key=value; value empty: any value.
  virtual Result<std::vector<ContainerInfo>> list_by_label(const std::string& key,
                                                           const std::string& value) = 0;
  virtual Status stop(const std::string& name, int grace_seconds) = 0;
  // Idempotent: removing a missing container is not an error.
  virtual Status remove(const std::string& name) = 0;
  virtual Status restart(const std::string& name) = 0;
  virtual Result<std::string> logs_tail(const std::string& name, int lines) = 0;
};

}  // namespace berth::agent
