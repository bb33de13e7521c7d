// The reconciler's task results and agent-link events: the events only update memory and
// enqueue keys; the results are recorded by the worker that holds the service's key
// (apply_results, called first thing by reconcile()).
#include <algorithm>

#include "common/log.h"
#include "core/revision.h"
#include "runtime/reconciler.h"
#include "runtime/reconciler_log.h"

namespace berth::runtime {

using detail::app_fields;
using detail::failed_step_text;
using detail::next_delay;

// --- task results --------------------------------------------------------------------------

Status Reconciler::apply_results(const std::string& service_id) {
  for (;;) {
    std::optional<ReceivedResult> next;
    {
      std::lock_guard lock(mu_);
      auto it = results_.find(service_id);
      if (it == results_.end()) return Status::Ok();
      if (it->second.empty()) {
        results_.erase(it);
        return Status::Ok();
      }
      next = it->second.front();
    }
    if (Status st = apply_result(*next); !st.ok()) {
      auto f = nlohmann::json{{"app", service_id}, {"task_id", next->outcome.task_id}};
      f["error"] = st.error().message;
      log::warn("recording a task result failed, will retry", f);
      return st;
    }
    std::lock_guard lock(mu_);
    auto it = results_.find(service_id);
    if (it != results_.end() && !it->second.empty()) it->second.pop_front();
  }
}

Status Reconciler::apply_result(const ReceivedResult& received) {
  const core::TaskOutcome& outcome = received.outcome;
  auto svc = store_.load_service(outcome.service_id);
  if (!svc.ok()) {
    return svc.error().code == ErrorCode::kNotFound ? Status::Ok() : Status(svc.error());
  }
  core::AppService service = std::move(svc).value();
  auto tasks = store_.pending_tasks(service.id);
  if (!tasks.ok()) return tasks.error();
  std::optional<core::Task> task;
  for (auto& t : *tasks) {
    if (t.id == outcome.task_id) task = t;
  }
  if (!task) {
    // A repeated result, or one for a task a later change finished: nothing to record, but
    // what the agent now serves is still news.
    if (outcome.ok && !outcome.revision_id.empty()) {
      std::lock_guard lock(mu_);
      agents_[received.agent].apps[service.id] = core::ObservedApp{
          outcome.revision_id, outcome.image_digest, outcome.stable_port, true, outcome.task_id};
    }
    log::debug("result for a finished task",
               {{"app", service.id}, {"app_name", service.name}, {"task_id", outcome.task_id}});
    return Status::Ok();
  }
  switch (task->kind) {
    case core::TaskKind::kDeploy:
      if (Status st = apply_deploy_result(received.agent, service, *task, outcome); !st.ok()) {
        return st;
      }
      break;
    case core::TaskKind::kRestart:
      if (Status st = apply_restart_result(service, outcome); !st.ok()) return st;
      break;
    case core::TaskKind::kRemove:
      // A failed removal is not finished: the task goes back to the queue.
      return apply_remove_result(received.agent, service, *task, outcome);
  }
  return finish_task(*task);
}

Status Reconciler::apply_deploy_result(const std::string& agent, core::AppService& service,
                                       const core::Task& task, const core::TaskOutcome& outcome) {
  const auto now = options_.now();
  auto loaded = store_.get_revision(service.id, task.revision_id);
  if (!loaded.ok()) {
    return loaded.error().code == ErrorCode::kNotFound ? Status::Ok() : Status(loaded.error());
  }
  core::Revision revision = std::move(loaded).value();
  const bool was_pending = revision.state == core::RevisionState::kPending;
  revision.deploy_logs.insert(revision.deploy_logs.end(), outcome.logs.begin(), outcome.logs.end());
  if (was_pending) {
    if (!outcome.image_digest.empty() && revision.image_digest.empty()) {
      revision.image_digest = outcome.image_digest;
    }
    (void)core::finish_revision(
        revision, outcome.ok ? core::RevisionState::kSucceeded : core::RevisionState::kFailed, now);
    core::apply_outcome(service, revision, now);
    // The agent's own sentence, prefixed with the step that failed.
    if (!outcome.ok && revision.id == service.desired_deployment_id) {
      service.last_error = failed_step_text(outcome, "deploy");
    }
  } else if (!outcome.ok) {
    service.last_error = failed_step_text(outcome, "deploy");  // a failed redeploy
  } else if (revision.id == service.current_deployment_id) {
    service.last_error.clear();  // a redeploy brought the serving revision back
  }
  if (outcome.ok && outcome.stable_port > 0) {
    service.url = "http://" + options_.endpoint_host + ":" + std::to_string(outcome.stable_port);
  }
  if (Status st = store_.record_outcome(revision, service, options_.keep_succeeded); !st.ok()) {
    return st;
  }
  observe_steps(outcome);
  {
    std::lock_guard lock(mu_);
    if (outcome.ok) {
      ++deploys_succeeded_;
      metrics_.deploys_succeeded->inc();
      agents_[agent].apps[service.id] = core::ObservedApp{
          outcome.revision_id, outcome.image_digest, outcome.stable_port, true, outcome.task_id};
    } else {
      ++deploys_failed_;
      metrics_.deploys_failed->inc();
    }
  }
  auto f = app_fields(service);
  f["agent"] = agent;
  f["task_id"] = outcome.task_id;
  f["revision"] = revision.number;
  if (outcome.ok) {
    log::info("deploy succeeded", f);
  } else {
    f["error"] = failed_step_text(outcome, "deploy");
    log::warn("deploy failed", f);
  }
  return Status::Ok();
}

Status Reconciler::apply_restart_result(core::AppService& service,
                                        const core::TaskOutcome& outcome) {
  auto f = app_fields(service);
  f["task_id"] = outcome.task_id;
  if (outcome.ok) {
    log::info("restart succeeded", f);
    return Status::Ok();
  }
  service.last_error = failed_step_text(outcome, "restart");
  if (Status st = write_service(service); !st.ok()) return st;
  f["error"] = service.last_error;
  log::warn("restart failed", f);
  return Status::Ok();
}

Status Reconciler::apply_remove_result(const std::string& agent, core::AppService& service,
                                       core::Task& task, const core::TaskOutcome& outcome) {
  auto f = app_fields(service);
  f["agent"] = agent;
  f["task_id"] = outcome.task_id;
  if (outcome.ok) {
    if (Status st = finish_task(task); !st.ok()) return st;
    std::lock_guard lock(mu_);
    agents_[agent].apps.erase(service.id);
    removal_confirmed_.insert(service.id);
    removals_.erase(service.id);
    log::info("app removed", f);
    return Status::Ok();
  }
  // Not removed: send the same task again after a backoff, until the agent confirms it.
  service.last_error = failed_step_text(outcome, "remove");
  if (Status st = write_service(service); !st.ok() && st.error().code != ErrorCode::kNotFound) {
    return st;
  }
  task.state = core::TaskState::kQueued;
  task.updated_at = options_.now();
  if (Status st = store_.update_task(task);
      !st.ok() && st.error().code != ErrorCode::kFailedPrecondition) {
    return st;
  }
  std::int64_t delay = 0;
  bool had_progress = false;
  {
    std::lock_guard lock(mu_);
    auto& r = removals_[service.id];
    delay = next_delay(r.count, 60'000);
    r.not_before = options_.steady_now() + delay;
    r.count += 1;
    if (auto s = sent_.find(service.id); s != sent_.end() && s->second.task_id == task.id)
      had_progress = drop_sent_locked(service.id);
  }
  if (had_progress) progress_gone(service.id);
  f["error"] = service.last_error;
  f["retry_in_ms"] = delay;
  log::warn("removal failed, will retry", f);
  return Status::Ok();
}

// --- agent-link events (memory only) -------------------------------------------------------

void Reconciler::agent_connected(
    const std::string& name, const std::string& zone,
    const std::vector<std::pair<std::string, core::ObservedApp>>& apps) {
  std::vector<std::string> keys;
  const auto now = options_.now();
  {
    std::lock_guard lock(mu_);
    AgentState& a = agents_[name];
    if (!a.zone.empty() && a.zone != zone) zone_agents_[a.zone].erase(name);
    a.zone = zone;
    zone_agents_[zone].insert(name);
    if (!a.connected) metrics_.agents_connected->add(1);
    a.connected = true;
    a.epoch += 1;
    a.apps.clear();
    for (const auto& [service_id, app] : apps) {
      core::ObservedApp& o = a.apps[service_id] = app;
      if (!o.healthy && !o.missing && o.unhealthy_since == 0) o.unhealthy_since = now;
      keys.push_back(service_id);
    }
    for (const auto& id : by_agent_[name]) keys.push_back(id);
    auto w = waiting_.find(zone);
    if (w != waiting_.end()) {
      keys.insert(keys.end(), w->second.begin(), w->second.end());
      w->second.clear();
    }
  }
  log::info("agent connected", {{"agent", name}, {"zone", zone}, {"apps", apps.size()}});
  for (const auto& k : keys) queue_.add(k);
}

void Reconciler::agent_disconnected(const std::string& name) {
  std::vector<std::string> keys;
  std::vector<std::string> gone;
  {
    std::lock_guard lock(mu_);
    auto a = agents_.find(name);
    if (a == agents_.end()) return;
    if (a->second.connected) metrics_.agents_connected->add(-1);
    a->second.connected = false;
    zone_agents_[a->second.zone].erase(name);
    for (const auto& id : by_agent_[name]) keys.push_back(id);
    // What the agent was doing is unknown until it is back (it may resume or restart a task).
    for (const auto& id : keys) {
      if (progress_.erase(id) != 0) gone.push_back(id);
    }
  }
  for (const auto& id : gone) progress_gone(id);
  log::warn("agent disconnected", {{"agent", name}});
  for (const auto& k : keys) queue_.add(k);
}

void Reconciler::task_result(const std::string& agent, const core::TaskOutcome& outcome) {
  {
    std::lock_guard lock(mu_);
    auto o = orphans_.find(outcome.service_id);
    if (o != orphans_.end() && o->second.task_id == outcome.task_id) {
      // The removal of an app no service owns: only memory to update.
      if (outcome.ok) {
        agents_[agent].apps.erase(outcome.service_id);
        orphans_.erase(o);
      } else {
        o->second.sent_at = 0;  // send again once the key comes round
      }
    } else {
      results_[outcome.service_id].push_back(ReceivedResult{agent, outcome});
    }
  }
  queue_.add(outcome.service_id);
}

void Reconciler::task_acked(const std::string& agent, const std::string& task_id) {
  std::lock_guard lock(mu_);
  auto s = sent_by_task_.find(task_id);
  if (s == sent_by_task_.end()) return;
  auto sent = sent_.find(s->second);
  if (sent == sent_.end() || sent->second.task_id != task_id) return;
  auto a = agents_.find(agent);
  if (a != agents_.end() && a->second.epoch == sent->second.epoch) sent->second.acked = true;
}

void Reconciler::app_status(const std::string& agent, const core::AppReport& report) {
  const auto now = options_.now();
  {
    std::lock_guard lock(mu_);
    auto& apps = agents_[agent].apps;
    auto it = apps.find(report.service_id);
    if (it == apps.end()) {
      core::ObservedApp fresh;
      fresh.revision_id = report.revision_id;
      it = apps.emplace(report.service_id, fresh).first;
    }
    core::ObservedApp& o = it->second;
    if (!report.revision_id.empty()) o.revision_id = report.revision_id;
    o.detail = report.detail;
    switch (report.state) {
      case core::AppState::kRunning:
        o.healthy = true;
        o.missing = false;
        o.unhealthy_since = 0;
        break;
      case core::AppState::kUnhealthy:
        // The controller's own clock starts the patience: agents' clocks may differ.
        if (o.healthy || o.missing || o.unhealthy_since == 0) o.unhealthy_since = now;
        o.healthy = false;
        o.missing = false;
        break;
      case core::AppState::kMissing:
        o.healthy = false;
        o.missing = true;
        o.unhealthy_since = 0;
        break;
    }
  }
  queue_.add(report.service_id);
}

// --- metrics ---------------------------------------------------------------------------------

Reconciler::Metrics Reconciler::make_metrics(metrics::Registry* registry) {
  metrics::Registry& r = registry != nullptr ? *registry : metrics::process_registry();
  auto& deploys = r.counter("berth_deploys_total",
                            "Deploy tasks finished, by outcome (succeeded or failed)", {"outcome"});
  return Metrics{
      &r.gauge("berth_agents_connected", "Agents connected to this controller").get(),
      &deploys.with({"succeeded"}),
      &deploys.with({"failed"}),
      &r.histogram("berth_deploy_step_duration_seconds",
                   "Duration of each finished step of a deploy, from the agent's deploy log",
                   {"step"}, metrics::default_buckets()),
      &r.counter("berth_pull_bytes_total",
                 "Image bytes agents reported pulled while deploying (from their progress reports)")
           .get(),
  };
}

// --- progress ----------------------------------------------------------------------------------

bool Reconciler::drop_sent_locked(const std::string& service_id) {
  if (auto s = sent_.find(service_id); s != sent_.end()) {
    sent_by_task_.erase(s->second.task_id);
    sent_.erase(s);
  }
  return progress_.erase(service_id) != 0;
}

void Reconciler::progress_gone(const std::string& service_id) {
  std::lock_guard order(listener_mu_);
  if (progress_listener_) progress_listener_(service_id, std::nullopt);
}

void Reconciler::task_progress(const std::string& agent, const std::string& task_id,
                               const core::DeployLogEntry& entry,
                               const std::optional<PullReport>& pull) {
  // Entries kept per task for the live deploy log: the agent throttles pull reports, so a
  // deploy has a few dozen at most; the cap only guards against a confused agent.
  constexpr std::size_t kMaxEntries = 64;
  core::RolloutProgress copy;
  std::string service_id;
  // Taken before mu_ and held until the listener returns: a finish that drops this progress
  // after the copy below tells the listener only after this report (progress_gone takes it
  // too), so a late report can never reach the listener after the removal.
  std::lock_guard order(listener_mu_);
  {
    std::lock_guard lock(mu_);
    auto s = sent_by_task_.find(task_id);
    if (s == sent_by_task_.end()) return;
    service_id = s->second;
    auto placed = placement_.find(service_id);
    if (placed == placement_.end() || placed->second != agent) return;
    core::RolloutProgress& p = progress_[service_id];
    if (p.task_id != task_id) p = core::RolloutProgress{task_id};
    p.step = entry.step;
    p.updated_at = options_.now();
    if (pull) {
      const std::int64_t moved = pull->bytes_done - p.bytes_done;
      if (moved > 0) metrics_.pull_bytes->inc(static_cast<double>(moved));
      p.layers_done = pull->layers_done;
      p.layers_total = pull->layers_total;
      p.bytes_done = pull->bytes_done;
      p.bytes_total = pull->bytes_total;
    }
    if (p.entries.size() < kMaxEntries) p.entries.push_back(entry);
    copy = p;
  }
  if (progress_listener_) progress_listener_(service_id, copy);
}

std::optional<core::RolloutProgress> Reconciler::progress(const std::string& service_id) const {
  std::lock_guard lock(mu_);
  auto it = progress_.find(service_id);
  if (it == progress_.end()) return std::nullopt;
  return it->second;
}

void Reconciler::observe_steps(const core::TaskOutcome& outcome) {
  // The step name comes from the agent: only the steps the agent is known to log become label
  // values, anything else is "other", so a confused agent cannot grow the series.
  static const std::unordered_set<std::string> kSteps = {"resolve", "pull",    "start",   "probe",
                                                         "switch",  "cleanup", "restart", "remove"};
  for (const auto& entry : outcome.logs) {
    if (entry.status != "ok" && entry.status != "failed") continue;  // info lines are not steps
    const std::string& step = kSteps.count(entry.step) != 0 ? entry.step : std::string("other");
    metrics_.step_duration->with({step}).observe(static_cast<double>(entry.duration_ms) / 1000.0);
  }
}

ReconcilerStats Reconciler::stats() const {
  std::lock_guard lock(mu_);
  ReconcilerStats s;
  for (const auto& [name, a] : agents_) {
    if (a.connected) ++s.agents_connected;
  }
  s.deploys_succeeded = deploys_succeeded_;
  s.deploys_failed = deploys_failed_;
  return s;
}

}  // namespace berth::runtime
