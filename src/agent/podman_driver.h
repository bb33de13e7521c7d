#pragma once
// PodmanDriver: RuntimeDriver over the podman CLI, run as a child process with an argv vector
// (no shell). The child inherits the agent's environment, which never contains a secret; pulls
// authenticate with `--authfile FILE` only, never with credentials on the command line.
// Thread-safe.
#include <chrono>
#include <string>

#include "agent/runtime_driver.h"

namespace berth::agent {

struct PodmanOptions {
  std::string command = "podman";
  std::chrono::milliseconds call_deadline{60'000};
  std::chrono::milliseconds pull_deadline{600'000};
  // How often a pull with progress measures its temporary directory.
  std::chrono::milliseconds progress_interval{250};
};

class PodmanDriver final : public RuntimeDriver {
 public:
  explicit PodmanDriver(PodmanOptions options = {});

  Result<std::string> pull(const PullRequest& request) override;
  // `podman image inspect --format {{.Id}} IMAGE`; podman's "image not known" is nullopt.
  Result<std::optional<std::string>> local_image(const std::string& image) override;
  Result<std::string> run(const ContainerSpec& spec) override;
  Result<ContainerInfo> inspect(const std::string& name) override;
  Result<std::vector<ContainerInfo>> list_by_label(const std::string& key,
                                                   const std::string& value) override;
  Status stop(const std::string& name, int grace_seconds) override;
  Status remove(const std::string& name) override;
  Status restart(const std::string& name) override;
  Result<std::string> logs_tail(const std::string& name, int lines) override;

 private:
  PodmanOptions options_;
};

// The one-sentence reason of a failed podman call: the last non-empty stderr line without the
// "Error: " prefix, bounded in length. Exposed for tests.
std::string podman_reason(const std::string& stderr_text, const std::string& fallback);

}  // namespace berth::agent
