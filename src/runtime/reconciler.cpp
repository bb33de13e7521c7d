#include "runtime/reconciler.h"

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "common/pause_point.h"
#include "core/change.h"
#include "core/image_ref.h"
#include "core/revision.h"
#include "runtime/reconciler_log.h"

namespace berth::runtime {

using detail::app_fields;
using detail::log_entry;
using detail::next_delay;
namespace {

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

}  // namespace

Reconciler::Reconciler(core::StateStore& store, core::AgentGateway& agents,
                       core::DigestResolver& resolver, WorkQueue& queue, ReconcilerOptions options)
    : store_(store),
      gateway_(agents),
      resolver_(resolver),
      queue_(queue),
      options_(std::move(options)),
      metrics_(make_metrics(options_.metrics)) {
  if (!options_.steady_now) options_.steady_now = options_.now;
}

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
  removals_.erase(service_id);
  retries_.erase(service_id);
  removal_confirmed_.erase(service_id);
  drop_sent_locked(service_id);
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

// Marks a task done. A task that is already done (kFailedPrecondition) is what we wanted.
Status Reconciler::finish_task(core::Task& task) {
  task.state = core::TaskState::kDone;
  task.updated_at = options_.now();
  Status st = store_.update_task(task);
  if (!st.ok() && st.error().code != ErrorCode::kFailedPrecondition) return st;
  bool had_progress = false;
  {
    std::lock_guard lock(mu_);
    auto s = sent_.find(task.service_id);
    if (s != sent_.end() && s->second.task_id == task.id)
      had_progress = drop_sent_locked(task.service_id);
  }
  if (had_progress) progress_gone(task.service_id);
  return Status::Ok();
}

void Reconciler::clear_retry(const std::string& service_id) {
  std::lock_guard lock(mu_);
  retries_.erase(service_id);
}

// Remembers a failing step so the planner shows it (condition + last_error) and retries it with
// the key's backoff.
ReconcileOutcome Reconciler::retry_step(Context& ctx, const std::string& step, const Error& error) {
  const auto next = options_.now() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                         queue_.next_backoff(ctx.service.id))
                                         .count();
  bool first = false;
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = retries_.try_emplace(ctx.service.id);
    first = inserted || it->second.message != error.message;
    it->second = core::PendingRetry{step, error.message, next};
  }
  if (first) {
    // Logged when the error starts or changes, not on every retry.
    auto f = app_fields(ctx.service);
    f["step"] = step;
    f["error"] = error.message;
    log::warn("step failed, will retry", f);
  }
  // Show the retry now; the planner shows it on every pass until the step succeeds.
  core::PlanInput in = plan_input(ctx);
  const core::Plan shown = core::plan_next(in);
  if (shown.last_error &&
      (*shown.last_error != ctx.service.last_error || shown.conditions != ctx.service.conditions)) {
    ctx.service.conditions = shown.conditions;
    ctx.service.last_error = *shown.last_error;
    (void)write_service(ctx.service);
  }
  return ReconcileOutcome::retry(step + ": " + error.message);
}

// --- one reconcile pass --------------------------------------------------------------------

ReconcileOutcome Reconciler::reconcile(const std::string& service_id) {
  if (Status st = apply_results(service_id); !st.ok()) {
    // The result stays in memory; the key's backoff decides when to try again.
    return ReconcileOutcome::retry("recording a task result: " + st.error().message);
  }
  Context ctx;
  if (auto early = load(service_id, ctx)) return *early;

  core::PlanInput in = plan_input(ctx);
  ctx.plan = core::plan_next(in);
  log::debug("reconcile planned", {{"app", service_id},
                                   {"app_name", ctx.service.name},
                                   {"step", core::to_string(ctx.plan.step)},
                                   {"reason", ctx.plan.message}});

  core::AppService& s = ctx.service;
  const bool error_changed = ctx.plan.last_error && *ctx.plan.last_error != s.last_error;
  if (ctx.plan.step != core::StepKind::kForget &&
      (s.status != ctx.plan.status || s.conditions != ctx.plan.conditions || error_changed)) {
    s.status = ctx.plan.status;
    s.conditions = ctx.plan.conditions;
    if (ctx.plan.last_error) s.last_error = *ctx.plan.last_error;
    if (Status st = write_service(s); !st.ok()) return from_error(st.error(), "writing status");
  }
  return execute(ctx);
}

