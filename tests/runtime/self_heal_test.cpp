// Observed state is the truth: an app whose container is gone or stays unhealthy is redeployed
// from its current revision, and the API never says Ready meanwhile. Failures a user can act on
// show in conditions and last_error.
#include <catch2/catch.hpp>

#include "harness.h"

using namespace berth;
using berth::testing::Harness;

namespace {

core::AppReport report(core::AppState state, std::string detail = {}) {
  return core::AppReport{"svc", "r1", state, std::move(detail)};
}

}  // namespace

TEST_CASE("An app reported missing is redeployed from its current revision, not Ready meanwhile",
          "[reconciler][self-heal]") {
  Harness h;
  h.run_first_revision("acme-bot");
  const std::string digest = h.store.revisions["r1"].image_digest;
  h.reconciler.app_status("vm-1", report(core::AppState::kMissing, "container api-1 not found"));
  h.settle();
  REQUIRE(h.gateway.sent.size() == 2);
  const auto& order = h.gateway.sent[1].order;
  CHECK(order.revision_id == "r1");
  CHECK(order.pull_ref.find("@" + digest) != std::string::npos);  // pinned, no fresh resolve
  CHECK(h.gateway.sent[1].password == "canary-Zq8");              // the stored credential
  CHECK(h.resolver.calls == 1);
  const auto& s = h.store.services["svc"];
  CHECK(s.status == core::ServiceStatus::kPendingModification);
  REQUIRE(h.condition("Ready") != nullptr);
  CHECK(h.condition("Ready")->status == "False");
  REQUIRE(h.condition("Degraded") != nullptr);
  CHECK(h.condition("Degraded")->status == "True");
  bool logged = false;
  for (const auto& e : h.store.revisions["r1"].deploy_logs) {
    if (e.step == "redeploy" && e.message.find("missing") != std::string::npos) logged = true;
  }
  CHECK(logged);

  h.reconciler.task_result("vm-1", h.ok_result(h.gateway.sent[1].task_id, "r1"));
  h.settle();
  CHECK(h.store.services["svc"].status == core::ServiceStatus::kRunning);
  CHECK(h.condition("Ready")->status == "True");
  CHECK(h.condition("Degraded") == nullptr);
}

TEST_CASE("An app unhealthy past the threshold is redeployed, a short blip is not",
          "[reconciler][self-heal]") {
  Harness h;
  h.run_first_revision();
  h.reconciler.app_status("vm-1", report(core::AppState::kUnhealthy, "GET / answered 500"));
  h.settle();
  CHECK(h.gateway.sent.size() == 1);
  CHECK(h.condition("Ready")->status == "False");
  CHECK(h.store.services["svc"].status == core::ServiceStatus::kRunning);
  h.advance(std::chrono::seconds(10));
  h.reconciler.app_status("vm-1", report(core::AppState::kRunning));
  h.settle();
  CHECK(h.condition("Ready")->status == "True");
  h.reconciler.app_status("vm-1", report(core::AppState::kUnhealthy, "GET / answered 500"));
  h.settle();
  h.advance(std::chrono::seconds(20));
  h.settle();
  CHECK(h.gateway.sent.size() == 1);  // 20 s of the 30 s patience
  h.advance(std::chrono::seconds(11));
  h.settle();
  REQUIRE(h.gateway.sent.size() == 2);
  CHECK(h.gateway.sent[1].kind == "deploy");
  CHECK(h.gateway.sent[1].order.revision_id == "r1");
}

TEST_CASE("A restart of an app whose container is gone redeploys it", "[reconciler][self-heal]") {
  Harness h;
  h.run_first_revision();
  h.reconciler.app_status("vm-1", report(core::AppState::kMissing, "container api-1 not found"));
  // The restart lands before the worker looked at the report.
  core::AppService s = h.store.services["svc"];
  const auto gen = s.generation;
  s.generation += 1;
  core::Change c;
  c.service = s;
  c.task = core::Task{"tr", "svc", "r1", core::TaskKind::kRestart, core::TaskState::kQueued, "",
                      0,    h.now, h.now};
  REQUIRE(h.store.apply_change(c, gen).ok());
  h.settle();
  REQUIRE(h.gateway.sent.size() == 2);
  CHECK(h.gateway.sent[1].kind == "deploy");
  CHECK(h.store.tasks["tr"].state == core::TaskState::kDone);
}

TEST_CASE("A restart does not need the registry credential, so an expired token does not block it",
          "[reconciler][credentials]") {
  Harness h;
  h.run_first_revision("acme-bot");
  h.store.credentials["svc"].expires_at = h.now - 1;
  core::AppService s = h.store.services["svc"];
  const auto gen = s.generation;
  s.generation += 1;
  core::Change c;
  c.service = s;
  c.task = core::Task{"tr", "svc", "r1", core::TaskKind::kRestart, core::TaskState::kQueued, "",
                      0,    h.now, h.now};
  REQUIRE(h.store.apply_change(c, gen).ok());
  h.queue.add("svc");
  h.settle();
  REQUIRE(h.gateway.sent.size() == 2);
  CHECK(h.gateway.sent[1].kind == "restart");
}

TEST_CASE("An unreachable registry shows the retry, its next attempt and the failed step",
          "[reconciler][visibility]") {
  Harness h;
  h.resolver.answer = make_error(ErrorCode::kUnavailable, "connect 127.0.0.1:5000: refused");
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  const auto& s = h.store.services["svc"];
  CHECK(s.last_error == "resolve: connect 127.0.0.1:5000: refused");
  const core::Condition* p = h.condition("Progressing");
  REQUIRE(p != nullptr);
  CHECK(p->reason == "Retrying");
  CHECK(p->message.find("next attempt at ") != std::string::npos);
  h.resolver.answer = std::string("sha256:") + std::string(64, 'b');
  h.advance(std::chrono::seconds(2));
  h.settle();
  CHECK(h.gateway.sent.size() == 1);
  CHECK(h.store.services["svc"].last_error.empty());
  CHECK(h.condition("Progressing")->reason == "Deploying");
}

TEST_CASE("A revision superseded before it ran is marked superseded, not left pending",
          "[reconciler][revisions]") {
  Harness h;
  h.add_service();  // r1 queued, no agent yet
  core::AppService s = h.store.services["svc"];
  core::Revision r2 = h.store.revisions["r1"];
  r2.id = "r2";
  r2.number = 2;
  const auto gen = s.generation;
  s.desired_deployment_id = "r2";
  s.generation += 1;
  core::Change c;
  c.service = s;
  c.revision = r2;
  c.task =
      core::Task{"t2", "svc",     "r2",     core::TaskKind::kDeploy, core::TaskState::kQueued, "",
                 0,    h.now + 1, h.now + 1};
  REQUIRE(h.store.apply_change(c, gen).ok());
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kSuperseded);
  CHECK(h.store.tasks["t1"].state == core::TaskState::kDone);
  REQUIRE(h.gateway.sent.size() == 1);
  CHECK(h.gateway.sent[0].order.revision_id == "r2");
}
