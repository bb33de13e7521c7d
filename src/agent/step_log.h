#pragma once
// StepLog: the deploy log of one task. Each entry is bounded (bounded_log.h), kept, and
// reported as progress the moment it is written. Internal to the Deployer; not thread-safe.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "agent/bounded_log.h"
#include "core/types.h"

namespace berth::agent {

class StepLog {
 public:
  using Progress = std::function<void(const core::DeployLogEntry&)>;
  StepLog(const std::function<core::UnixMillis()>& now, const Progress& progress)
      : now_(now), progress_(progress) {}

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
  const std::vector<core::DeployLogEntry>& entries() const { return entries_; }

 private:
  void add(const Step& s, const char* status, std::string message, std::string detail) {
    core::DeployLogEntry e;
    e.step = s.name;
    e.status = status;
    e.message = std::move(message);
    e.detail = std::move(detail);
    e.started_at = s.started_at;
    e.duration_ms = std::max<std::int64_t>(0, now_() - s.started_at);
    e = bounded_entry(std::move(e));
    entries_.push_back(e);
    if (progress_) progress_(e);
  }
  const std::function<core::UnixMillis()>& now_;
  const Progress& progress_;
  std::vector<core::DeployLogEntry> entries_;
};

}  // namespace berth::agent
