#pragma once
// The reconcile planner: a pure function from what berth wants (the service record, its desired
// revision, the oldest unfinished outbox task, the stored credential) and what it observes (the
// connected agents, what the assigned agent reports about this app) to the ONE next step, plus
// the status and conditions the service should show meanwhile. The runtime carries the step out
// and reconciles again; because every input is re-read each time, the loop is level-triggered and
// idempotent: running the planner twice on the same inputs gives the same step.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/ports.h"
#include "core/types.h"

namespace berth::core {

struct AgentView {
  std::string name;
  std::string zone;
  int load = 0;  // app services assigned to it
};

// What the assigned agent reports about this app (from its hello, its last result, or its
// continuous probe after cutover).
struct ObservedApp {
  std::string revision_id;  // serving revision, empty when none
  std::string image_digest;
  int stable_port = 0;
  bool healthy = false;
  std::string last_task_id;  // the last task id it applied for this app
  // The agent reports the app's container gone (removed, crashed, host rebooted): nothing
  // serves even though the agent still has state for the app.
  bool missing = false;
  std::string detail;              // the agent's one sentence on why unhealthy or missing
  UnixMillis unhealthy_since = 0;  // when the agent first reported it unhealthy (0: healthy)
};

// A step the runtime tried for this service and will try again (kept in the runtime's memory,
// so the planner can show it): e.g. a registry that did not answer.
struct PendingRetry {
  std::string step;     // "resolve", "dispatch", ...
  std::string message;  // the error, one sentence
  UnixMillis next_attempt_at = 0;
};

struct PlanInput {
  AppService service;
  std::optional<Revision> desired;  // the revision service.desired_deployment_id names
  std::optional<Task> task;         // oldest unfinished outbox task of this service
  std::optional<StoredCredential> credential;
  std::vector<AgentView> connected_agents;  // every connected agent (the planner filters by zone)
  bool assigned_agent_connected = false;
  std::optional<ObservedApp> observed;  // the assigned agent's report (nullopt: it does not run it)
  std::optional<PendingRetry> retry;    // a failed step the runtime retries
  // The assigned agent confirmed the removal of this app (a successful remove result).
  bool removal_confirmed = false;
  UnixMillis now = 0;
};

enum class StepKind {
  kNothing,           // converged
  kWaitForAgent,      // no connected agent in the zone: stay pending
  kAssignAgent,       // place the service on `agent`
  kWaitForReconnect,  // the assigned agent is offline: wait (services stay where they are)
  kFailRevision,      // give up on the desired revision before dispatch (e.g. expired token)
  kResolveDigest,     // ask the registry for the desired revision's digest
  kDispatch,          // send `task_id` to the assigned agent
  kAwaitResult,       // the task is with the agent; its result will come as an event
  kAdoptObserved,     // the agent already serves the desired revision: record success
  kRedeployCurrent,   // the agent lost an app it should run: queue a deploy of the current revision
  kFinishTask,        // the task's revision already has an outcome: mark the task done
  kQueueRemove,       // deleting, the agent still runs the app and no removal is queued: queue one
  kForget,            // the agent confirmed the removal (or the service was never placed): delete
};
const char* to_string(StepKind k);

struct Plan {
  StepKind step = StepKind::kNothing;
  std::string agent;                  // kAssignAgent
  std::string task_id;                // kDispatch
  std::string message;                // why, one sentence (status condition / failure reason)
  std::int64_t requeue_after_ms = 0;  // 0: no timed requeue needed
  // Status the service should show now (the executor writes it when it differs).
  ServiceStatus status = ServiceStatus::kPending;
  std::vector<Condition> conditions;
  // last_error the service should show now; nullopt leaves the stored one as it is.
  std::optional<std::string> last_error;
};

Plan plan_next(const PlanInput& in);

// How long the runtime waits before looking again in the waiting steps.
inline constexpr std::int64_t kWaitForAgentRequeueMs = 10'000;
inline constexpr std::int64_t kAwaitResultRequeueMs = 60'000;
// An app the agent reports unhealthy for this long is redeployed from its current revision. The
// agent reports a state only after its own threshold of probes, so this is the controller's
// patience on top: a slow start or a short outage does not replace a working container.
inline constexpr std::int64_t kUnhealthyRedeployAfterMs = 30'000;
// An ECR token closer than this to expiry makes the CredentialsResolved condition warn.
inline constexpr std::int64_t kCredentialWarnWindowMs = 3'600'000;

}  // namespace berth::core
