#pragma once
// The reconcile loop runner: N workers take keys from a WorkQueue and call a reconcile function;
// its outcome decides, in one place, what happens to the key next (as controller-runtime's
// Result + TerminalError):
//   kDone            forget the key's failures; nothing queued
//   kRequeueAfter    forget failures, re-add after `after`
//   kRetry           re-add with per-key exponential backoff (a retryable error)
//   kTerminal        forget; the error is recorded by the reconciler, nothing retried
// A resync thread re-adds every key from `list_keys` each `resync_period` (level-triggered
// safety net; per-event work never scans everything). stop() drains: queued keys are finished,
// in-flight reconciles complete, then the workers exit.
// Each reconcile call runs inside a log::ScopedFields holding a fresh `reconcile_id` (16 hex
// digits): every line logged on the worker thread during that call carries it.
// Metrics: the constructor publishes controller-runtime's controller_runtime_* metrics labelled
// {controller=options.name} and instruments the queue (workqueue.h) with name=options.name.
// Results map as controller-runtime's: kDone success, kRequeueAfter requeue_after, kRetry and
// kTerminal error (both also count in reconcile_errors_total; kTerminal in
// terminal_reconcile_errors_total); "requeue" (immediate, without error) is never produced.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "runtime/workqueue.h"

namespace berth::runtime {

struct ReconcileOutcome {
  enum class Kind { kDone, kRequeueAfter, kRetry, kTerminal };
  Kind kind = Kind::kDone;
  Duration after{};
  std::string reason;  // for logs: why this outcome

  static ReconcileOutcome done() { return {}; }
  static ReconcileOutcome requeue_after(Duration d, std::string why) {
    return {Kind::kRequeueAfter, d, std::move(why)};
  }
  static ReconcileOutcome retry(std::string why) { return {Kind::kRetry, {}, std::move(why)}; }
  static ReconcileOutcome terminal(std::string why) {
    return {Kind::kTerminal, {}, std::move(why)};
  }
};

using ReconcileFn = std::function<ReconcileOutcome(const std::string& key)>;

struct ControllerOptions {
  std::string name = "appservice";
  int workers = 2;
  Duration resync_period = std::chrono::minutes(5);  // 0 disables the resync thread
  std::function<std::vector<std::string>()> list_keys;
  // Where the metrics go; null: metrics::process_registry(). Must outlive the controller.
  metrics::Registry* metrics = nullptr;
};

struct ReconcileCounters {
  std::uint64_t success = 0;  // kDone
  std::uint64_t requeue_after = 0;
  std::uint64_t error = 0;  // kRetry
  std::uint64_t terminal = 0;
  double seconds_total = 0;  // total time spent in reconcile
};

class Controller {
 public:
  Controller(WorkQueue& queue, ReconcileFn reconcile, ControllerOptions options);
  ~Controller();

  void start();
  // Drains the queue and joins the workers. Idempotent.
  void stop();
  // Processes one key synchronously on the caller's thread if one is ready (tests).
  bool process_one();
  // Re-adds every key now (what the resync thread does periodically).
  void resync_now();

  ReconcileCounters counters() const;
  // True from start() until stop() begins: the workers take keys. Readiness reads it.
  bool running() const;

 private:
  void worker_loop();
  void resync_loop();
  void handle(const std::string& key);

  WorkQueue& queue_;
  ReconcileFn reconcile_;
  ControllerOptions options_;
  std::vector<std::thread> workers_;
  std::thread resync_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  bool started_ = false;
  mutable std::mutex counters_mu_;
  ReconcileCounters counters_;
  struct Metrics {
    metrics::Counter* success;
    metrics::Counter* error;
    metrics::Counter* requeue_after;
    metrics::Counter* errors;
    metrics::Counter* terminal_errors;
    metrics::Histogram* time;
    metrics::Gauge* active;
  };
  Metrics metrics_;
};

}  // namespace berth::runtime
