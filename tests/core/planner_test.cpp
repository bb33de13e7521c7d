#include <catch2/catch.hpp>

#include <functional>

#include "core/planner.h"

using namespace berth::core;

namespace {

constexpr UnixMillis kNow = 1'800'000'000'000;

Revision revision(std::string id, std::int64_t number,
                  RevisionState state = RevisionState::kPending,
                  std::string digest = "sha256:aaaa") {
  Revision r;
  r.id = std::move(id);
  r.service_id = "svc";
  r.number = number;
  r.state = state;
  r.image_digest = std::move(digest);
  r.config.image_ref = "ghcr.io/acme/api:1.0.0";
  r.config.container_port = 8080;
  r.registry_host = "ghcr.io";
  return r;
}

Task task(std::string id, std::string revision_id, TaskKind kind = TaskKind::kDeploy,
          TaskState state = TaskState::kQueued) {
  Task t;
  t.id = std::move(id);
  t.service_id = "svc";
  t.revision_id = std::move(revision_id);
  t.kind = kind;
  t.state = state;
  return t;
}

// A service placed on agent "vm-1" (zone "local") whose first revision r1 is being deployed.
PlanInput first_deploy() {
  PlanInput in;
  in.service.id = "svc";
  in.service.zone = "local";
  in.service.agent = "vm-1";
  in.service.status = ServiceStatus::kPending;
  in.service.desired_deployment_id = "r1";
  in.desired = revision("r1", 1);
  in.task = task("t1", "r1");
  in.connected_agents = {AgentView{"vm-1", "local", 1}};
  in.assigned_agent_connected = true;
  in.now = kNow;
  return in;
}

// A service running revision r1 with nothing in flight.
PlanInput steady() {
  PlanInput in = first_deploy();
  in.service.status = ServiceStatus::kRunning;
  in.service.current_deployment_id = "r1";
  in.desired = revision("r1", 1, RevisionState::kSucceeded);
  in.task.reset();
  in.observed = ObservedApp{"r1", "sha256:aaaa", 20001, true, "t1"};
  return in;
}

const Condition* find(const Plan& p, const std::string& type) {
  for (const auto& c : p.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("A converged service needs nothing and shows Ready", "[planner]") {
  Plan p = plan_next(steady());
  CHECK(p.step == StepKind::kNothing);
  CHECK(p.status == ServiceStatus::kRunning);
  REQUIRE(find(p, "Ready") != nullptr);
  CHECK(find(p, "Ready")->status == "True");
}

TEST_CASE("Planning twice on the same inputs gives the same step", "[planner]") {
  auto in = first_deploy();
  CHECK(plan_next(in).step == plan_next(in).step);
  CHECK(plan_next(in).conditions == plan_next(in).conditions);
}

TEST_CASE("An unplaced service goes to the least loaded connected agent of its zone", "[planner]") {
  auto in = first_deploy();
  in.service.agent.clear();
  in.connected_agents = {AgentView{"busy", "local", 5}, AgentView{"idle", "local", 1},
                         AgentView{"elsewhere", "se-sto1", 0}};
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kAssignAgent);
  CHECK(p.agent == "idle");
}

TEST_CASE("Equally loaded agents are chosen by name so placement is deterministic", "[planner]") {
  auto in = first_deploy();
  in.service.agent.clear();
  in.connected_agents = {AgentView{"vm-b", "local", 2}, AgentView{"vm-a", "local", 2}};
  CHECK(plan_next(in).agent == "vm-a");
}

TEST_CASE("With no agent connected in its zone a service stays Pending and says why", "[planner]") {
  auto in = first_deploy();
  in.service.agent.clear();
  in.connected_agents = {AgentView{"vm-9", "se-sto1", 0}};
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kWaitForAgent);
  CHECK(p.status == ServiceStatus::kPending);
  CHECK(p.requeue_after_ms > 0);
  REQUIRE(find(p, "Scheduled") != nullptr);
  CHECK(find(p, "Scheduled")->status == "False");
  CHECK(find(p, "Scheduled")->message.find("local") != std::string::npos);
}

TEST_CASE("A placed service whose agent is offline waits for it instead of moving", "[planner]") {
  auto in = first_deploy();
  in.assigned_agent_connected = false;
  in.connected_agents = {AgentView{"vm-2", "local", 0}};
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kWaitForReconnect);
  CHECK(p.agent.empty());
}

