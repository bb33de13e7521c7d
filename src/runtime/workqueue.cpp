#include "runtime/workqueue.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace berth::runtime {

WorkQueue::WorkQueue(const Clock& clock, BackoffPolicy policy, std::function<double()> uniform01)
    : clock_(clock), policy_(policy), uniform01_(std::move(uniform01)) {
  if (!uniform01_) {
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    auto mu = std::make_shared<std::mutex>();
    uniform01_ = [rng, mu] {
      std::lock_guard lock(*mu);
      return std::uniform_real_distribution<double>(0.0, 1.0)(*rng);
    };
  }
}

void WorkQueue::add(const std::string& key) {
  std::lock_guard lock(mu_);
  add_locked(key);
}

void WorkQueue::add_locked(const std::string& key) {
  if (shutting_down_) return;
  ++adds_total_;
  if (dirty_.count(key) != 0) return;  // already waiting: duplicates collapse
  dirty_.insert(key);
  if (metrics_) metrics_->adds->inc();
  if (processing_.count(key) != 0) return;  // re-queued by done()
  enqueue_locked(key);
}

void WorkQueue::enqueue_locked(const std::string& key) {
  queue_.push_back(key);
  if (metrics_) {
    queued_at_.emplace(key, clock_.now());
    metrics_->depth->set(static_cast<double>(queue_.size()));
  }
  cv_.notify_one();
}

void WorkQueue::add_after(const std::string& key, Duration delay) {
  std::lock_guard lock(mu_);
  if (shutting_down_) return;
  if (delay <= Duration::zero()) {
    add_locked(key);
    return;
  }
  const TimePoint ready_at = clock_.now() + delay;
  auto it = delayed_ready_at_.find(key);
  if (it != delayed_ready_at_.end() && it->second <= ready_at) return;  // an earlier one waits
  delayed_ready_at_[key] = ready_at;
  delayed_.push(Delayed{ready_at, seq_++, key});
  cv_.notify_all();  // a waiter may need a shorter sleep
}

Duration WorkQueue::backoff_for(int failures, double u) const {
  // base * 2^failures, computed in floating point so large counts saturate at the cap instead of
  // overflowing.
  const double base = static_cast<double>(policy_.base.count());
  const double cap = static_cast<double>(policy_.cap.count());
  double d = base * std::pow(2.0, std::min(failures, 62));
  d = std::min(d, cap);
  if (policy_.jitter > 0) d *= 1.0 - policy_.jitter * u;
  return Duration(static_cast<Duration::rep>(d));
}

void WorkQueue::add_rate_limited(const std::string& key) {
  int n;
  {
    std::lock_guard lock(mu_);
    n = failures_[key]++;
    ++retries_total_;
    if (metrics_) metrics_->retries->inc();
  }
  add_after(key, backoff_for(n, policy_.jitter > 0 ? uniform01_() : 0.0));
}

void WorkQueue::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int WorkQueue::failures(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

Duration WorkQueue::next_backoff(const std::string& key) const {
  return backoff_for(failures(key), 0.0);
}

void WorkQueue::promote_ready_locked(TimePoint now) {
  while (!delayed_.empty() && delayed_.top().ready_at <= now) {
    Delayed d = delayed_.top();
    delayed_.pop();
    auto it = delayed_ready_at_.find(d.key);
    if (it == delayed_ready_at_.end() || it->second != d.ready_at) continue;  // superseded
    delayed_ready_at_.erase(it);
    add_locked(d.key);
  }
}

std::optional<std::string> WorkQueue::pop_locked() {
  if (queue_.empty()) return std::nullopt;
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  dirty_.erase(key);
  processing_.insert(key);
  if (metrics_) {
    const TimePoint now = clock_.now();
    if (auto it = queued_at_.find(key); it != queued_at_.end()) {
      metrics_->queue_duration->observe(std::chrono::duration<double>(now - it->second).count());
      queued_at_.erase(it);
    }
    processing_at_[key] = now;
    metrics_->depth->set(static_cast<double>(queue_.size()));
  }
  return key;
}

std::optional<std::string> WorkQueue::try_get() {
  std::lock_guard lock(mu_);
  if (!shutting_down_) promote_ready_locked(clock_.now());
  if (shutting_down_ && !drain_) return std::nullopt;
  return pop_locked();
}

std::optional<std::string> WorkQueue::get() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (!shutting_down_) promote_ready_locked(clock_.now());
    if (shutting_down_ && !drain_) return std::nullopt;
    if (auto key = pop_locked()) return key;
    if (shutting_down_) return std::nullopt;  // drained
    if (delayed_.empty()) {
      cv_.wait(lock);
    } else {
      // Sleep until the earliest delayed key is due, in slices so a manual clock that moves
      // faster than real time is also noticed.
      const Duration until = delayed_.top().ready_at - clock_.now();
      const Duration slice = std::min<Duration>(until, std::chrono::milliseconds(100));
      if (slice > Duration::zero()) cv_.wait_for(lock, slice);
    }
  }
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (metrics_) {
    if (auto it = processing_at_.find(key); it != processing_at_.end()) {
      metrics_->work_duration->observe(
          std::chrono::duration<double>(clock_.now() - it->second).count());
      processing_at_.erase(it);
    }
  }
  if (dirty_.count(key) != 0) enqueue_locked(key);
}