std::optional<ReconcileOutcome> Reconciler::load(const std::string& service_id, Context& ctx) {
  auto loaded = store_.load_service(service_id);
  if (!loaded.ok()) {
    if (loaded.error().code == ErrorCode::kNotFound) return reap_orphan(service_id);
    return from_error(loaded.error(), "loading the service");
  }
  ctx.service = std::move(loaded).value();

  auto tasks = store_.pending_tasks(service_id);
  if (!tasks.ok()) return from_error(tasks.error(), "loading tasks");
  std::vector<core::Task> open_tasks = std::move(tasks).value();
  if (ctx.service.status == core::ServiceStatus::kDeleting) {
    // A removal supersedes whatever was still in flight: only the remove task matters now.
    std::erase_if(open_tasks,
                  [](const core::Task& t) { return t.kind != core::TaskKind::kRemove; });
  }
  ctx.task = oldest_unfinished(std::move(open_tasks));

  if (!ctx.service.desired_deployment_id.empty()) {
    auto rev = store_.get_revision(service_id, ctx.service.desired_deployment_id);
    if (rev.ok()) {
      ctx.desired = std::move(rev).value();
    } else if (rev.error().code != ErrorCode::kNotFound) {
      return from_error(rev.error(), "loading the desired revision");
    }
  }
  return std::nullopt;
}

core::PlanInput Reconciler::plan_input(Context& ctx) {
  core::PlanInput in;
  in.now = options_.now();
  const std::string& id = ctx.service.id;
  {
    std::lock_guard lock(mu_);
    if (ctx.service.agent.empty()) {
      // Only placement needs the candidates, and only those of the service's zone.
      auto zone = zone_agents_.find(ctx.service.zone);
      if (zone != zone_agents_.end()) {
        for (const auto& name : zone->second) {
          auto load = by_agent_.find(name);
          in.connected_agents.push_back(
              core::AgentView{name, ctx.service.zone,
                              load == by_agent_.end() ? 0 : static_cast<int>(load->second.size())});
        }
      }
    } else {
      index_placement(id, ctx.service.agent);
      auto a = agents_.find(ctx.service.agent);
      if (a != agents_.end() && a->second.connected) {
        in.assigned_agent_connected = true;
        auto app = a->second.apps.find(id);
        if (app != a->second.apps.end()) in.observed = app->second;
        if (ctx.task && ctx.task->state == core::TaskState::kSent) {
          auto sent = sent_.find(id);
          if (sent == sent_.end() || sent->second.task_id != ctx.task->id ||
              sent->second.epoch != a->second.epoch) {
            // Sent over an earlier connection (or by an earlier process): it may never have
            // arrived. Send it again; the agent applies each id once.
            ctx.task->state = core::TaskState::kQueued;
          } else if (!sent->second.acked) {
            const auto due = sent->second.sent_at + options_.resend_unacked_ms;
            if (options_.steady_now() >= due) {
              ctx.task->state = core::TaskState::kQueued;  // no ack: the frame may be lost
            } else {
              ctx.resend_at = due;
            }
          }
        }
      }
    }
    if (auto r = retries_.find(id); r != retries_.end()) in.retry = r->second;
    in.removal_confirmed = removal_confirmed_.contains(id);
  }
  auto credential = store_.get_credential(id);
  if (credential.ok()) in.credential = std::move(credential).value();
  in.service = ctx.service;
  in.desired = ctx.desired;
  in.task = ctx.task;
  return in;
}

