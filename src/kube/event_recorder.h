#pragma once
// Records events.k8s.io/v1 Events about berth's objects (the AppService) the way client-go's
// events.k8s.io recorder does, so `kubectl describe` and `kubectl get events` explain what the
// controller did.
//
// What it promises:
//   - record() never blocks and never fails: it puts the event on a bounded queue that one
//     thread drains. A full queue drops the event with a log line and counts it.
//   - Aggregation: an event with the same regarding object (uid, else namespace/name), action,
//     reason, type and note as one written within `aggregation_window` of its last occurrence
//     is not a new object: the existing Event gets `series: {count, lastObservedTime}` by a
//     merge patch. After the window a new Event starts. If the Event has gone (TTL), a new one
//     is created.
//   - Rate limit per regarding object (a token bucket, by default client-go's spam filter: burst
//     25, then one every 5 minutes), so a crash loop cannot flood the API server. A limited new
//     event is dropped and counted; a limited repeat is still counted in its series and the
//     count is written with the next repeat that gets through.
//   - Fields: reportingController `berth.dev/controller`, reportingInstance (the elector's
//     identity), eventTime with microseconds, reason and action as given (CamelCase by
//     convention, cut at 128 bytes), note cut at 1 KiB on a UTF-8 boundary. The note is shown to
//     anyone who can read events: callers pass constant text plus safe fields, never a secret.
//   - Writes are bounded by `request_timeout`; failures are logged and counted, not retried.
//
// Threading: record() and stats() from any thread. The drain thread starts in the constructor
// unless `start_thread` is false (unit tests then call process_pending() on their own thread);
// the destructor gives what is queued one request timeout to be written, drops (and counts) the
// rest, and joins the thread.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "kube/rate_limiter.h"
#include "kube/transport.h"
#include "kube/types.h"

namespace berth::kube {

// metav1.MicroTime: "2026-11-27T21:00:00.123456Z" (always six digits).
std::string format_micro_time(std::chrono::system_clock::time_point t);

enum class EventType { kNormal, kWarning };

// The regarding reference to an AppService (apiVersion, kind, namespace, name, uid,
// resourceVersion).
ObjectReference regarding(const AppService& app);

struct EventRecorderOptions {
  std::string reporting_controller = "berth.dev/controller";
  std::string reporting_instance;  // the controller's identity (LeaderElector::identity())
  std::chrono::milliseconds aggregation_window{std::chrono::minutes(6)};
  std::size_t queue_capacity = 1000;
  double per_object_qps = 1.0 / 300.0;
  int per_object_burst = 25;
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  bool start_thread = true;
  // Injected for tests.
  std::function<std::chrono::steady_clock::time_point()> now = [] {
    return std::chrono::steady_clock::now();
  };
  std::function<std::chrono::system_clock::time_point()> wall_now = [] {
    return std::chrono::system_clock::now();
  };
};

struct EventRecorderStats {
  std::uint64_t created = 0;
  std::uint64_t aggregated = 0;  // series patches written
  std::uint64_t dropped_queue_full = 0;
  std::uint64_t dropped_rate_limited = 0;
  std::uint64_t failed = 0;  // writes the server refused or that did not complete
};

class EventRecorder {
 public:
  EventRecorder(Transport& transport, EventRecorderOptions options);
  ~EventRecorder();
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  void record(const ObjectReference& regarding, EventType type, std::string_view reason,
              std::string_view action, std::string_view note);

  // Writes everything queued, on the calling thread (for tests without the drain thread).
  void process_pending();
  // Blocks until the queue is empty and the drain thread is idle (tests, shutdown).
  void flush();
  EventRecorderStats stats() const;
  // What the destructor does: one request timeout for the queue, the rest dropped and counted,
  // the drain thread joined. record() after it queues nothing that will be written.
  void shutdown();

 private:
  struct Pending {
    Event event;
    std::chrono::steady_clock::time_point at;
    std::chrono::system_clock::time_point wall;
  };
  struct Series {
    std::string namespace_;
    std::string name;  // the Event object
    int count = 1;     // occurrences so far
    int written = 1;   // the count the server has
    std::chrono::steady_clock::time_point last_seen;
  };

  void drain(std::stop_token stop);
  void write(Pending pending);
  bool allow(const std::string& object_key);
  bool create_event(Pending& pending, const std::string& key);
  void forget_old(std::chrono::steady_clock::time_point now);

  Transport& transport_;
  EventRecorderOptions options_;

  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Pending> queue_;
  bool busy_ = false;
  EventRecorderStats stats_;

  // Drain-thread state (or the caller of process_pending()).
  std::map<std::string, Series> series_;                          // by aggregation key
  std::map<std::string, std::unique_ptr<RateLimiter>> limiters_;  // by regarding object
  std::uint64_t name_counter_ = 0;

  std::jthread thread_;
};

}  // namespace berth::kube