TEST_CASE("A revision without a digest is resolved before it is dispatched", "[planner]") {
  auto in = first_deploy();
  in.desired->image_digest.clear();
  CHECK(plan_next(in).step == StepKind::kResolveDigest);
}

TEST_CASE("A queued deploy with a digest is dispatched to the assigned agent", "[planner]") {
  Plan p = plan_next(first_deploy());
  CHECK(p.step == StepKind::kDispatch);
  CHECK(p.task_id == "t1");
  CHECK(p.status == ServiceStatus::kPending);
}

TEST_CASE("A redeploy of a running service shows PendingModification", "[planner]") {
  auto in = steady();
  in.service.desired_deployment_id = "r2";
  in.desired = revision("r2", 2);
  in.task = task("t2", "r2");
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kDispatch);
  CHECK(p.status == ServiceStatus::kPendingModification);
}

TEST_CASE("A sent task waits for the agent's result", "[planner]") {
  auto in = first_deploy();
  in.task->state = TaskState::kSent;
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kAwaitResult);
  CHECK(p.requeue_after_ms > 0);
}

TEST_CASE("When the agent already serves the desired revision its report is adopted", "[planner]") {
  auto in = first_deploy();
  in.task->state = TaskState::kSent;
  in.observed = ObservedApp{"r1", "sha256:aaaa", 20001, true, "t1"};
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kAdoptObserved);
  CHECK(p.status == ServiceStatus::kRunning);
}

TEST_CASE("An unhealthy report of the desired revision is not adopted", "[planner]") {
  auto in = first_deploy();
  in.task->state = TaskState::kSent;
  in.observed = ObservedApp{"r1", "sha256:aaaa", 20001, false, "t1"};
  CHECK(plan_next(in).step == StepKind::kAwaitResult);
}

TEST_CASE("A task whose revision already has an outcome is finished", "[planner]") {
  auto in = first_deploy();
  in.desired->state = RevisionState::kFailed;
  CHECK(plan_next(in).step == StepKind::kFinishTask);
}

TEST_CASE("A task for a superseded revision is finished", "[planner]") {
  auto in = first_deploy();
  in.service.desired_deployment_id = "r2";
  in.desired = revision("r2", 2);
  CHECK(plan_next(in).step == StepKind::kFinishTask);
}

TEST_CASE("A deploy that needs a credential which is not stored fails before dispatch",
          "[planner]") {
  auto in = first_deploy();
  in.desired->config.registry_username = "acme-bot";
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kFailRevision);
  CHECK(p.status == ServiceStatus::kFailed);
  CHECK(p.message.find("acme-bot") != std::string::npos);
}

TEST_CASE("A stored credential for another registry host is never used", "[planner]") {
  auto in = first_deploy();
  in.desired->config.registry_username = "acme-bot";
  in.credential = StoredCredential{"registry.gitlab.com", "acme-bot", kNow - 1000, std::nullopt};
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kFailRevision);
  CHECK(find(p, "CredentialsResolved")->reason == "CredentialHostMismatch");
}

TEST_CASE("An expired ECR token fails the deploy fast and keeps the old revision running",
          "[planner]") {
  auto in = steady();
  in.service.desired_deployment_id = "r2";
  in.desired = revision("r2", 2);
  in.desired->config.registry_username = "AWS";
  in.desired->registry_host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
  in.task = task("t2", "r2");
  in.credential =
      StoredCredential{in.desired->registry_host, "AWS", kNow - 13 * 3600'000LL, kNow - 3600'000LL};
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kFailRevision);
  CHECK(p.status == ServiceStatus::kRunning);
  CHECK(p.message.find("expired") != std::string::npos);
}

TEST_CASE("An ECR token in its last hour deploys but warns", "[planner]") {
  auto in = first_deploy();
  in.desired->config.registry_username = "AWS";
  in.desired->registry_host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
  in.credential = StoredCredential{in.desired->registry_host, "AWS", kNow - 11 * 3600'000LL,
                                   kNow + 30 * 60'000LL};
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kDispatch);
  CHECK(find(p, "CredentialsResolved")->reason == "CredentialExpiresSoon");
}