ReconcileOutcome Reconciler::execute(Context& ctx) {
  using core::StepKind;
  switch (ctx.plan.step) {
    case StepKind::kNothing:
      return step_nothing(ctx);
    case StepKind::kWaitForAgent:
      return step_wait_for_agent(ctx);
    case StepKind::kWaitForReconnect:
    case StepKind::kAwaitResult:
      return step_wait(ctx);
    case StepKind::kAssignAgent:
      return step_assign_agent(ctx);
    case StepKind::kFailRevision:
      return step_fail_revision(ctx);
    case StepKind::kResolveDigest:
      return step_resolve_digest(ctx);
    case StepKind::kDispatch:
      return step_dispatch(ctx);
    case StepKind::kAdoptObserved:
      return step_adopt_observed(ctx);
    case StepKind::kRedeployCurrent:
      return step_redeploy_current(ctx);
    case StepKind::kFinishTask:
      return step_finish_task(ctx);
    case StepKind::kQueueRemove:
      return step_queue_remove(ctx);
    case StepKind::kForget:
      return step_forget(ctx);
  }
  return ReconcileOutcome::done();
}

// --- plan steps ----------------------------------------------------------------------------

ReconcileOutcome Reconciler::step_nothing(Context& ctx) {
  {
    std::lock_guard lock(mu_);
    if (ctx.plan.status == core::ServiceStatus::kRunning &&
        ctx.plan.requeue_after_ms == 0) {  // serving and healthy: the next loss starts over
      redeploys_.erase(ctx.service.id);
    }
  }
  if (ctx.plan.requeue_after_ms > 0) {
    return ReconcileOutcome::requeue_after(ms(ctx.plan.requeue_after_ms), ctx.plan.message);
  }
  return ReconcileOutcome::done();
}

ReconcileOutcome Reconciler::step_wait_for_agent(Context& ctx) {
  {
    std::lock_guard lock(mu_);
    waiting_[ctx.service.zone].insert(ctx.service.id);
  }
  return ReconcileOutcome::requeue_after(ms(ctx.plan.requeue_after_ms), "no agent in the zone");
}

ReconcileOutcome Reconciler::step_wait(Context& ctx) {
  std::int64_t after = ctx.plan.requeue_after_ms;
  if (ctx.resend_at > 0) after = std::min(after, ctx.resend_at - options_.steady_now());
  return ReconcileOutcome::requeue_after(ms(std::max<std::int64_t>(after, 0)),
                                         core::to_string(ctx.plan.step));
}

ReconcileOutcome Reconciler::step_assign_agent(Context& ctx) {
  ctx.service.agent = ctx.plan.agent;
  if (Status st = write_service(ctx.service); !st.ok()) return from_error(st.error(), "assigning");
  {
    std::lock_guard lock(mu_);
    index_placement(ctx.service.id, ctx.plan.agent);
    waiting_[ctx.service.zone].erase(ctx.service.id);
  }
  auto f = app_fields(ctx.service);
  f["agent"] = ctx.plan.agent;
  log::info("service placed", f);
  return ReconcileOutcome::requeue_after(Duration::zero(), "placed");
}

ReconcileOutcome Reconciler::step_fail_revision(Context& ctx) {
  if (!ctx.desired) return ReconcileOutcome::terminal("no revision to fail");
  if (ctx.desired->state == core::RevisionState::kSucceeded) {
    // A redeploy of the serving revision that cannot pull: the revision keeps its outcome; the
    // status and last_error (already written) say why nothing serves.
    if (ctx.task) {
      if (Status st = finish_task(*ctx.task); !st.ok()) {
        return from_error(st.error(), "finishing the redeploy");
      }
    }
    auto f = app_fields(ctx.service);
    f["error"] = ctx.plan.message;
    log::warn("redeploy impossible", f);
    return ReconcileOutcome::done();
  }
  if (Status st = fail_revision(ctx, "credentials", ctx.plan.message); !st.ok()) {
    return from_error(st.error(), "recording the failure");
  }
  return ReconcileOutcome::requeue_after(Duration::zero(), "revision failed");
}

