#include "agent/outcome_counter.h"

namespace berth::agent {

OutcomeCounter::OutcomeCounter(metrics::Counter& succeeded, metrics::Counter& failed,
                               std::size_t remember)
    : succeeded_(succeeded), failed_(failed), remember_(remember == 0 ? 1 : remember) {}

void OutcomeCounter::received(const std::string& task_id) {
  std::lock_guard lock(mu_);
  if (counted_.count(task_id) != 0) return;  // a re-sent task: its outcome is already counted
  open_.insert(task_id);
}

void OutcomeCounter::answered(const std::string& task_id, bool ok) {
  std::lock_guard lock(mu_);
  if (open_.erase(task_id) == 0) return;
  (ok ? succeeded_ : failed_).inc();
  counted_.insert(task_id);
  counted_order_.push_back(task_id);
  while (counted_order_.size() > remember_) {
    counted_.erase(counted_order_.front());
    counted_order_.pop_front();
  }
}

}  // namespace berth::agent
