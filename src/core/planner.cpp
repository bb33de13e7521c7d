#include "core/planner.h"

#include <algorithm>

namespace berth::core {
namespace {

const char* kTrue = "True";
const char* kFalse = "False";
const char* kUnknown = "Unknown";

// Builds the condition list, keeping last_transition_time when a condition's status did not
// change (metav1.Condition semantics).
class Conditions {
 public:
  Conditions(const std::vector<Condition>& previous, UnixMillis now)
      : previous_(previous), now_(now) {}

  void set(const std::string& type, const char* status, std::string reason, std::string message) {
    Condition c{type, status, std::move(reason), std::move(message), now_};
    for (const auto& old : previous_) {
      if (old.type == type && old.status == c.status)
        c.last_transition_time = old.last_transition_time;
    }
    out_.push_back(std::move(c));
  }
  std::vector<Condition> take() { return std::move(out_); }

 private:
  const std::vector<Condition>& previous_;
  UnixMillis now_;
  std::vector<Condition> out_;
};

bool needs_credential(const Revision& r) { return !r.config.registry_username.empty(); }

// The CredentialsResolved condition for a revision that needs a credential. Returns false when
// the credential makes a deploy impossible (missing or expired), with the reason in `why`.
bool credential_condition(const PlanInput& in, const Revision& rev, Conditions& conds,
                          std::string& why) {
  if (!needs_credential(rev)) return true;
  const auto& cred = in.credential;
  if (!cred || cred->username != rev.config.registry_username) {
    why = "no stored registry credential for user \"" + rev.config.registry_username +
          "\"; supply registry_password";
    conds.set("CredentialsResolved", kFalse, "CredentialMissing", why);
    return false;
  }
  if (cred->registry_host != rev.registry_host) {
    why = "the stored registry credential is for " + cred->registry_host + ", not " +
          rev.registry_host + "; supply registry_password";
    conds.set("CredentialsResolved", kFalse, "CredentialHostMismatch", why);
    return false;
  }
  if (cred->expires_at && in.now >= *cred->expires_at) {
    why = "the registry token for " + cred->registry_host +
          " has expired (ECR tokens last 12 hours); PATCH a fresh registry_password";
    conds.set("CredentialsResolved", kFalse, "CredentialExpired", why);
    return false;
  }
  if (cred->expires_at && *cred->expires_at - in.now <= kCredentialWarnWindowMs) {
    conds.set("CredentialsResolved", kTrue, "CredentialExpiresSoon",
              "the registry token for " + cred->registry_host +
                  " expires within the hour; PATCH a fresh registry_password");
  } else {
    conds.set("CredentialsResolved", kTrue, "CredentialStored",
              "a credential for " + cred->registry_host + " is stored");
  }
  return true;
}

ServiceStatus in_progress_status(const AppService& s) {
  return s.current_deployment_id.empty() ? ServiceStatus::kPending
                                         : ServiceStatus::kPendingModification;
}

Plan make(StepKind step, ServiceStatus status, std::string message, Conditions& conds,
          std::int64_t requeue_ms = 0) {
  Plan p;
  p.step = step;
  p.status = status;
  p.message = std::move(message);
  p.conditions = conds.take();
  p.requeue_after_ms = requeue_ms;
  return p;
}

Plan plan_deleting(const PlanInput& in, Conditions& conds) {
  const auto& s = in.service;
  if (s.agent.empty()) {
    return make(StepKind::kForget, ServiceStatus::kDeleting,
                "the service was never placed on an agent", conds);
  }
  conds.set("Ready", kFalse, "Deleting", "the app is being removed from agent " + s.agent);
  if (!in.task || in.task->kind != TaskKind::kRemove) {
    // Forget only what the agent no longer runs: a record forgotten while its container still
    // runs would leave an app nobody can reach through the API.
    if (in.removal_confirmed) {
      return make(StepKind::kForget, ServiceStatus::kDeleting, "the agent has removed the app",
                  conds);
    }
    if (!in.assigned_agent_connected) {
      return make(StepKind::kWaitForReconnect, ServiceStatus::kDeleting,
                  "agent " + s.agent + " is not connected; removal waits for it", conds,
                  kWaitForAgentRequeueMs);
    }
    if (in.observed) {
      return make(StepKind::kQueueRemove, ServiceStatus::kDeleting,
                  "agent " + s.agent + " still runs the app; queueing its removal", conds);
    }
    return make(StepKind::kForget, ServiceStatus::kDeleting,
                "agent " + s.agent + " does not run the app", conds);
  }
  if (!in.assigned_agent_connected) {
    return make(StepKind::kWaitForReconnect, ServiceStatus::kDeleting,
                "agent " + s.agent + " is not connected; removal waits for it", conds,
                kWaitForAgentRequeueMs);
  }
  if (in.task->state == TaskState::kQueued) {
    Plan p = make(StepKind::kDispatch, ServiceStatus::kDeleting,
                  "sending the removal to agent " + s.agent, conds);
    p.task_id = in.task->id;
    return p;
  }
  return make(StepKind::kAwaitResult, ServiceStatus::kDeleting,
              "waiting for agent " + s.agent + " to remove the app", conds, kAwaitResultRequeueMs);
}

// The agent serves `revision_id` and its probe passes.
bool serving(const PlanInput& in, const std::string& revision_id) {
  return in.observed && !in.observed->missing && in.observed->revision_id == revision_id &&
         in.observed->healthy;
}

// Why the app is not served although a revision is current, or "" when it is (or merely
// unhealthy, which has its own patience).
std::string lost_reason(const PlanInput& in) {
  const auto& s = in.service;
  if (!in.observed) return "agent " + s.agent + " does not run the app";
  if (in.observed->missing) {
    return "agent " + s.agent + " reports the app's container missing" +
           (in.observed->detail.empty() ? std::string() : ": " + in.observed->detail);
  }
  if (in.observed->revision_id != s.current_deployment_id) {
    return "agent " + s.agent + " runs another revision";
  }
  return {};
}

// Shows a step the runtime is retrying: the Progressing condition names the step, the error
// and the next attempt, and last_error carries "step: error".
// Returns the last_error to show, nullopt when nothing is being retried.
std::optional<std::string> show_retry(const PlanInput& in, Conditions& conds) {
  if (!in.retry) return std::nullopt;
  const auto& r = *in.retry;
  std::string text = r.step + ": " + r.message;
  conds.set("Progressing", kTrue, "Retrying",
            text + "; next attempt at " + format_rfc3339(r.next_attempt_at));
  return text;
}

Plan plan_deploy_task(const PlanInput& in, Conditions& conds) {
  const AppService& s = in.service;
  const Task& t = *in.task;
  if (!in.desired || in.desired->id != t.revision_id) {
    // The task belongs to a revision that is no longer the desired one: a later change
    // superseded it (the runtime marks a revision that never ran `superseded`).
    return make(StepKind::kFinishTask, in_progress_status(s),
                "the task's revision is no longer the desired one", conds);
  }
  const Revision& rev = *in.desired;
  // A deploy task for the revision that already serves is a redeploy (the agent lost the
  // app); any other revision with an outcome is done.
  const bool redeploy = rev.state == RevisionState::kSucceeded && rev.id == s.current_deployment_id;
  if (rev.state != RevisionState::kPending && !redeploy) {
    return make(StepKind::kFinishTask, s.status, "the revision already has an outcome", conds);
  }
  if (redeploy && serving(in, rev.id)) {
    return make(StepKind::kFinishTask, ServiceStatus::kRunning,
                "agent " + s.agent + " serves the current revision again", conds);
  }
  if (redeploy) {
    // Nothing serves meanwhile: the API must not say Ready for an app whose container is gone.
    const std::string lost = lost_reason(in);
    const std::string why = lost.empty() ? "the app is being redeployed" : lost;
    conds.set("Ready", kFalse, "Redeploying", why);
    conds.set("Degraded", kTrue, "Redeploying",
              why + "; redeploying revision " + std::to_string(rev.number));
  }
  std::string why;
  const bool credential_ok = credential_condition(in, rev, conds, why);
  if (!redeploy && serving(in, rev.id)) {
    conds.set("Progressing", kFalse, "Adopted",
              "agent " + s.agent + " already serves revision " + std::to_string(rev.number));
    return make(StepKind::kAdoptObserved, ServiceStatus::kRunning,
                "agent " + s.agent + " reports the desired revision running", conds);
  }
  if (!credential_ok) {
    // A redeploy cannot fail its revision (it already succeeded): the executor only records
    // the error; the app stays down until a fresh credential is PATCHed.
    ServiceStatus status = ServiceStatus::kFailed;
    if (!redeploy && !s.current_deployment_id.empty()) status = ServiceStatus::kRunning;
    Plan p = make(StepKind::kFailRevision, status, why, conds);
    p.last_error = "credentials: " + why;
    return p;
  }
  std::optional<std::string> retrying = show_retry(in, conds);
  if (!retrying) {
    conds.set("Progressing", kTrue, "Deploying",
              "rolling out revision " + std::to_string(rev.number) + " on agent " + s.agent);
  }
  if (rev.image_digest.empty()) {
    Plan p = make(StepKind::kResolveDigest, in_progress_status(s),
                  "resolving " + rev.config.image_ref + " to a digest", conds);
    p.last_error = std::move(retrying);
    return p;
  }
  if (t.state == TaskState::kQueued) {
    Plan p = make(StepKind::kDispatch, in_progress_status(s),
                  "sending revision " + std::to_string(rev.number) + " to agent " + s.agent, conds);
    p.task_id = t.id;
    p.last_error = std::move(retrying);
    return p;
  }
  return make(StepKind::kAwaitResult, in_progress_status(s),
              "waiting for agent " + s.agent + " to finish the rollout", conds,
              kAwaitResultRequeueMs);
}

// Restart and remove outside deletion. A restart needs no pull, so the credential (and an
// expired ECR token) does not matter; a restart of an app whose container is gone redeploys.
Plan plan_other_task(const PlanInput& in, Conditions& conds) {
  const AppService& s = in.service;
  const Task& t = *in.task;
  if (t.kind == TaskKind::kRestart && t.state == TaskState::kQueued &&
      !s.current_deployment_id.empty()) {
    const std::string lost = lost_reason(in);
    if (!lost.empty()) {
      const std::string why = lost + "; the restart redeploys the current revision";
      conds.set("Ready", kFalse, "Redeploying", why);
      conds.set("Degraded", kTrue, "Redeploying", why);
      return make(StepKind::kRedeployCurrent, ServiceStatus::kPendingModification, why, conds);
    }
  }
  conds.set("Progressing", kTrue, t.kind == TaskKind::kRestart ? "Restarting" : "Removing",
            std::string(to_string(t.kind)) + " on agent " + s.agent);
  if (t.state == TaskState::kQueued) {
    Plan p = make(StepKind::kDispatch, s.status,
                  std::string("sending ") + to_string(t.kind) + " to agent " + s.agent, conds);
    p.task_id = t.id;
    return p;
  }
  return make(StepKind::kAwaitResult, s.status, "waiting for agent " + s.agent, conds,
              kAwaitResultRequeueMs);
}

// No task in flight: converge what runs to the current revision, or report the steady state.
Plan plan_steady(const PlanInput& in, Conditions& conds) {
  const AppService& s = in.service;
  if (s.current_deployment_id.empty()) {
    const bool failed = in.desired && in.desired->state == RevisionState::kFailed;
    conds.set("Ready", kFalse, failed ? "DeployFailed" : "NoRevision",
              failed ? "the first deployment failed" : "nothing has been deployed");
    return make(StepKind::kNothing, failed ? ServiceStatus::kFailed : in_progress_status(s),
                failed ? "the first deployment failed" : "nothing to deploy", conds);
  }
  if (!in.assigned_agent_connected) {
    const std::string why = "agent " + s.agent + " is not connected";
    conds.set("Ready", kUnknown, "AgentDisconnected", why);
    return make(StepKind::kWaitForReconnect, s.status, why, conds, kWaitForAgentRequeueMs);
  }
  if (const std::string lost = lost_reason(in); !lost.empty()) {
    const std::string why = lost + "; redeploying the current revision";
    conds.set("Ready", kFalse, "Drifted", why);
    conds.set("Degraded", kTrue, "Drifted", why);
    return make(StepKind::kRedeployCurrent, ServiceStatus::kPendingModification, why, conds);
  }
  if (!in.observed->healthy) {
    std::string why = "agent " + s.agent + " reports the app unhealthy";
    if (!in.observed->detail.empty()) why += ": " + in.observed->detail;
    conds.set("Ready", kFalse, "Unhealthy", why);
    const UnixMillis since =
        in.observed->unhealthy_since > 0 ? in.observed->unhealthy_since : in.now;
    const std::int64_t left = since + kUnhealthyRedeployAfterMs - in.now;
    if (left <= 0) {
      conds.set("Degraded", kTrue, "Unhealthy", why + "; redeploying the current revision");
      return make(StepKind::kRedeployCurrent, ServiceStatus::kPendingModification,
                  why + "; redeploying the current revision", conds);
    }
    conds.set("Degraded", kTrue, "Unhealthy", why);
    return make(StepKind::kNothing, ServiceStatus::kRunning, "the app is unhealthy", conds, left);
  }
  conds.set("Ready", kTrue, "Running", "the current revision is serving");
  conds.set("Progressing", kFalse, "Complete", "the rollout is complete");
  return make(StepKind::kNothing, ServiceStatus::kRunning, "converged", conds);
}

}  // namespace

const char* to_string(StepKind k) {
  switch (k) {
    case StepKind::kNothing:
      return "nothing";
    case StepKind::kWaitForAgent:
      return "wait_for_agent";
    case StepKind::kAssignAgent:
      return "assign_agent";
    case StepKind::kWaitForReconnect:
      return "wait_for_reconnect";
    case StepKind::kFailRevision:
      return "fail_revision";
    case StepKind::kResolveDigest:
      return "resolve_digest";
    case StepKind::kDispatch:
      return "dispatch";
    case StepKind::kAwaitResult:
      return "await_result";
    case StepKind::kAdoptObserved:
      return "adopt_observed";
    case StepKind::kRedeployCurrent:
      return "redeploy_current";
    case StepKind::kFinishTask:
      return "finish_task";
    case StepKind::kQueueRemove:
      return "queue_remove";
    case StepKind::kForget:
      return "forget";
  }
  return "nothing";
}

Plan plan_next(const PlanInput& in) {
  const AppService& s = in.service;
  Conditions conds(s.conditions, in.now);

  if (s.status == ServiceStatus::kDeleting) return plan_deleting(in, conds);

  // 1. Placement: a service goes to the least-loaded connected agent of its zone and stays there.
  if (s.agent.empty()) {
    const AgentView* best = nullptr;
    for (const auto& a : in.connected_agents) {
      if (a.zone != s.zone) continue;
      if (best == nullptr || a.load < best->load || (a.load == best->load && a.name < best->name)) {
        best = &a;
      }
    }
    if (best == nullptr) {
      const std::string why = "no agent is connected in zone \"" + s.zone + "\"";
      conds.set("Scheduled", kFalse, "NoAgentInZone", why);
      conds.set("Ready", kFalse, "NotScheduled", why);
      return make(StepKind::kWaitForAgent, in_progress_status(s), why, conds,
                  kWaitForAgentRequeueMs);
    }
    Plan p = make(StepKind::kAssignAgent, in_progress_status(s),
                  "placing the service on agent " + best->name, conds);
    p.agent = best->name;
    return p;
  }
  conds.set("Scheduled", kTrue, "Assigned", "placed on agent " + s.agent);

  // 2. A task in flight decides what happens next.
  if (in.task) {
    if (!in.assigned_agent_connected) {
      const std::string why = "agent " + s.agent + " is not connected; the change waits for it";
      conds.set("Progressing", kUnknown, "AgentDisconnected", why);
      return make(StepKind::kWaitForReconnect,
                  in.task->kind == TaskKind::kDeploy ? in_progress_status(s) : s.status, why, conds,
                  kWaitForAgentRequeueMs);
    }
    return in.task->kind == TaskKind::kDeploy ? plan_deploy_task(in, conds)
                                              : plan_other_task(in, conds);
  }

  // 3. No task: converge the agent to the current revision, or report the steady state.
  return plan_steady(in, conds);
}

}  // namespace berth::core
