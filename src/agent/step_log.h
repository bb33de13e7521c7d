#pragma once
// StepLog: the deploy log of one task. Each entry is bounded (bounded_log.h), kept, and
// reported as progress the moment it is written. Internal to the Deployer; not thread-safe.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "agent/bounded_log.h"
#include "agentlink/messages.h"
#include "core/types.h"

namespace berth::agent {

class StepLog {
 public:
  using Progress = std::function<void(const core::DeployLogEntry&)>;
  using PullProgress =
      std::function<void(const core::DeployLogEntry&, const agentlink::PullCounts&)>;
  StepLog(const std::function<core::UnixMillis()>& now, const Progress& progress,
          const PullProgress* pull_progress = nullptr)
      : now_(now), progress_(progress), pull_progress_(pull_progress) {}

  // A step that has started; finish it with ok()/failed().
  struct Step {
    std::string name;
    core::UnixMillis started_at = 0;
  };
  Step begin(std::string name) { return Step{std::move(name), now_()}; }
  void ok(const Step& s, std::string message, std::string detail = {}) {
    add(s, "ok", std::move(message), std::move(detail));
  }
  void failed(const Step& s, std::string message, std::string detail = {}) {
    add(s, "failed", std::move(message), std::move(detail));
  }
  void info(const Step& s, std::string message, std::string detail = {}) {
    add(s, "info", std::move(message), std::move(detail));
  }
  // A throttled pull report: an "info" entry of step `s` that also goes out with its counts
  // (through the pull callback when there is one, else as a plain entry).
  void pull(const Step& s, std::string message, const agentlink::PullCounts& counts) {
    auto e = make(s, "info", std::move(message), {});
    entries_.push_back(e);
    if (pull_progress_ != nullptr && *pull_progress_) {
      (*pull_progress_)(e, counts);
    } else if (progress_) {
      progress_(e);
    }
  }
  const std::vector<core::DeployLogEntry>& entries() const { return entries_; }

 private:
  core::DeployLogEntry make(const Step& s, const char* status, std::string message,
                            std::string detail) {
    core::DeployLogEntry e;
    e.step = s.name;
    e.status = status;
    e.message = std::move(message);
    e.detail = std::move(detail);
    e.started_at = s.started_at;
    e.duration_ms = std::max<std::int64_t>(0, now_() - s.started_at);
    return bounded_entry(std::move(e));
  }
  void add(const Step& s, const char* status, std::string message, std::string detail) {
    core::DeployLogEntry e = make(s, status, std::move(message), std::move(detail));
    entries_.push_back(e);
    if (progress_) progress_(e);
  }
  const std::function<core::UnixMillis()>& now_;
  const Progress& progress_;
  const PullProgress* pull_progress_;
  std::vector<core::DeployLogEntry> entries_;
};

}  // namespace berth::agent
