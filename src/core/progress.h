#pragma once
// RolloutProgress: how far a running rollout has come, as the controller shows it in an app's
// status while the agent works (docs/api.md "progress", docs/kubernetes.md). Memory only: it
// comes from the agent's progress reports and is never stored; it disappears when the rollout
// ends (the task's result arrives) or the agent disconnects.
#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace berth::core {

struct RolloutProgress {
  std::string task_id;
  std::string step;  // the step the agent reported last: "pull", "start", "probe", ...
  int layers_done = 0;
  int layers_total = 0;  // 0: the agent could not learn the totals
  std::int64_t bytes_done = 0;
  std::int64_t bytes_total = 0;
  UnixMillis updated_at = 0;
  // The entries the agent reported for this task so far (bounded), for the deploy logs of the
  // revision being rolled out while its outcome is not recorded yet.
  std::vector<DeployLogEntry> entries;
};

}  // namespace berth::core