Status Reconciler::fail_revision(Context& ctx, const std::string& step,
                                 const std::string& message) {
  core::Revision& revision = *ctx.desired;
  const auto now = options_.now();
  revision.deploy_logs.push_back(log_entry(step, "failed", message, now));
  if (Status st = core::finish_revision(revision, core::RevisionState::kFailed, now); !st.ok()) {
    return st;
  }
  core::apply_outcome(ctx.service, revision, now);  // last_error: "step: message"
  if (Status st = store_.record_outcome(revision, ctx.service, options_.keep_succeeded); !st.ok()) {
    return st;
  }
  if (ctx.task) {
    if (Status st = finish_task(*ctx.task); !st.ok()) return st;
  }
  {
    std::lock_guard lock(mu_);
    ++deploys_failed_;
    retries_.erase(ctx.service.id);
  }
  auto f = app_fields(ctx.service);
  f["revision"] = revision.number;
  f["step"] = step;
  f["error"] = message;
  log::warn("revision failed", f);
  return Status::Ok();
}

ReconcileOutcome Reconciler::step_resolve_digest(Context& ctx) {
  if (!ctx.desired) return ReconcileOutcome::terminal("no revision to resolve");
  core::Revision& rev = *ctx.desired;
  std::optional<core::RegistryLogin> login;
  if (!rev.config.registry_username.empty()) {
    auto pw =
        store_.unseal_password(ctx.service.id, rev.registry_host, rev.config.registry_username);
    if (!pw.ok()) {
      if (pw.error().code == ErrorCode::kFailedPrecondition) {
        // A change replaced the credential since the plan was made: plan again.
        return ReconcileOutcome::requeue_after(Duration::zero(), "the credential changed");
      }
      if (pw.error().retryable()) return from_error(pw.error(), "unsealing the credential");
      if (Status st = fail_revision(ctx, "credentials", pw.error().message); !st.ok()) {
        return from_error(st.error(), "recording the failure");
      }
      return ReconcileOutcome::requeue_after(Duration::zero(), "credential unreadable");
    }
    login = core::RegistryLogin{rev.config.registry_username, std::move(pw).value()};
  }
  const auto started = options_.now();
  auto digest = resolver_.resolve(rev.config.image_ref, login ? &*login : nullptr);
  if (!digest.ok()) {
    if (digest.error().retryable()) return retry_step(ctx, "resolve", digest.error());
    if (Status st = fail_revision(ctx, "resolve", digest.error().message); !st.ok()) {
      return from_error(st.error(), "recording the failure");
    }
    return ReconcileOutcome::requeue_after(Duration::zero(), "image could not be resolved");
  }
  clear_retry(ctx.service.id);
  rev.image_digest = *digest;
  core::DeployLogEntry entry =
      log_entry("resolve", "ok", "resolved " + rev.config.image_ref, started);
  entry.detail = *digest;
  entry.duration_ms = options_.now() - started;
  rev.deploy_logs.push_back(entry);
  // The retry is over: its last_error goes with it.
  if (ctx.service.last_error.starts_with("resolve: ")) ctx.service.last_error.clear();
  if (Status st = store_.record_outcome(rev, ctx.service, options_.keep_succeeded); !st.ok()) {
    return from_error(st.error(), "recording the digest");
  }
  return ReconcileOutcome::requeue_after(Duration::zero(), "digest resolved");
}

