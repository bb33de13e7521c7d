#include "agent/app_watch.h"

#include <algorithm>

namespace berth::agent {

using agentlink::AppState;

std::optional<AppState> AppWatch::observe(const Observation& o, const WatchThresholds& t) {
  auto become = [&](AppState s) -> std::optional<AppState> {
    if (s == state_) return std::nullopt;
    state_ = s;
    detail_ = s == AppState::kRunning ? std::string() : o.detail;
    return s;
  };
  switch (o.kind) {
    case Observation::Kind::kUnknown:
      return std::nullopt;
    case Observation::Kind::kMissing:
      failures_ = successes_ = 0;
      return become(AppState::kMissing);
    case Observation::Kind::kUnhealthy:
      // From running, or from missing when the container came back but does not answer.
      successes_ = 0;
      if (++failures_ >= std::max(1, t.unhealthy)) return become(AppState::kUnhealthy);
      return std::nullopt;
    case Observation::Kind::kHealthy:
      failures_ = 0;
      if (++successes_ >= std::max(1, t.healthy)) return become(AppState::kRunning);
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace berth::agent
