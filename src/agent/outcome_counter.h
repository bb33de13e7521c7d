#pragma once
// Counts each deploy task's outcome once. The controller re-sends a task it has no result for
// (after a reconnect, or a result lost on the way), and the agent answers it again from its
// record: that second answer is the same outcome, not another deploy, so it must not count again.
//
// received(id) when a DeployTask arrives, answered(id, ok) when its TaskResult goes out. An id
// counts at its first answer after a receipt; ids already counted are remembered (the last
// `remember` of them, oldest forgotten first) so that a re-sent task is not counted twice.
// Memory is bounded by `remember` plus the tasks received and not yet answered.
//
// Thread-safe: received and answered may be called from different threads.
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_set>

#include "common/metrics.h"

namespace berth::agent {

class OutcomeCounter {
 public:
  OutcomeCounter(metrics::Counter& succeeded, metrics::Counter& failed,
                 std::size_t remember = 4096);

  void received(const std::string& task_id);
  void answered(const std::string& task_id, bool ok);

 private:
  metrics::Counter& succeeded_;
  metrics::Counter& failed_;
  const std::size_t remember_;
  std::mutex mu_;
  std::unordered_set<std::string> open_;     // received, not yet answered
  std::unordered_set<std::string> counted_;  // answered and counted
  std::deque<std::string> counted_order_;    // oldest first, for forgetting
};

}  // namespace berth::agent
