#include "runtime/controller.h"

#include <chrono>
#include <cstdint>
#include <random>

#include "common/hex.h"
#include "common/log.h"

namespace berth::runtime {
namespace {

// 16 hex digits, fresh for every reconcile call, so an operator can pick one reconcile's lines
// out of interleaved workers. 64 random bits make a repeat within one log practically impossible;
// no ordering or secrecy is promised (a per-thread PRNG seeded once, not a CSPRNG per call).
std::string new_reconcile_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const std::uint64_t value = rng();
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(value >> (56 - 8 * i));
  return hex_lower(bytes, sizeof bytes);
}

}  // namespace

Controller::Controller(WorkQueue& queue, ReconcileFn reconcile, ControllerOptions options)
    : queue_(queue), reconcile_(std::move(reconcile)), options_(std::move(options)) {
  metrics::Registry& r =
      options_.metrics != nullptr ? *options_.metrics : metrics::process_registry();
  const std::string& name = options_.name;
  auto& total =
      r.counter("controller_runtime_reconcile_total",
                "Total number of reconciliations per controller", {"controller", "result"});
  // All four results exist from the start (as controller-runtime does), so a rate() over them
  // has a series before the first error.
  total.with({name, "requeue"});
  metrics_.success = &total.with({name, "success"});
  metrics_.error = &total.with({name, "error"});
  metrics_.requeue_after = &total.with({name, "requeue_after"});
  metrics_.errors =
      &r.counter("controller_runtime_reconcile_errors_total",
                 "Total number of reconciliation errors per controller", {"controller"})
           .with({name});
  metrics_.terminal_errors =
      &r.counter("controller_runtime_terminal_reconcile_errors_total",
                 "Total number of terminal reconciliation errors per controller", {"controller"})
           .with({name});
  metrics_.time = &r.histogram("controller_runtime_reconcile_time_seconds",
                               "Length of time per reconciliation per controller", {"controller"},
                               metrics::reconcile_time_buckets())
                       .with({name});
  metrics_.active = &r.gauge("controller_runtime_active_workers",
                             "Number of currently used workers per controller", {"controller"})
                         .with({name});
  r.gauge("controller_runtime_max_concurrent_reconciles",
          "Maximum number of concurrent reconciles per controller", {"controller"})
      .with({name})
      .set(options_.workers);
  queue_.instrument(r, name);
}

Controller::~Controller() { stop(); }

void Controller::start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
  if (options_.resync_period > Duration::zero() && options_.list_keys) {
    resync_ = std::thread([this] { resync_loop(); });
  }
}

void Controller::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  queue_.shut_down_with_drain();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  if (resync_.joinable()) resync_.join();
}

bool Controller::running() const {
  std::lock_guard lock(mu_);
  return started_ && !stopping_;
}

void Controller::worker_loop() {
  while (auto key = queue_.get()) {
    handle(*key);
  }
}

bool Controller::process_one() {
  auto key = queue_.try_get();
  if (!key) return false;
  handle(*key);
  return true;
}

void Controller::handle(const std::string& key) {
  // Every line logged on this thread during this call, the reconciler's included, carries the
  // same reconcile_id.
  log::ScopedFields scope({{"reconcile_id", new_reconcile_id()}});
  const auto started = std::chrono::steady_clock::now();
  metrics_.active->add(1);
  ReconcileOutcome outcome;
  try {
    outcome = reconcile_(key);
  } catch (const std::exception& e) {
    // A reconciler must not throw; treat it as a retryable failure so the key is not lost.
    log::error("reconcile threw",
               {{"controller", options_.name}, {"key", key}, {"error", e.what()}});
    outcome = ReconcileOutcome::retry("reconciler threw an exception");
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  metrics_.active->add(-1);
  metrics_.time->observe(seconds);
  const auto duration_ms = static_cast<std::int64_t>(seconds * 1000);
  {
    std::lock_guard lock(counters_mu_);
    counters_.seconds_total += seconds;
    switch (outcome.kind) {
      case ReconcileOutcome::Kind::kDone:
        ++counters_.success;
        metrics_.success->inc();
        break;
      case ReconcileOutcome::Kind::kRequeueAfter:
        ++counters_.requeue_after;
        metrics_.requeue_after->inc();
        break;
      case ReconcileOutcome::Kind::kRetry:
        ++counters_.error;
        metrics_.error->inc();
        metrics_.errors->inc();
        break;
      case ReconcileOutcome::Kind::kTerminal:
        ++counters_.terminal;
        metrics_.error->inc();
        metrics_.errors->inc();
        metrics_.terminal_errors->inc();
        break;
    }
  }
  switch (outcome.kind) {
    case ReconcileOutcome::Kind::kDone:
      queue_.forget(key);
      break;
    case ReconcileOutcome::Kind::kRequeueAfter:
      queue_.forget(key);
      queue_.add_after(key, outcome.after);
      break;
    case ReconcileOutcome::Kind::kRetry:
      log::debug("reconcile will be retried", {{"controller", options_.name},
                                               {"key", key},
                                               {"duration_ms", duration_ms},
                                               {"reason", outcome.reason},
                                               {"failures", queue_.failures(key) + 1}});
      queue_.add_rate_limited(key);
      break;
    case ReconcileOutcome::Kind::kTerminal:
      log::warn("reconcile gave up", {{"controller", options_.name},
                                      {"key", key},
                                      {"duration_ms", duration_ms},
                                      {"reason", outcome.reason}});
      queue_.forget(key);
      break;
  }
  queue_.done(key);
}

void Controller::resync_now() {
  if (!options_.list_keys) return;
  for (const auto& key : options_.list_keys()) queue_.add(key);
}

void Controller::resync_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (stop_cv_.wait_for(lock, options_.resync_period, [this] { return stopping_; })) break;
    lock.unlock();
    resync_now();
    lock.lock();
  }
}

ReconcileCounters Controller::counters() const {
  std::lock_guard lock(counters_mu_);
  return counters_;
}

}  // namespace berth::runtime