ReconcileOutcome Reconciler::step_dispatch(Context& ctx) {
  if (!ctx.task) return ReconcileOutcome::terminal("no task to dispatch");
  core::Task& task = *ctx.task;
  if (task.kind == core::TaskKind::kRemove) {
    std::lock_guard lock(mu_);
    auto r = removals_.find(ctx.service.id);
    const auto now = options_.steady_now();
    if (r != removals_.end() && now < r->second.not_before) {
      return ReconcileOutcome::requeue_after(ms(r->second.not_before - now), "removal backoff");
    }
  }
  if (Status st = send(ctx); !st.ok()) {
    if (st.error().code == ErrorCode::kFailedPrecondition) {
      // The stored credential is no longer the one the plan checked (a PATCH replaced it), or
      // the task is already done: nothing was sent; plan again with what is stored now.
      return ReconcileOutcome::requeue_after(Duration::zero(), "the state changed; replanning");
    }
    if (st.error().code == ErrorCode::kDataLoss && ctx.desired &&
        ctx.desired->state == core::RevisionState::kPending) {
      if (Status failed = fail_revision(ctx, "credentials", st.error().message); !failed.ok()) {
        return from_error(failed.error(), "recording the failure");
      }
      return ReconcileOutcome::requeue_after(Duration::zero(), "credential unreadable");
    }
    return from_error(st.error(), "dispatching");
  }
  clear_retry(ctx.service.id);
  auto f = app_fields(ctx.service);
  f["agent"] = ctx.service.agent;
  f["task_id"] = task.id;
  f["kind"] = core::to_string(task.kind);
  f["attempt"] = task.attempts;
  log::info("task dispatched", f);
  return ReconcileOutcome::requeue_after(ms(options_.resend_unacked_ms), "dispatched");
}

// Marks the task sent, then sends it. Marking first means the store never holds "queued" for a
// task the agent may already have; if the send fails the task is sent again (it is not in
// sent_, so the next pass treats it as never sent).
Status Reconciler::send(Context& ctx) {
  core::Task& task = *ctx.task;
  const auto now = options_.now();
  task.state = core::TaskState::kSent;
  task.agent = ctx.service.agent;
  task.attempts += 1;
  task.updated_at = now;
  // kFailedPrecondition: already done (a result completed it meanwhile); nothing to send, and
  // the caller plans again.
  if (Status st = store_.update_task(task); !st.ok()) return st;
  pause_point("dispatch");  // marked sent, not yet sent (tests/crash)
  Status sent;
  switch (task.kind) {
    case core::TaskKind::kDeploy:
      sent = send_deploy(ctx);
      break;
    case core::TaskKind::kRestart:
      sent = gateway_.send_restart(ctx.service.agent, task.id, ctx.service.id);
      break;
    case core::TaskKind::kRemove:
      sent = gateway_.send_remove(ctx.service.agent, task.id, ctx.service.id);
      break;
  }
  if (!sent.ok()) return sent;
  std::lock_guard lock(mu_);
  auto a = agents_.find(ctx.service.agent);
  auto& record = sent_[ctx.service.id];
  if (!record.task_id.empty() && record.task_id != task.id) sent_by_task_.erase(record.task_id);
  record =
      SentTask{task.id, a == agents_.end() ? 0 : a->second.epoch, options_.steady_now(), false};
  sent_by_task_[task.id] = ctx.service.id;
  return Status::Ok();
}

Status Reconciler::send_deploy(Context& ctx) {
  if (!ctx.desired) return make_error(ErrorCode::kInternal, "deploy task without a revision");
  const core::Revision& rev = *ctx.desired;
  auto ref = core::parse_image_ref(rev.config.image_ref);
  if (!ref.ok()) return ref.error();
  core::DeployOrder order;
  order.task_id = ctx.task->id;
  order.service_id = ctx.service.id;
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
    // Only the credential the plan checked: the revision's registry and username. A PATCH that
    // stored another registry's credential since then makes this kFailedPrecondition, and that
    // password is never sent here.
    auto pw =
        store_.unseal_password(ctx.service.id, rev.registry_host, rev.config.registry_username);
    if (!pw.ok()) {
      // Not sent after all: put the task back so the next plan sees it queued.
      ctx.task->state = core::TaskState::kQueued;
      (void)store_.update_task(*ctx.task);
      return pw.error();
    }
    password = std::move(pw).value();
    order.auth_keys = ref->auth_keys();
    order.username = rev.config.registry_username;
  }
  return gateway_.send_deploy(ctx.service.agent, order, password ? &*password : nullptr);
}