TEST_CASE("An agent that lost the app gets the current revision again", "[planner]") {
  auto in = steady();
  in.observed.reset();
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kRedeployCurrent);
}

TEST_CASE("An agent running another revision is converged back to the current one", "[planner]") {
  auto in = steady();
  in.observed->revision_id = "r0";
  CHECK(plan_next(in).step == StepKind::kRedeployCurrent);
}

TEST_CASE("A failed first deployment leaves the service Failed with nothing to do", "[planner]") {
  auto in = first_deploy();
  in.task.reset();
  in.desired->state = RevisionState::kFailed;
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kNothing);
  CHECK(p.status == ServiceStatus::kFailed);
}

TEST_CASE("A queued restart is dispatched and the service keeps its status", "[planner]") {
  auto in = steady();
  in.task = task("t9", "r1", TaskKind::kRestart);
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kDispatch);
  CHECK(p.task_id == "t9");
  CHECK(p.status == ServiceStatus::kRunning);
}

TEST_CASE("Deleting a service that was never placed forgets it at once", "[planner]") {
  auto in = first_deploy();
  in.service.agent.clear();
  in.service.status = ServiceStatus::kDeleting;
  CHECK(plan_next(in).step == StepKind::kForget);
}

TEST_CASE("Deleting a placed service sends the removal, then waits, then forgets", "[planner]") {
  auto in = steady();
  in.service.status = ServiceStatus::kDeleting;
  in.task = task("t5", "", TaskKind::kRemove);
  CHECK(plan_next(in).step == StepKind::kDispatch);
  in.task->state = TaskState::kSent;
  CHECK(plan_next(in).step == StepKind::kAwaitResult);
  in.task.reset();
  in.removal_confirmed = true;  // the agent answered the removal with success
  CHECK(plan_next(in).step == StepKind::kForget);
}

TEST_CASE("A removal waits for an offline agent", "[planner]") {
  auto in = steady();
  in.service.status = ServiceStatus::kDeleting;
  in.task = task("t5", "", TaskKind::kRemove);
  in.assigned_agent_connected = false;
  CHECK(plan_next(in).step == StepKind::kWaitForReconnect);
}

TEST_CASE("A condition keeps its transition time while its status does not change", "[planner]") {
  auto in = steady();
  Plan first = plan_next(in);
  in.service.conditions = first.conditions;
  in.now = kNow + 60'000;
  Plan second = plan_next(in);
  REQUIRE(find(second, "Ready") != nullptr);
  CHECK(find(second, "Ready")->last_transition_time == kNow);
}

TEST_CASE("A redeploy of the serving revision is dispatched even though it already succeeded",
          "[planner]") {
  auto in = steady();
  in.observed.reset();
  in.task = task("t3", "r1");
  Plan p = plan_next(in);
  CHECK(p.step == StepKind::kDispatch);
  CHECK(p.task_id == "t3");
}

TEST_CASE("A redeploy is finished once the agent serves the current revision again", "[planner]") {
  auto in = steady();
  in.task = task("t3", "r1", TaskKind::kDeploy, TaskState::kSent);
  CHECK(plan_next(in).step == StepKind::kFinishTask);
}

