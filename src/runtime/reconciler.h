#pragma once
// The AppService reconciler: reads desired state from the StateStore and observed state from
// what agents report, asks the pure planner (core/planner.h) for the next step, and carries it
// out through the ports (StateStore, AgentGateway, DigestResolver). One call handles one
// service key; the Controller (controller.h) decides retries from the returned outcome.
//
// Threading. Agent-link events (agent_connected, agent_disconnected, task_result, task_acked,
// app_status) may arrive on any thread. They only update memory and enqueue the affected keys;
// they never write the store. Every store write for a service happens in reconcile(), which the
// work queue runs for one key on one worker at a time, so a task result, a dispatch and a
// status write of the same service never interleave.
//
// Task results. task_result() keeps the outcome in memory, keyed by service, and enqueues the
// key; reconcile() applies it first thing. An outcome stays in memory until it is recorded (a
// failed record_outcome is retried with the key's backoff), and a result that arrives before
// the dispatcher marked its task sent still completes it (the task is marked sent before it is
// sent, and the result is applied by the same worker afterwards).
//
// Delivery. A sent task the agent has not acknowledged within `resend_unacked_ms` is sent
// again with the same id (the agent applies each id once), as is every task sent over an
// earlier connection. A failed removal is sent again with backoff until the agent confirms
// it; a service is forgotten only after that confirmation (or when it was never placed, or
// the connected agent does not run it). An app an agent runs for a service the store does not
// know is removed after `orphan_grace_ms`.
//
// The reconciler never trusts memory over an agent's report: on every (re)connect the agent's
// full state replaces what was remembered.
//
// Files: reconciler.cpp (one pass and one function per plan step), task_results.cpp (results
// and link events), reconciler_log.h (shared helpers).
//
// Indexes kept in memory so no event scans every service: agent -> services placed on it,
// zone -> services waiting for an agent. They are primed once at start (prime()).
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "core/execution.h"
#include "core/planner.h"
#include "core/ports.h"
#include "core/progress.h"
#include "runtime/controller.h"
#include "runtime/workqueue.h"

namespace berth::runtime {

struct ReconcilerOptions {
  int keep_succeeded = 20;
  std::function<core::UnixMillis()> now;    // wall clock, milliseconds since the epoch
  std::function<std::string()> new_id;      // UUIDs for tasks
  std::string endpoint_host = "127.0.0.1";  // host part of an app's url
  // A sent task without an ack for this long is sent again (same id).
  std::int64_t resend_unacked_ms = 15'000;
  // An app an agent runs for no known service is removed after this long.
  std::int64_t orphan_grace_ms = 60'000;
  // Where berth_agents_connected, berth_deploys_total{outcome} and
  // berth_deploy_step_duration_seconds{step} go (docs/metrics.md); null:
  // metrics::process_registry(). Must outlive the reconciler.
  metrics::Registry* metrics = nullptr;
  // A monotonic clock in milliseconds for the timers that live in memory only (the resend of
  // an unacknowledged task, the redeploy and removal backoffs, the orphan grace period): a
  // wall-clock step (NTP, a VM resumed) must neither fire them early nor hold them back by the
  // size of the step. Unset: `now` (tests drive both with one fake clock).
  std::function<std::int64_t()> steady_now;
};

struct ReconcilerStats {
  std::size_t agents_connected = 0;
  std::uint64_t deploys_succeeded = 0;
  std::uint64_t deploys_failed = 0;
};

class Reconciler {
 public:
  Reconciler(core::StateStore& store, core::AgentGateway& agents, core::DigestResolver& resolver,
             WorkQueue& queue, ReconcilerOptions options);

  // Loads the placement index from the store (one pass at start) and enqueues every service.
  Status prime();

  ReconcileOutcome reconcile(const std::string& service_id);