ReconcileOutcome Reconciler::step_adopt_observed(Context& ctx) {
  if (!ctx.desired || !ctx.task) return ReconcileOutcome::terminal("nothing to adopt");
  const auto now = options_.now();
  core::Revision& rev = *ctx.desired;
  rev.deploy_logs.push_back(log_entry(
      "adopt", "info", "agent " + ctx.service.agent + " reported this revision serving", now));
  if (Status st = core::finish_revision(rev, core::RevisionState::kSucceeded, now); !st.ok()) {
    return ReconcileOutcome::terminal(st.error().message);
  }
  core::apply_outcome(ctx.service, rev, now);
  {
    std::lock_guard lock(mu_);
    auto a = agents_.find(ctx.service.agent);
    if (a != agents_.end()) {
      auto app = a->second.apps.find(ctx.service.id);
      if (app != a->second.apps.end() && app->second.stable_port > 0) {
        ctx.service.url =
            "http://" + options_.endpoint_host + ":" + std::to_string(app->second.stable_port);
      }
    }
  }
  if (Status st = store_.record_outcome(rev, ctx.service, options_.keep_succeeded); !st.ok()) {
    return from_error(st.error(), "recording the adopted outcome");
  }
  if (Status st = finish_task(*ctx.task); !st.ok()) {
    return from_error(st.error(), "finishing the task");
  }
  return ReconcileOutcome::requeue_after(Duration::zero(), "adopted");
}

