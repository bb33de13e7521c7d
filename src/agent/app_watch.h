#pragma once
// AppWatch: the agent's running judgement of one app it serves, fed one observation at a time
// (the Deployer's watch round: does the serving container exist and run, and does it answer
// its health check). It decides when the app's reported state changes:
//
//   missing    at the first observation that the container is gone or not running: that is
//              a fact, not a flaky answer, and the controller's remedy (a redeploy) is the same
//              however long we wait;
//   unhealthy  after `unhealthy` consecutive failed health checks of a running container (the
//              agent's --unhealthy-threshold, default 3: the app model has only a success
//              threshold, whose default of 1 would turn one slow answer into a redeploy);
//   running    again after the app's `healthy_threshold` consecutive successful checks.
//
// An observation that could not be made (podman itself failed) changes nothing. Pure and not
// thread-safe: the Deployer guards it.
#include <optional>
#include <string>

#include "agentlink/messages.h"

namespace berth::agent {

struct Observation {
  enum class Kind { kHealthy, kUnhealthy, kMissing, kUnknown };
  Kind kind = Kind::kUnknown;
  std::string detail;  // one sentence: why unhealthy, missing or unknown
};

struct WatchThresholds {
  int healthy = 1;    // consecutive successes that bring a failed app back to running
  int unhealthy = 3;  // consecutive failures that make a running app unhealthy
};

class AppWatch {
 public:
  explicit AppWatch(agentlink::AppState initial = agentlink::AppState::kRunning,
                    std::string detail = {})
      : state_(initial), detail_(std::move(detail)) {}

  // Takes one observation; returns the new state when it changed.
  std::optional<agentlink::AppState> observe(const Observation& o, const WatchThresholds& t);

  agentlink::AppState state() const { return state_; }
  const std::string& detail() const { return detail_; }

 private:
  agentlink::AppState state_;
  std::string detail_;
  int failures_ = 0;
  int successes_ = 0;
};

}  // namespace berth::agent