void WorkQueue::shut_down() {
  std::lock_guard lock(mu_);
  shutting_down_ = true;
  drain_ = false;
  cv_.notify_all();
}

void WorkQueue::shut_down_with_drain() {
  std::lock_guard lock(mu_);
  shutting_down_ = true;
  drain_ = true;
  cv_.notify_all();
}

bool WorkQueue::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutting_down_;
}

QueueStats WorkQueue::stats() const {
  std::lock_guard lock(mu_);
  QueueStats s;
  s.depth = queue_.size();
  s.delayed = delayed_ready_at_.size();
  s.processing = processing_.size();
  s.adds_total = adds_total_;
  s.retries_total = retries_total_;
  return s;
}

void WorkQueue::instrument(metrics::Registry& registry, const std::string& name) {
  const std::vector<std::string> label{name};
  Metrics m{
      &registry.gauge("workqueue_depth", "Current depth of workqueue", {"name"}).with(label),
      &registry
           .counter("workqueue_adds_total", "Total number of adds handled by workqueue", {"name"})
           .with(label),
      &registry
           .histogram("workqueue_queue_duration_seconds",
                      "How long in seconds an item stays in workqueue before being requested",
                      {"name"}, metrics::workqueue_duration_buckets())
           .with(label),
      &registry
           .histogram("workqueue_work_duration_seconds",
                      "How long in seconds processing an item from workqueue takes.", {"name"},
                      metrics::workqueue_duration_buckets())
           .with(label),
      &registry
           .counter("workqueue_retries_total", "Total number of retries handled by workqueue",
                    {"name"})
           .with(label),
      &registry
           .gauge("workqueue_unfinished_work_seconds",
                  "How many seconds of work has been done that is in progress and hasn't been "
                  "observed by work_duration. Large values indicate stuck threads. One can deduce "
                  "the number of stuck threads by observing the rate at which this increases.",
                  {"name"})
           .with(label),
      &registry
           .gauge("workqueue_longest_running_processor_seconds",
                  "How many seconds has the longest running processor for workqueue been running.",
                  {"name"})
           .with(label),
  };
  {
    std::lock_guard lock(mu_);
    metrics_ = m;
    const TimePoint now = clock_.now();
    for (const auto& key : queue_) queued_at_.emplace(key, now);
    for (const auto& key : processing_) processing_at_.emplace(key, now);
    m.depth->set(static_cast<double>(queue_.size()));
  }
  collect_hook_ = registry.on_collect([this] { update_running_gauges(); });
}

void WorkQueue::update_running_gauges() {
  std::lock_guard lock(mu_);
  if (!metrics_) return;
  const TimePoint now = clock_.now();
  double total = 0;
  double longest = 0;
  for (const auto& [key, started] : processing_at_) {
    const double age = std::chrono::duration<double>(now - started).count();
    total += age;
    longest = std::max(longest, age);
  }
  metrics_->unfinished->set(total);
  metrics_->longest->set(longest);
}

}  // namespace berth::runtime