ReconcileOutcome Reconciler::step_redeploy_current(Context& ctx) {
  core::AppService& service = ctx.service;
  const auto now = options_.now();
  {
    const auto steady = options_.steady_now();
    // The agent lost the app again soon after a redeploy: back off (1 s doubling, capped at
    // 5 min) instead of looping.
    std::lock_guard lock(mu_);
    auto& r = redeploys_[service.id];
    if (steady < r.not_before) {
      return ReconcileOutcome::requeue_after(ms(r.not_before - steady), "redeploy backoff");
    }
    r.not_before = steady + next_delay(r.count, 300'000);
    r.count += 1;
  }
  // A restart of an app whose container is gone becomes this redeploy.
  if (ctx.task && ctx.task->kind == core::TaskKind::kRestart) {
    if (Status st = finish_task(*ctx.task); !st.ok()) {
      return from_error(st.error(), "finishing the restart");
    }
  }
  // The deploy log of the serving revision says why it is deployed again.
  auto current = store_.get_revision(service.id, service.current_deployment_id);
  if (!current.ok()) return from_error(current.error(), "loading the current revision");
  core::Revision rev = std::move(current).value();
  rev.deploy_logs.push_back(log_entry("redeploy", "info", ctx.plan.message, now));
  if (Status st = store_.record_outcome(rev, service, options_.keep_succeeded); !st.ok()) {
    return from_error(st.error(), "recording the redeploy");
  }

  const std::int64_t expected = service.generation;
  service.desired_deployment_id = service.current_deployment_id;
  service.generation += 1;
  service.updated_at = now;
  core::Change change;
  change.service = service;
  change.task = core::new_task(service.id, service.current_deployment_id, core::TaskKind::kDeploy,
                               core::ChangeIds{options_.new_id, now});
  if (Status st = store_.apply_change(change, expected); !st.ok()) {
    return from_error(st.error(), "queueing a redeploy");
  }
  auto f = app_fields(service);
  f["agent"] = service.agent;
  f["revision"] = rev.number;
  f["reason"] = ctx.plan.message;
  log::warn("redeploying the current revision", f);
  return ReconcileOutcome::requeue_after(Duration::zero(), "redeploy queued");
}

ReconcileOutcome Reconciler::step_finish_task(Context& ctx) {
  if (!ctx.task) return ReconcileOutcome::done();
  core::Task& task = *ctx.task;
  // A deploy of a revision that a later change replaced before it had an outcome: the revision
  // is marked superseded so it does not stay pending forever.
  if (task.kind == core::TaskKind::kDeploy &&
      (!ctx.desired || ctx.desired->id != task.revision_id)) {
    auto old = store_.get_revision(ctx.service.id, task.revision_id);
    if (old.ok() && old->state == core::RevisionState::kPending) {
      core::Revision rev = std::move(old).value();
      const auto now = options_.now();
      const std::string by =
          ctx.desired ? "revision " + std::to_string(ctx.desired->number) : "a later change";
      rev.deploy_logs.push_back(log_entry("superseded", "info", "superseded by " + by, now));
      (void)core::finish_revision(rev, core::RevisionState::kSuperseded, now);
      if (Status st = store_.record_outcome(rev, ctx.service, options_.keep_succeeded); !st.ok()) {
        return from_error(st.error(), "marking the revision superseded");
      }
      auto f = app_fields(ctx.service);
      f["revision"] = rev.number;
      log::info("revision superseded", f);
    } else if (!old.ok() && old.error().code != ErrorCode::kNotFound) {
      return from_error(old.error(), "loading the superseded revision");
    }
  }
  if (Status st = finish_task(task); !st.ok()) return from_error(st.error(), "finishing the task");
  return ReconcileOutcome::requeue_after(Duration::zero(), "task finished");
}

ReconcileOutcome Reconciler::step_queue_remove(Context& ctx) {
  core::Change change;
  change.service = ctx.service;
  change.task = core::new_task(ctx.service.id, "", core::TaskKind::kRemove,
                               core::ChangeIds{options_.new_id, options_.now()});
  if (Status st = store_.apply_change(change, ctx.service.generation); !st.ok()) {
    return from_error(st.error(), "queueing the removal");
  }
  auto f = app_fields(ctx.service);
  f["agent"] = ctx.service.agent;
  log::info("removal queued", f);
  return ReconcileOutcome::requeue_after(Duration::zero(), "removal queued");
}

ReconcileOutcome Reconciler::step_forget(Context& ctx) {
  if (Status st = store_.delete_service(ctx.service.id);
      !st.ok() && st.error().code != ErrorCode::kNotFound) {
    return from_error(st.error(), "forgetting the service");
  }
  unindex(ctx.service.id);
  log::info("service deleted", app_fields(ctx.service));
  return ReconcileOutcome::done();
}

// An app an agent runs for a service the store does not know: removed after a grace period
// (a store restored from backup, a delete forgotten before the agent confirmed it).
ReconcileOutcome Reconciler::reap_orphan(const std::string& service_id) {
  const auto now = options_.steady_now();
  std::string agent;
  std::string task_id;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, a] : agents_) {
      auto app = a.apps.find(service_id);
      // A missing app has no container left to remove (e.g. the last report of one just deleted).
      if (a.connected && app != a.apps.end() && !app->second.missing) {
        agent = name;
        break;
      }
    }
    if (agent.empty()) {
      orphans_.erase(service_id);
    } else {
      auto [it, first] = orphans_.try_emplace(service_id, Orphan{agent, now, {}, 0});
      Orphan& o = it->second;
      if (first) {
        log::warn(
            "agent runs an app no service owns; it will be removed",
            {{"agent", agent}, {"app", service_id}, {"grace_s", options_.orphan_grace_ms / 1000}});
      }
      const auto due = o.first_seen + options_.orphan_grace_ms;
      if (now < due) return ReconcileOutcome::requeue_after(ms(due - now), "orphan grace period");
      if (o.sent_at > 0 && now < o.sent_at + options_.resend_unacked_ms) {
        return ReconcileOutcome::requeue_after(ms(o.sent_at + options_.resend_unacked_ms - now),
                                               "orphan removal sent");
      }
      if (o.task_id.empty()) o.task_id = options_.new_id();
      o.agent = agent;
      o.sent_at = now;
      task_id = o.task_id;
    }
  }
  if (agent.empty()) {
    unindex(service_id);
    return ReconcileOutcome::done();
  }
  if (Status st = gateway_.send_remove(agent, task_id, service_id); !st.ok()) {
    return from_error(st.error(), "removing an orphaned app");
  }
  log::warn("removing an app no service owns",
            {{"agent", agent}, {"app", service_id}, {"task_id", task_id}});
  return ReconcileOutcome::requeue_after(ms(options_.resend_unacked_ms), "orphan removal sent");
}

}  // namespace berth::runtime
