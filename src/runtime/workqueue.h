#pragma once
// A rate-limited work queue with client-go semantics (k8s.io/client-go/util/workqueue):
//   - a key is never handed to two workers at once: while a key is being processed, adding it
//     again marks it dirty and it is queued again when the worker calls done();
//   - duplicates collapse: a key waiting in the queue is queued once however often it is added;
//   - add_rate_limited(key) re-adds after a per-key exponential backoff (base doubling per
//     failure, capped, with jitter); forget(key) resets the key's failure count;
//   - add_after(key, d) re-adds after a delay (a later, longer add_after does not postpone an
//     earlier one);
//   - shut_down() wakes every get() waiter; with drain, get() keeps handing out queued keys until
//     the queue is empty, then returns nullopt.
// Thread-safe. Time comes from a Clock so that tests drive it by hand (try_get never blocks).
//
// instrument() publishes client-go's workqueue metrics (workqueue_depth, _adds_total,
// _queue_duration_seconds, _work_duration_seconds, _retries_total, _unfinished_work_seconds,
// _longest_running_processor_seconds, all labelled {name}) into a registry, with client-go's
// meaning: an add counts when it is not collapsed into a waiting duplicate, queue duration runs
// from the add to get(), work duration from get() to done(), and the two "running" gauges are
// computed on each scrape from the keys being processed. Call it once, before the queue is used.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/metrics.h"
#include "runtime/clock.h"

namespace berth::runtime {

struct BackoffPolicy {
  Duration base = std::chrono::milliseconds(5);
  Duration cap = std::chrono::seconds(300);
  // Each delay is multiplied by a factor drawn uniformly from [1 - jitter, 1]. 0 disables it.
  double jitter = 0.1;
};

struct QueueStats {
  std::size_t depth = 0;    // keys ready to be handed out
  std::size_t delayed = 0;  // keys waiting for their delay
  std::size_t processing = 0;
  std::uint64_t adds_total = 0;
  std::uint64_t retries_total = 0;
};

class WorkQueue {
 public:
  // `uniform01` returns numbers in [0, 1) for jitter; defaults to a seeded PRNG.
  WorkQueue(const Clock& clock, BackoffPolicy policy, std::function<double()> uniform01 = nullptr);

  void add(const std::string& key);
  void add_after(const std::string& key, Duration delay);
  void add_rate_limited(const std::string& key);
  void forget(const std::string& key);
  int failures(const std::string& key) const;
  // The delay add_rate_limited would use for the key's next failure (without recording it).
  Duration next_backoff(const std::string& key) const;

  // Blocks until a key is ready or the queue shuts down (nullopt).
  std::optional<std::string> get();
  // Never blocks: a ready key, or nullopt.
  std::optional<std::string> try_get();
  void done(const std::string& key);

  void shut_down();             // stop now: waiters return nullopt
  void shut_down_with_drain();  // waiters get what is queued, then nullopt
  bool shutting_down() const;

  QueueStats stats() const;

  // `name` is the queue's label value (a constant such as the controller's name). The registry
  // must outlive the queue.
  void instrument(metrics::Registry& registry, const std::string& name);

 private:
  struct Metrics {
    metrics::Gauge* depth;
    metrics::Counter* adds;
    metrics::Histogram* queue_duration;
    metrics::Histogram* work_duration;
    metrics::Counter* retries;
    metrics::Gauge* unfinished;
    metrics::Gauge* longest;
  };
  struct Delayed {
    TimePoint ready_at;
    std::uint64_t seq;
    std::string key;
    bool operator>(const Delayed& o) const {
      return ready_at != o.ready_at ? ready_at > o.ready_at : seq > o.seq;
    }
  };

  void add_locked(const std::string& key);
  void enqueue_locked(const std::string& key);
  void update_running_gauges();
  void promote_ready_locked(TimePoint now);
  std::optional<std::string> pop_locked();
  Duration backoff_for(int failures, double u) const;

  const Clock& clock_;
  BackoffPolicy policy_;
  std::function<double()> uniform01_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::unordered_set<std::string> dirty_;
  std::unordered_set<std::string> processing_;
  std::priority_queue<Delayed, std::vector<Delayed>, std::greater<>> delayed_;
  std::unordered_map<std::string, TimePoint> delayed_ready_at_;  // earliest per key
  std::unordered_map<std::string, int> failures_;
  std::uint64_t seq_ = 0;
  std::uint64_t adds_total_ = 0;
  std::uint64_t retries_total_ = 0;
  bool shutting_down_ = false;
  bool drain_ = false;
  // Metrics (instrument()); empty maps and no cost when the queue is not instrumented.
  std::optional<Metrics> metrics_;
  std::unordered_map<std::string, TimePoint> queued_at_;      // keys in queue_
  std::unordered_map<std::string, TimePoint> processing_at_;  // keys in processing_
  metrics::Registry::Hook collect_hook_;  // last: unregistered before the members it reads go
};

}  // namespace berth::runtime