  // --- agent-link events (any thread; memory only) ---
  void agent_connected(const std::string& name, const std::string& zone,
                       const std::vector<std::pair<std::string, core::ObservedApp>>& apps);
  void agent_disconnected(const std::string& name);
  void task_result(const std::string& agent, const core::TaskOutcome& outcome);
  void task_acked(const std::string& agent, const std::string& task_id);
  void app_status(const std::string& agent, const core::AppReport& report);
  // A progress report of a running task (memory only: no store write, no reconcile). Kept for
  // the task's service while that task is the one sent to it; dropped when the task finishes,
  // the service is forgotten or the agent disconnects. `pull` is set on pull reports; a later
  // report without it keeps the counts and only moves the step. Each report that moves
  // bytes_done adds the difference to berth_pull_bytes_total. Reports for tasks the reconciler
  // does not know (finished, or never sent) are ignored.
  struct PullReport {
    int layers_done = 0;
    int layers_total = 0;
    std::int64_t bytes_done = 0;
    std::int64_t bytes_total = 0;
  };
  void task_progress(const std::string& agent, const std::string& task_id,
                     const core::DeployLogEntry& entry, const std::optional<PullReport>& pull);
  // The progress of the rollout running for `service_id`, if any (any thread).
  std::optional<core::RolloutProgress> progress(const std::string& service_id) const;
  // Called (outside the reconciler's lock) after a report changed a service's progress, and
  // with nullopt when the progress went away; set before start. Calls are serialised and come
  // in the order the reconciler's memory changed: once nullopt is passed for a task's end, no
  // report of that task follows. The listener must not block (it runs on the agent link's
  // thread and delays every other report): Kubernetes mode hands it to kube::ProgressWriter.
  void set_progress_listener(
      std::function<void(const std::string& service_id,
                         const std::optional<core::RolloutProgress>& progress)>
          listener) {
    progress_listener_ = std::move(listener);
  }

  ReconcilerStats stats() const;

 private:
  // Everything one reconcile pass works on.
  struct Context {
    core::AppService service;
    std::optional<core::Revision> desired;
    std::optional<core::Task> task;
    core::Plan plan;
    std::int64_t resend_at =
        0;  // steady_now when an unacknowledged sent task is due again (0: none)
  };
  struct AgentState {
    std::string zone;
    bool connected = false;
    std::uint64_t epoch = 0;  // bumped on every connect
    std::unordered_map<std::string, core::ObservedApp> apps;
  };
  struct SentTask {
    std::string task_id;
    std::uint64_t epoch = 0;   // the connection it went out on
    std::int64_t sent_at = 0;  // steady_now
    bool acked = false;
  };
  struct ReceivedResult {
    std::string agent;
    core::TaskOutcome outcome;
  };
  struct Backoff {
    int count = 0;
    std::int64_t not_before = 0;  // steady_now
  };
  struct Orphan {
    std::string agent;
    std::int64_t first_seen = 0;  // steady_now
    std::string task_id;          // the removal sent for it, empty until the grace period ends
    std::int64_t sent_at = 0;     // steady_now
  };

  // --- one reconcile pass ---
  std::optional<ReconcileOutcome> load(const std::string& service_id, Context& ctx);
  core::PlanInput plan_input(Context& ctx);
  ReconcileOutcome execute(Context& ctx);

  // --- one function per plan step ---
  ReconcileOutcome step_nothing(Context& ctx);
  ReconcileOutcome step_wait_for_agent(Context& ctx);
  ReconcileOutcome step_wait(Context& ctx);
  ReconcileOutcome step_assign_agent(Context& ctx);
  ReconcileOutcome step_fail_revision(Context& ctx);
  ReconcileOutcome step_resolve_digest(Context& ctx);
  ReconcileOutcome step_dispatch(Context& ctx);
  ReconcileOutcome step_adopt_observed(Context& ctx);
  ReconcileOutcome step_redeploy_current(Context& ctx);
  ReconcileOutcome step_finish_task(Context& ctx);
  ReconcileOutcome step_queue_remove(Context& ctx);
  ReconcileOutcome step_forget(Context& ctx);

