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
  if (!in.task || in.task->kind != TaskKind::kRemove) {
    return make(StepKind::kForget, ServiceStatus::kDeleting, "the agent has removed the app",
                conds);
  }
  conds.set("Ready", kFalse, "Deleting", "the app is being removed from agent " + s.agent);
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
    const Task& t = *in.task;
    if (!in.assigned_agent_connected) {
      const std::string why = "agent " + s.agent + " is not connected; the change waits for it";
      conds.set("Progressing", kUnknown, "AgentDisconnected", why);
      return make(StepKind::kWaitForReconnect,
                  t.kind == TaskKind::kDeploy ? in_progress_status(s) : s.status, why, conds,
                  kWaitForAgentRequeueMs);
    }
    if (t.kind == TaskKind::kDeploy) {
      if (!in.desired || in.desired->id != t.revision_id) {
        // The task belongs to a revision that is no longer the desired one (superseded by a
        // later change): it is finished as far as the planner is concerned.
        return make(StepKind::kFinishTask, in_progress_status(s),
                    "the task's revision is no longer the desired one", conds);
      }
      const Revision& rev = *in.desired;
      // A deploy task for the revision that already serves is a redeploy (the agent lost the
      // app); any other revision with an outcome is done.
      const bool redeploy =
          rev.state == RevisionState::kSucceeded && rev.id == s.current_deployment_id;
      if (rev.state != RevisionState::kPending && !redeploy) {
        return make(StepKind::kFinishTask, s.status, "the revision already has an outcome", conds);
      }
      if (redeploy && in.observed && in.observed->revision_id == rev.id && in.observed->healthy) {
        return make(StepKind::kFinishTask, ServiceStatus::kRunning,
                    "agent " + s.agent + " serves the current revision again", conds);
      }
      std::string why;
      const bool credential_ok = credential_condition(in, rev, conds, why);
      if (in.observed && in.observed->revision_id == rev.id && in.observed->healthy) {
        conds.set("Progressing", kFalse, "Adopted",
                  "agent " + s.agent + " already serves revision " + std::to_string(rev.number));
        return make(StepKind::kAdoptObserved, ServiceStatus::kRunning,
                    "agent " + s.agent + " reports the desired revision running", conds);
      }
      if (!credential_ok) {
        return make(
            StepKind::kFailRevision,
            s.current_deployment_id.empty() ? ServiceStatus::kFailed : ServiceStatus::kRunning, why,
            conds);
      }
      conds.set("Progressing", kTrue, "Deploying",
                "rolling out revision " + std::to_string(rev.number) + " on agent " + s.agent);
      if (rev.image_digest.empty()) {
        return make(StepKind::kResolveDigest, in_progress_status(s),
                    "resolving " + rev.config.image_ref + " to a digest", conds);
      }
      if (t.state == TaskState::kQueued) {
        Plan p =
            make(StepKind::kDispatch, in_progress_status(s),
                 "sending revision " + std::to_string(rev.number) + " to agent " + s.agent, conds);
        p.task_id = t.id;
        return p;
      }
      return make(StepKind::kAwaitResult, in_progress_status(s),
                  "waiting for agent " + s.agent + " to finish the rollout", conds,
                  kAwaitResultRequeueMs);
    }
    // restart (or a remove outside deletion)
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

  // 3. No task: converge the agent to the current revision, or report the steady state.
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
  if (!in.observed || in.observed->revision_id != s.current_deployment_id) {
    const std::string why =
        !in.observed ? "agent " + s.agent + " does not run the app; redeploying it"
                     : "agent " + s.agent + " runs another revision; redeploying the current one";
    conds.set("Ready", kFalse, "Drifted", why);
    return make(StepKind::kRedeployCurrent, ServiceStatus::kPendingModification, why, conds);
  }
  if (!in.observed->healthy) {
    conds.set("Ready", kFalse, "Unhealthy", "agent " + s.agent + " reports the app unhealthy");
    conds.set("Degraded", kTrue, "Unhealthy", "agent " + s.agent + " reports the app unhealthy");
    return make(StepKind::kNothing, ServiceStatus::kRunning, "the app is unhealthy", conds);
  }
  conds.set("Ready", kTrue, "Running", "the current revision is serving");
  conds.set("Progressing", kFalse, "Complete", "the rollout is complete");
  return make(StepKind::kNothing, ServiceStatus::kRunning, "converged", conds);
}

}  // namespace berth::core
