#include "runtime/reconciler.h"

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "core/image_ref.h"
#include "core/revision.h"

namespace berth::runtime {
namespace {

using namespace std::chrono_literals;

Duration ms(std::int64_t n) { return std::chrono::milliseconds(n); }

std::optional<core::Task> oldest_unfinished(std::vector<core::Task> tasks) {
  std::optional<core::Task> best;
  for (auto& t : tasks) {
    if (t.state == core::TaskState::kDone) continue;
    if (!best || t.created_at < best->created_at ||
        (t.created_at == best->created_at && t.id < best->id)) {
      best = std::move(t);
    }
  }
  return best;
}

core::DeployLogEntry log_entry(std::string step, std::string status, std::string message,
                               core::UnixMillis at) {
  core::DeployLogEntry e;
  e.step = std::move(step);
  e.status = std::move(status);
  e.message = std::move(message);
  e.started_at = at;
  return e;
}

}  // namespace

Reconciler::Reconciler(core::StateStore& store, core::AgentGateway& agents,
                       core::DigestResolver& resolver, WorkQueue& queue, ReconcilerOptions options)
    : store_(store),
      gateway_(agents),
      resolver_(resolver),
      queue_(queue),
      options_(std::move(options)) {}

Status Reconciler::prime() {
  auto ids = store_.list_service_ids();
  if (!ids.ok()) return ids.error();
  for (const auto& id : *ids) {
    auto svc = store_.load_service(id);
    if (!svc.ok()) continue;  // deleted meanwhile
    if (!svc->agent.empty()) {
      std::lock_guard lock(mu_);
      index_placement(id, svc->agent);
    }
    queue_.add(id);
  }
  return Status::Ok();
}

void Reconciler::index_placement(const std::string& service_id, const std::string& agent) {
  auto it = placement_.find(service_id);
  if (it != placement_.end()) {
    if (it->second == agent) return;
    by_agent_[it->second].erase(service_id);
  }
  placement_[service_id] = agent;
  by_agent_[agent].insert(service_id);
}

void Reconciler::unindex(const std::string& service_id) {
  std::lock_guard lock(mu_);
  auto it = placement_.find(service_id);
  if (it != placement_.end()) {
    by_agent_[it->second].erase(service_id);
    auto a = agents_.find(it->second);
    if (a != agents_.end()) a->second.apps.erase(service_id);
    placement_.erase(it);
  }
  for (auto& [zone, set] : waiting_) set.erase(service_id);
  redeploys_.erase(service_id);
  sent_.erase(service_id);
}

ReconcileOutcome Reconciler::from_error(const Error& error, const char* what) {
  if (error.retryable() || error.code == ErrorCode::kConflict) {
    return ReconcileOutcome::retry(std::string(what) + ": " + error.message);
  }
  return ReconcileOutcome::terminal(std::string(what) + ": " + error.message);
}

Status Reconciler::write_service(core::AppService& service) {
  service.updated_at = options_.now();
  return store_.update_observed(service);
}

ReconcileOutcome Reconciler::reconcile(const std::string& service_id) {
  auto loaded = store_.load_service(service_id);
  if (!loaded.ok()) {
    if (loaded.error().code == ErrorCode::kNotFound) {
      unindex(service_id);
      return ReconcileOutcome::done();
    }
    return from_error(loaded.error(), "loading the service");
  }
  core::AppService service = std::move(loaded).value();

  auto tasks = store_.pending_tasks(service_id);
  if (!tasks.ok()) return from_error(tasks.error(), "loading tasks");
  std::vector<core::Task> open_tasks = std::move(tasks).value();
  if (service.status == core::ServiceStatus::kDeleting) {
    // A removal supersedes whatever was still in flight: only the remove task matters now.
    std::erase_if(open_tasks,
                  [](const core::Task& t) { return t.kind != core::TaskKind::kRemove; });
  }
  std::optional<core::Task> task = oldest_unfinished(std::move(open_tasks));

  std::optional<core::Revision> desired;
  if (!service.desired_deployment_id.empty()) {
    auto rev = store_.get_revision(service_id, service.desired_deployment_id);
    if (rev.ok()) {
      desired = std::move(rev).value();
    } else if (rev.error().code != ErrorCode::kNotFound) {
      return from_error(rev.error(), "loading the desired revision");
    }
  }
  auto credential = store_.get_credential(service_id);
  if (!credential.ok()) return from_error(credential.error(), "loading the credential");

  core::PlanInput in;
  in.now = options_.now();
  {
    std::lock_guard lock(mu_);
    if (service.agent.empty()) {
      // Only placement needs the candidates, and only those of the service's zone.
      auto zone = zone_agents_.find(service.zone);
      if (zone != zone_agents_.end()) {
        for (const auto& name : zone->second) {
          auto load = by_agent_.find(name);
          in.connected_agents.push_back(
              core::AgentView{name, service.zone,
                              load == by_agent_.end() ? 0 : static_cast<int>(load->second.size())});
        }
      }
    }
    if (!service.agent.empty()) {
      index_placement(service_id, service.agent);
      auto a = agents_.find(service.agent);
      if (a != agents_.end() && a->second.connected) {
        in.assigned_agent_connected = true;
        auto app = a->second.apps.find(service_id);
        if (app != a->second.apps.end()) in.observed = app->second;
        // A task sent over an earlier connection may never have arrived: send it again.
        if (task && task->state == core::TaskState::kSent) {
          auto sent = sent_.find(service_id);
          if (sent == sent_.end() || sent->second.first != task->id ||
              sent->second.second != a->second.epoch) {
            task->state = core::TaskState::kQueued;
          }
        }
      }
    }
  }
  in.service = service;
  in.desired = desired;
  in.task = task;
  in.credential = std::move(credential).value();

  const core::Plan plan = core::plan_next(in);
  log::debug("reconcile planned",
             {{"app", service_id}, {"step", core::to_string(plan.step)}, {"reason", plan.message}});

  if (plan.step != core::StepKind::kForget &&
      (service.status != plan.status || service.conditions != plan.conditions)) {
    service.status = plan.status;
    service.conditions = plan.conditions;
    if (Status st = write_service(service); !st.ok())
      return from_error(st.error(), "writing status");
  }
  return execute(plan, service, desired, task);
}

Status Reconciler::fail_revision(core::AppService& service, core::Revision& revision,
                                 std::optional<core::Task>& task, const std::string& step,
                                 const std::string& message) {
  const auto now = options_.now();
  revision.deploy_logs.push_back(log_entry(step, "failed", message, now));
  if (Status st = core::finish_revision(revision, core::RevisionState::kFailed, now); !st.ok()) {
    return st;
  }
  core::apply_outcome(service, revision, now);
  service.last_error = message;
  if (Status st = store_.record_outcome(revision, service, options_.keep_succeeded); !st.ok()) {
    return st;
  }
  if (task) {
    task->state = core::TaskState::kDone;
    task->updated_at = now;
    if (Status st = store_.update_task(*task); !st.ok()) return st;
  }
  {
    std::lock_guard lock(mu_);
    ++deploys_failed_;
  }
  log::warn(
      "revision failed",
      {{"app", service.id}, {"revision", revision.number}, {"step", step}, {"error", message}});
  return Status::Ok();
}

Status Reconciler::dispatch(core::AppService& service, const std::optional<core::Revision>& desired,
                            core::Task& task) {
  Status sent;
  switch (task.kind) {
    case core::TaskKind::kDeploy: {
      if (!desired) return make_error(ErrorCode::kInternal, "deploy task without a revision");
      const core::Revision& rev = *desired;
      auto ref = core::parse_image_ref(rev.config.image_ref);
      if (!ref.ok()) return ref.error();
      core::DeployOrder order;
      order.task_id = task.id;
      order.service_id = service.id;
      order.revision_id = rev.id;
      order.revision = rev.number;
      order.image_ref = rev.config.image_ref;
      order.image_digest = rev.image_digest;
      order.pull_ref =
          rev.image_digest.empty() ? ref->with_default_tag() : ref->pinned(rev.image_digest);
      order.container_port = rev.config.container_port;
      order.env = rev.config.env;
      order.health = rev.config.health;
      std::optional<Secret> password;
      if (!rev.config.registry_username.empty()) {
        auto pw =
            store_.unseal_password(service.id, rev.registry_host, rev.config.registry_username);
        if (!pw.ok()) return pw.error();
        password = std::move(pw).value();
        order.auth_keys = ref->auth_keys();
        order.username = rev.config.registry_username;
      }
      sent = gateway_.send_deploy(service.agent, order, password ? &*password : nullptr);
      break;
    }
    case core::TaskKind::kRestart:
      sent = gateway_.send_restart(service.agent, task.id, service.id);
      break;
    case core::TaskKind::kRemove:
      sent = gateway_.send_remove(service.agent, task.id, service.id);
      break;
  }
  if (!sent.ok()) return sent;
  task.state = core::TaskState::kSent;
  task.agent = service.agent;
  task.attempts += 1;
  task.updated_at = options_.now();
  if (Status st = store_.update_task(task); !st.ok()) return st;
  std::lock_guard lock(mu_);
  auto a = agents_.find(service.agent);
  sent_[service.id] = {task.id, a == agents_.end() ? 0 : a->second.epoch};
  return Status::Ok();
}

ReconcileOutcome Reconciler::execute(const core::Plan& plan, core::AppService& service,
                                     std::optional<core::Revision>& desired,
                                     std::optional<core::Task>& task) {
  using core::StepKind;
  const auto requeue = [&plan](const char* why) {
    return plan.requeue_after_ms > 0
               ? ReconcileOutcome::requeue_after(ms(plan.requeue_after_ms), why)
               : ReconcileOutcome::done();
  };
  switch (plan.step) {
    case StepKind::kNothing: {
      std::lock_guard lock(mu_);
      redeploys_.erase(service.id);
      return requeue("converged");
    }

    case StepKind::kWaitForAgent: {
      std::lock_guard lock(mu_);
      waiting_[service.zone].insert(service.id);
      return requeue("no agent in the zone");
    }

    case StepKind::kWaitForReconnect:
    case StepKind::kAwaitResult:
      return requeue(core::to_string(plan.step));

    case StepKind::kAssignAgent: {
      service.agent = plan.agent;
      if (Status st = write_service(service); !st.ok()) return from_error(st.error(), "assigning");
      {
        std::lock_guard lock(mu_);
        index_placement(service.id, plan.agent);
        waiting_[service.zone].erase(service.id);
      }
      log::info("service placed", {{"app", service.id}, {"agent", plan.agent}});
      return ReconcileOutcome::requeue_after(Duration::zero(), "placed");
    }

    case StepKind::kFailRevision: {
      if (!desired) return ReconcileOutcome::terminal("no revision to fail");
      if (Status st = fail_revision(service, *desired, task, "credentials", plan.message);
          !st.ok()) {
        return from_error(st.error(), "recording the failure");
      }
      return ReconcileOutcome::requeue_after(Duration::zero(), "revision failed");
    }

    case StepKind::kResolveDigest: {
      if (!desired) return ReconcileOutcome::terminal("no revision to resolve");
      std::optional<core::RegistryLogin> login;
      if (!desired->config.registry_username.empty()) {
        auto pw = store_.unseal_password(service.id, desired->registry_host,
                                         desired->config.registry_username);
        if (!pw.ok()) {
          if (Status st = fail_revision(service, *desired, task, "credentials", pw.error().message);
              !st.ok()) {
            return from_error(st.error(), "recording the failure");
          }
          return ReconcileOutcome::requeue_after(Duration::zero(), "credential unreadable");
        }
        login = core::RegistryLogin{desired->config.registry_username, std::move(pw).value()};
      }
      const auto started = options_.now();
      auto digest = resolver_.resolve(desired->config.image_ref, login ? &*login : nullptr);
      if (!digest.ok()) {
        if (digest.error().retryable()) {
          log::warn("digest resolution failed, will retry", {{"app", service.id},
                                                             {"revision", desired->number},
                                                             {"error", digest.error().message}});
          return ReconcileOutcome::retry("registry unavailable: " + digest.error().message);
        }
        if (Status st = fail_revision(service, *desired, task, "resolve", digest.error().message);
            !st.ok()) {
          return from_error(st.error(), "recording the failure");
        }
        return ReconcileOutcome::requeue_after(Duration::zero(), "image could not be resolved");
      }
      desired->image_digest = *digest;
      core::DeployLogEntry entry =
          log_entry("resolve", "ok", "resolved " + desired->config.image_ref, started);
      entry.detail = *digest;
      entry.duration_ms = options_.now() - started;
      desired->deploy_logs.push_back(entry);
      if (Status st = store_.record_outcome(*desired, service, options_.keep_succeeded); !st.ok()) {
        return from_error(st.error(), "recording the digest");
      }
      return ReconcileOutcome::requeue_after(Duration::zero(), "digest resolved");
    }

    case StepKind::kDispatch: {
      if (!task) return ReconcileOutcome::terminal("no task to dispatch");
      if (Status st = dispatch(service, desired, *task); !st.ok()) {
        if (st.error().code == ErrorCode::kDataLoss && desired) {
          (void)fail_revision(service, *desired, task, "credentials", st.error().message);
          return ReconcileOutcome::requeue_after(Duration::zero(), "credential unreadable");
        }
        return from_error(st.error(), "dispatching");
      }
      log::info("task dispatched", {{"app", service.id},
                                    {"agent", service.agent},
                                    {"task", task->id},
                                    {"kind", core::to_string(task->kind)}});
      return ReconcileOutcome::requeue_after(ms(core::kAwaitResultRequeueMs), "dispatched");
    }

    case StepKind::kAdoptObserved: {
      if (!desired || !task) return ReconcileOutcome::terminal("nothing to adopt");
      const auto now = options_.now();
      desired->deploy_logs.push_back(log_entry(
          "adopt", "info", "agent " + service.agent + " reported this revision serving", now));
      if (Status st = core::finish_revision(*desired, core::RevisionState::kSucceeded, now);
          !st.ok()) {
        return ReconcileOutcome::terminal(st.error().message);
      }
      core::apply_outcome(service, *desired, now);
      {
        std::lock_guard lock(mu_);
        auto a = agents_.find(service.agent);
        if (a != agents_.end()) {
          auto app = a->second.apps.find(service.id);
          if (app != a->second.apps.end() && app->second.stable_port > 0) {
            service.url =
                "http://" + options_.endpoint_host + ":" + std::to_string(app->second.stable_port);
          }
        }
      }
      if (Status st = store_.record_outcome(*desired, service, options_.keep_succeeded); !st.ok()) {
        return from_error(st.error(), "recording the adopted outcome");
      }
      task->state = core::TaskState::kDone;
      task->updated_at = now;
      if (Status st = store_.update_task(*task); !st.ok())
        return from_error(st.error(), "finishing the task");
      return ReconcileOutcome::requeue_after(Duration::zero(), "adopted");
    }

    case StepKind::kRedeployCurrent: {
      {
        // The agent lost the app again soon after a redeploy: back off (1 s doubling, capped at
        // 5 min) instead of looping.
        std::lock_guard lock(mu_);
        auto& r = redeploys_[service.id];
        const auto now = options_.now();
        if (now < r.not_before) {
          return ReconcileOutcome::requeue_after(ms(r.not_before - now), "redeploy backoff");
        }
        r.not_before = now + std::min<std::int64_t>(1000LL << std::min(r.count, 8), 300'000);
        r.count += 1;
      }
      core::Task t;
      t.id = options_.new_id();
      t.service_id = service.id;
      t.revision_id = service.current_deployment_id;
      t.kind = core::TaskKind::kDeploy;
      t.state = core::TaskState::kQueued;
      t.created_at = t.updated_at = options_.now();
      const std::int64_t expected = service.generation;
      service.desired_deployment_id = service.current_deployment_id;
      service.generation += 1;
      service.updated_at = options_.now();
      core::Change change;
      change.service = service;
      change.task = t;
      if (Status st = store_.apply_change(change, expected); !st.ok()) {
        return from_error(st.error(), "queueing a redeploy");
      }
      log::info("redeploying the current revision",
                {{"app", service.id}, {"agent", service.agent}});
      return ReconcileOutcome::requeue_after(Duration::zero(), "redeploy queued");
    }

    case StepKind::kFinishTask: {
      if (!task) return ReconcileOutcome::done();
      task->state = core::TaskState::kDone;
      task->updated_at = options_.now();
      if (Status st = store_.update_task(*task); !st.ok())
        return from_error(st.error(), "finishing the task");
      return ReconcileOutcome::requeue_after(Duration::zero(), "task finished");
    }

    case StepKind::kForget: {
      if (Status st = store_.delete_service(service.id);
          !st.ok() && st.error().code != ErrorCode::kNotFound) {
        return from_error(st.error(), "forgetting the service");
      }
      unindex(service.id);
      log::info("service deleted", {{"app", service.id}});
      return ReconcileOutcome::done();
    }
  }
  return ReconcileOutcome::done();
}

void Reconciler::agent_connected(
    const std::string& name, const std::string& zone,
    const std::vector<std::pair<std::string, core::ObservedApp>>& apps) {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    AgentState& a = agents_[name];
    if (!a.zone.empty() && a.zone != zone) zone_agents_[a.zone].erase(name);
    a.zone = zone;
    zone_agents_[zone].insert(name);
    a.connected = true;
    a.epoch += 1;
    a.apps.clear();
    for (const auto& [service_id, app] : apps) {
      a.apps[service_id] = app;
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
  {
    std::lock_guard lock(mu_);
    auto a = agents_.find(name);
    if (a == agents_.end()) return;
    a->second.connected = false;
    zone_agents_[a->second.zone].erase(name);
    for (const auto& id : by_agent_[name]) keys.push_back(id);
  }
  log::warn("agent disconnected", {{"agent", name}});
  for (const auto& k : keys) queue_.add(k);
}

void Reconciler::task_result(const std::string& agent, const core::TaskOutcome& outcome) {
  auto svc = store_.load_service(outcome.service_id);
  if (!svc.ok()) return;  // deleted meanwhile: nothing to record
  core::AppService service = std::move(svc).value();
  auto tasks = store_.pending_tasks(service.id);
  std::optional<core::Task> task;
  if (tasks.ok()) {
    for (auto& t : *tasks) {
      if (t.id == outcome.task_id && t.state != core::TaskState::kDone) task = t;
    }
  }
  const auto now = options_.now();
  {
    std::lock_guard lock(mu_);
    auto& a = agents_[agent];
    if (outcome.ok && !outcome.revision_id.empty() &&
        (!task || task->kind == core::TaskKind::kDeploy)) {
      a.apps[service.id] = core::ObservedApp{outcome.revision_id, outcome.image_digest,
                                             outcome.stable_port, true, outcome.task_id};
    }
    if (outcome.ok && task && task->kind == core::TaskKind::kRemove) a.apps.erase(service.id);
  }
  if (!task) {
    queue_.add(service.id);  // a repeated result: the state may still need a look
    return;
  }

  if (task->kind == core::TaskKind::kDeploy) {
    auto rev = store_.get_revision(service.id, task->revision_id);
    if (rev.ok()) {
      core::Revision revision = std::move(rev).value();
      const bool was_pending = revision.state == core::RevisionState::kPending;
      if (was_pending) {
        revision.deploy_logs.insert(revision.deploy_logs.end(), outcome.logs.begin(),
                                    outcome.logs.end());
        if (!outcome.image_digest.empty() && revision.image_digest.empty()) {
          revision.image_digest = outcome.image_digest;
        }
        (void)core::finish_revision(
            revision, outcome.ok ? core::RevisionState::kSucceeded : core::RevisionState::kFailed,
            now);
      }
      core::apply_outcome(service, revision, now);
      if (outcome.ok) {
        if (outcome.stable_port > 0) {
          service.url =
              "http://" + options_.endpoint_host + ":" + std::to_string(outcome.stable_port);
        }
        service.last_error.clear();
      } else {
        service.last_error = outcome.error;
      }
      Status st = store_.record_outcome(revision, service, options_.keep_succeeded);
      if (!st.ok()) {
        log::error("recording a task result failed",
                   {{"app", service.id}, {"task", outcome.task_id}, {"error", st.error().message}});
        queue_.add(service.id);
        return;  // the task stays sent; the agent answers the resent id with the same result
      }
      std::lock_guard lock(mu_);
      if (outcome.ok)
        ++deploys_succeeded_;
      else
        ++deploys_failed_;
    }
    log::info(outcome.ok ? "deploy succeeded" : "deploy failed",
              {{"app", service.id},
               {"agent", agent},
               {"task", outcome.task_id},
               {"revision_id", outcome.revision_id},
               {"error", outcome.error}});
  } else if (!outcome.ok) {
    service.last_error = outcome.error;
    (void)write_service(service);
    log::warn("task failed", {{"app", service.id},
                              {"agent", agent},
                              {"task", outcome.task_id},
                              {"kind", core::to_string(task->kind)},
                              {"error", outcome.error}});
  }
  task->state = core::TaskState::kDone;
  task->updated_at = now;
  if (Status st = store_.update_task(*task); !st.ok()) {
    log::error("finishing a task failed", {{"task", task->id}, {"error", st.error().message}});
  }
  {
    std::lock_guard lock(mu_);
    auto sent = sent_.find(service.id);
    if (sent != sent_.end() && sent->second.first == task->id) sent_.erase(sent);
  }
  queue_.add(service.id);
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