TEST_CASE("Planner branches for self-healing, removal and visible retries", "[planner]") {
  struct Row {
    const char* name;
    std::function<void(PlanInput&)> setup;
    StepKind step;
    ServiceStatus status;
    const char* ready;  // expected Ready status, "" when Ready must be absent
  };
  const std::vector<Row> rows = {
      {"an app reported missing is redeployed and not Ready",
       [](PlanInput& in) { in.observed->missing = true; }, StepKind::kRedeployCurrent,
       ServiceStatus::kPendingModification, "False"},
      {"an app unhealthy for less than the threshold waits",
       [](PlanInput& in) {
         in.observed->healthy = false;
         in.observed->unhealthy_since = kNow - kUnhealthyRedeployAfterMs + 1;
       },
       StepKind::kNothing, ServiceStatus::kRunning, "False"},
      {"an app unhealthy past the threshold is redeployed",
       [](PlanInput& in) {
         in.observed->healthy = false;
         in.observed->unhealthy_since = kNow - kUnhealthyRedeployAfterMs;
       },
       StepKind::kRedeployCurrent, ServiceStatus::kPendingModification, "False"},
      {"a queued restart of a missing app redeploys it",
       [](PlanInput& in) {
         in.observed->missing = true;
         in.task = task("tr", "r1", TaskKind::kRestart);
       },
       StepKind::kRedeployCurrent, ServiceStatus::kPendingModification, "False"},
      {"a restart with an expired ECR token is still dispatched",
       [](PlanInput& in) {
         in.desired->config.registry_username = "AWS";
         in.credential = StoredCredential{"ghcr.io", "AWS", kNow - 1000, kNow - 1};
         in.task = task("tr", "r1", TaskKind::kRestart);
       },
       StepKind::kDispatch, ServiceStatus::kRunning, ""},
      {"a redeploy in flight is not Ready",
       [](PlanInput& in) {
         in.observed->missing = true;
         in.task = task("t2", "r1");
       },
       StepKind::kDispatch, ServiceStatus::kPendingModification, "False"},
      {"a redeploy with an expired token fails without failing the revision",
       [](PlanInput& in) {
         in.observed->missing = true;
         in.desired->config.registry_username = "AWS";
         in.credential = StoredCredential{"ghcr.io", "AWS", kNow - 1000, kNow - 1};
         in.task = task("t2", "r1");
       },
       StepKind::kFailRevision, ServiceStatus::kFailed, "False"},
  };
  for (const auto& row : rows) {
    SECTION(row.name) {
      PlanInput in = steady();
      row.setup(in);
      const Plan p = plan_next(in);
      CHECK(p.step == row.step);
      CHECK(p.status == row.status);
      const Condition* ready = find(p, "Ready");
      if (std::string(row.ready).empty()) {
        CHECK(ready == nullptr);
      } else {
        REQUIRE(ready != nullptr);
        CHECK(ready->status == row.ready);
      }
    }
  }
}

TEST_CASE("An unhealthy app that waits asks to be looked at again when its patience ends",
          "[planner]") {
  PlanInput in = steady();
  in.observed->healthy = false;
  in.observed->unhealthy_since = kNow - 10'000;
  const Plan p = plan_next(in);
  CHECK(p.requeue_after_ms == kUnhealthyRedeployAfterMs - 10'000);
  REQUIRE(find(p, "Degraded") != nullptr);
  CHECK(find(p, "Degraded")->status == "True");
}

TEST_CASE("A redeploy that cannot pull says which step failed in last_error", "[planner]") {
  PlanInput in = steady();
  in.observed->missing = true;
  in.desired->config.registry_username = "AWS";
  in.credential = StoredCredential{"ghcr.io", "AWS", kNow - 1000, kNow - 1};
  in.task = task("t2", "r1");
  const Plan p = plan_next(in);
  REQUIRE(p.last_error);
  CHECK(p.last_error->rfind("credentials: ", 0) == 0);
}

TEST_CASE("A step the runtime retries shows in Progressing and last_error", "[planner]") {
  PlanInput in = first_deploy();
  in.desired->image_digest.clear();
  in.retry = PendingRetry{"resolve", "connect ghcr.io:443: refused", kNow + 5000};
  const Plan p = plan_next(in);
  CHECK(p.step == StepKind::kResolveDigest);
  REQUIRE(p.last_error);
  CHECK(*p.last_error == "resolve: connect ghcr.io:443: refused");
  REQUIRE(find(p, "Progressing") != nullptr);
  CHECK(find(p, "Progressing")->reason == "Retrying");
  CHECK(find(p, "Progressing")->message.find(format_rfc3339(kNow + 5000)) != std::string::npos);
}

TEST_CASE("Deletion forgets only what the agent no longer runs", "[planner]") {
  PlanInput in = steady();
  in.service.status = ServiceStatus::kDeleting;
  SECTION("the agent still runs the app: a removal is queued") {
    CHECK(plan_next(in).step == StepKind::kQueueRemove);
  }
  SECTION("the agent confirmed the removal: forget") {
    in.removal_confirmed = true;
    CHECK(plan_next(in).step == StepKind::kForget);
  }
  SECTION("the agent is offline: wait, do not forget") {
    in.assigned_agent_connected = false;
    CHECK(plan_next(in).step == StepKind::kWaitForReconnect);
  }
  SECTION("the connected agent does not run the app: forget") {
    in.observed.reset();
    CHECK(plan_next(in).step == StepKind::kForget);
  }
}