  // --- task results, applied by the worker ---
  Status apply_results(const std::string& service_id);
  Status apply_result(const ReceivedResult& received);
  Status apply_deploy_result(const std::string& agent, core::AppService& service,
                             const core::Task& task, const core::TaskOutcome& outcome);
  Status apply_restart_result(core::AppService& service, const core::TaskOutcome& outcome);
  Status apply_remove_result(const std::string& agent, core::AppService& service, core::Task& task,
                             const core::TaskOutcome& outcome);

  // --- helpers ---
  ReconcileOutcome reap_orphan(const std::string& service_id);
  Status write_service(core::AppService& service);
  Status finish_task(core::Task& task);
  Status fail_revision(Context& ctx, const std::string& step, const std::string& message);
  Status send(Context& ctx);
  Status send_deploy(Context& ctx);
  ReconcileOutcome retry_step(Context& ctx, const std::string& step, const Error& error);
  void clear_retry(const std::string& service_id);
  void index_placement(const std::string& service_id, const std::string& agent);
  // With mu_ held: forgets the task sent for `service_id` (and its progress); true when there
  // was progress to forget (tell the listener, outside the lock).
  bool drop_sent_locked(const std::string& service_id);
  void progress_gone(const std::string& service_id);
  void unindex(const std::string& service_id);
  static ReconcileOutcome from_error(const Error& error, const char* what);

  core::StateStore& store_;
  core::AgentGateway& gateway_;
  core::DigestResolver& resolver_;
  WorkQueue& queue_;
  ReconcilerOptions options_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, AgentState> agents_;
  std::unordered_map<std::string, std::string> placement_;  // service -> agent
  std::unordered_map<std::string, std::unordered_set<std::string>> by_agent_;
  std::unordered_map<std::string, std::unordered_set<std::string>> waiting_;  // zone -> services
  // service -> the task last sent for it: one entry per service at most (a service has one
  // task in flight), dropped when the task finishes or the service is forgotten.
  std::unordered_map<std::string, SentTask> sent_;
  std::unordered_map<std::string, std::string> sent_by_task_;  // task id -> service
  // zone -> connected agents, so placing a service looks only at its zone.
  std::unordered_map<std::string, std::unordered_set<std::string>> zone_agents_;
  // service -> results received and not yet recorded, oldest first.
  std::unordered_map<std::string, std::deque<ReceivedResult>> results_;
  std::unordered_map<std::string, core::PendingRetry> retries_;  // service -> failing step
  std::unordered_map<std::string, Backoff> redeploys_;           // service -> redeploys in a row
  std::unordered_map<std::string, Backoff> removals_;  // service -> failed removals in a row
  std::unordered_set<std::string> removal_confirmed_;  // services the agent confirmed removed
  std::unordered_map<std::string, Orphan> orphans_;    // unknown service id -> its removal
  // service -> progress of its sent task (at most one per service, like sent_).
  std::unordered_map<std::string, core::RolloutProgress> progress_;
  std::function<void(const std::string&, const std::optional<core::RolloutProgress>&)>
      progress_listener_;
  // Orders listener calls (task_progress, progress_gone); taken before mu_, never inside it.
  std::mutex listener_mu_;
  std::uint64_t deploys_succeeded_ = 0;
  std::uint64_t deploys_failed_ = 0;

  struct Metrics {
    metrics::Gauge* agents_connected;
    metrics::Counter* deploys_succeeded;
    metrics::Counter* deploys_failed;
    metrics::Family<metrics::Histogram>* step_duration;
    metrics::Counter* pull_bytes;
  };
  static Metrics make_metrics(metrics::Registry* registry);
  void observe_steps(const core::TaskOutcome& outcome);
  Metrics metrics_;
};

}  // namespace berth::runtime
