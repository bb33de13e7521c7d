#pragma once
// Leader election on a coordination.k8s.io/v1 Lease, with client-go's leaderelection semantics
// (controller-runtime's timings by default: 15 s lease, 10 s renew deadline, 2 s retry).
//
// What it promises:
//   - Acquire: a candidate takes the Lease when it does not exist (create), when it has no
//     holder (released), or when it has been expired for this candidate: no change to the
//     Lease's spec has been *observed* for the Lease's leaseDurationSeconds, measured on the
//     local steady clock from when this candidate last saw the spec change. The holder's
//     renewTime is never compared with the local clock, so skew between machines cannot make a
//     live lease look expired.
//   - Every write is a PUT carrying the resourceVersion that was read: a 409 means another
//     candidate wrote first, and this one is not the leader. leaseTransitions grows by one
//     whenever the holder changes; acquireTime is kept across renewals.
//   - A leader renews every retry period. When no renewal has succeeded for `renew_deadline`
//     (every request is bounded by what is left of that deadline, so a stalled API server cannot
//     hold it past it) it stops leading at once: is_leader() turns false, on_stopped_leading
//     runs, and run() returns kUnavailable ("leader election lost"). It does not try to lead
//     again: like client-go, the process is expected to exit (or to stop every worker and
//     start over) because work started as leader may still be in flight.
//   - A clean stop (the stop_token, or stop()) while leading releases the Lease (holder
//     cleared, leaseDurationSeconds 1) so a standby takes over at its next retry instead of
//     waiting out the lease, then runs on_stopped_leading.
//   - is_leader() is also false once the last successful renewal is older than the renew
//     deadline, even before the loop has noticed, so a reader never trusts a stale lease.
//
// Callbacks run on the election thread, one at a time; on_started_leading must return quickly
// (start workers on threads of their own). on_stopped_leading is called only after
// on_started_leading was, and is where the caller stops all work. Unlike client-go, it is not
// called when this candidate never led.
//
// Threading: run() blocks its caller; start()/stop() run it on a thread of the elector's own.
// is_leader(), holder() and identity() are safe from any thread. A callback must not call
// stop(). Time comes from an injected ElectionClock so tests need not sleep.
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "common/result.h"
#include "kube/transport.h"
#include "kube/types.h"

namespace berth::kube {

// The clocks and the sleep the elector uses.
class ElectionClock {
 public:
  virtual ~ElectionClock() = default;
  virtual std::chrono::steady_clock::time_point now() = 0;       // expiry and deadlines
  virtual std::chrono::system_clock::time_point wall_now() = 0;  // acquireTime, renewTime
  // Waits until `until`; false when `stop` was requested first.
  virtual bool sleep_until(std::chrono::steady_clock::time_point until, std::stop_token stop) = 0;
};

// The machine's clocks; sleep_until wakes early on a stop request.
std::shared_ptr<ElectionClock> system_election_clock();

struct LeaderElectionOptions {
  std::string namespace_ = "berth-system";
  std::string name = "berth-controller";
  std::string identity;  // empty: default_identity()
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  bool release_on_cancel = true;
};

struct LeaderCallbacks {
  std::function<void()> on_started_leading;
  std::function<void()> on_stopped_leading;
  // Each time the observed holder changes (also to "" on a release), including this candidate.
  std::function<void(const std::string& holder)> on_new_leader;
};

// $POD_NAME when set (the Deployment passes it through the downward API), else the host name;
// either way followed by "_" and a random suffix, so two processes on one host differ.
std::string default_identity();

class LeaderElector {
 public:
  // kInvalidArgument unless lease_duration > renew_deadline > retry_period * 1.2 (client-go's
  // rule: a renewal must fit in the deadline with its jitter) and name and namespace are set.
  static Result<std::unique_ptr<LeaderElector>> create(
      Transport& transport, LeaderElectionOptions options, LeaderCallbacks callbacks,
      std::shared_ptr<ElectionClock> clock = system_election_clock());
  ~LeaderElector();  // stop()
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Campaigns until leading, then renews until `stop` (returns OK after releasing) or until
  // the renew deadline passes (returns kUnavailable). Call once.
  Status run(std::stop_token stop);
  // run() on a thread of its own; stop() requests the stop and joins it.
  void start();
  void stop();

  // One attempt to acquire or renew, bounded by `deadline`: true when this candidate holds the
  // Lease afterwards. run() is made of these; public so tests can step it.
  bool try_acquire_or_renew(std::chrono::steady_clock::time_point deadline);
  // Clears the holder if this candidate holds the Lease (ReleaseOnCancel).
  void release();

  bool is_leader() const;
  std::string holder() const;  // the last observed holder ("" when none or not yet read)
  const std::string& identity() const { return options_.identity; }
  const LeaderElectionOptions& options() const { return options_; }

 private:
  LeaderElector(Transport& transport, LeaderElectionOptions options, LeaderCallbacks callbacks,
                std::shared_ptr<ElectionClock> clock);
  Result<nlohmann::json> call(const std::string& method, const std::string& target,
                              const nlohmann::json* body,
                              std::chrono::steady_clock::time_point deadline);
  void observe(const Lease& lease);
  void set_leading(bool leading);
  std::string path(bool collection) const;

  Transport& transport_;
  LeaderElectionOptions options_;
  LeaderCallbacks callbacks_;
  std::shared_ptr<ElectionClock> clock_;

  mutable std::mutex mu_;
  std::optional<Lease> observed_;  // the last Lease read or written
  std::chrono::steady_clock::time_point observed_time_{};
  std::chrono::steady_clock::time_point last_renew_{};
  bool leading_ = false;

  std::jthread thread_;
};

}  // namespace berth::kube
