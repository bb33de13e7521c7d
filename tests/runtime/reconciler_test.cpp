#include <catch2/catch.hpp>

#include "harness.h"

using namespace berth;
using namespace berth::runtime;
using berth::testing::FakeGateway;
using berth::testing::FakeResolver;
using berth::testing::FakeStore;
using berth::testing::Harness;

TEST_CASE("A service without a connected agent stays Pending until one connects", "[reconciler]") {
  Harness h;
  h.add_service();
  h.settle();
  CHECK(h.store.services["svc"].status == core::ServiceStatus::kPending);
  CHECK(h.store.services["svc"].agent.empty());
  CHECK(h.gateway.sent.empty());

  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  CHECK(h.store.services["svc"].agent == "vm-1");
  REQUIRE(h.gateway.sent.size() == 1);
  CHECK(h.gateway.sent[0].task_id == "t1");
  CHECK(h.gateway.sent[0].order.pull_ref.find("@sha256:") != std::string::npos);
  CHECK(h.store.tasks["t1"].state == core::TaskState::kSent);
}

TEST_CASE("A successful result makes the service Running on the new revision", "[reconciler]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  h.reconciler.task_result("vm-1", h.ok_result("t1", "r1"));
  h.settle();
  const auto& s = h.store.services["svc"];
  CHECK(s.status == core::ServiceStatus::kRunning);
  CHECK(s.current_deployment_id == "r1");
  CHECK(s.url == "http://127.0.0.1:20001");
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kSucceeded);
  CHECK(h.store.revisions["r1"].deploy_logs.size() >= 2);  // resolve + the agent's pull
  CHECK(h.store.tasks["t1"].state == core::TaskState::kDone);
  CHECK(h.reconciler.stats().deploys_succeeded == 1);
}

TEST_CASE("The stored password goes only into the deploy order for an image that needs it",
          "[reconciler]") {
  Harness h;
  h.add_service("acme-bot");
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  REQUIRE(h.gateway.sent.size() == 1);
  CHECK(h.gateway.sent[0].had_password);
  CHECK(h.gateway.sent[0].password == "canary-Zq8");
  CHECK(h.gateway.sent[0].order.username == "acme-bot");
  CHECK(h.gateway.sent[0].order.auth_keys == std::vector<std::string>{"127.0.0.1:5000"});
  CHECK(h.resolver.last_username == "acme-bot");
}

TEST_CASE("A registry that refuses the credential fails the first revision before dispatch",
          "[reconciler]") {
  Harness h;
  h.resolver.answer = make_error(ErrorCode::kPermissionDenied,
                                 "registry 127.0.0.1:5000 refused the credentials for acme-bot");
  h.add_service("acme-bot");
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  CHECK(h.gateway.sent.empty());
  CHECK(h.store.services["svc"].status == core::ServiceStatus::kFailed);
  CHECK(h.store.services["svc"].last_error.find("refused") != std::string::npos);
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kFailed);
  CHECK(h.store.tasks["t1"].state == core::TaskState::kDone);
}

TEST_CASE("An unreachable registry is retried with backoff, not failed", "[reconciler]") {
  Harness h;
  h.resolver.answer = make_error(ErrorCode::kUnavailable, "connection refused");
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kPending);
  CHECK(h.queue.failures("svc") >= 1);
  h.resolver.answer = std::string("sha256:") + std::string(64, 'b');
  h.clock.advance(std::chrono::seconds(2));
  h.settle();
  CHECK(h.gateway.sent.size() == 1);
}

TEST_CASE("A task sent before the agent reconnected is sent again with the same id",
          "[reconciler]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  REQUIRE(h.gateway.sent.size() == 1);
  h.reconciler.agent_disconnected("vm-1");
  h.settle();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  REQUIRE(h.gateway.sent.size() == 2);
  CHECK(h.gateway.sent[1].task_id == "t1");
}

TEST_CASE("A restarted controller adopts a rollout the agent reports as finished", "[reconciler]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  // A new controller process: fresh memory, same store.
  Harness h2;
  h2.store = h.store;
  Reconciler fresh{h2.store, h2.gateway, h2.resolver, h2.queue,
                   ReconcilerOptions{20, [&h2] { return h2.now; }, [] { return std::string("x"); },
                                     "127.0.0.1"}};
  Controller c{h2.queue, [&fresh](const std::string& k) { return fresh.reconcile(k); },
               ControllerOptions{}};
  REQUIRE(fresh.prime().ok());
  fresh.agent_connected("vm-1", "local",
                        {{"svc", core::ObservedApp{"r1", "sha256:aa", 20001, true, "t1"}}});
  for (int i = 0; i < 50 && c.process_one(); ++i) {
  }
  CHECK(h2.store.services["svc"].status == core::ServiceStatus::kRunning);
  CHECK(h2.store.services["svc"].current_deployment_id == "r1");
  CHECK(h2.store.services["svc"].url == "http://127.0.0.1:20001");
  CHECK(h2.gateway.sent.empty());  // nothing deployed twice
}

TEST_CASE("An agent that reports it lost the app gets the current revision again", "[reconciler]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  h.reconciler.task_result("vm-1", h.ok_result("t1", "r1"));
  h.settle();
  h.reconciler.agent_connected("vm-1", "local", {});  // reconnects with no apps
  h.settle();
  REQUIRE(h.gateway.sent.size() == 2);
  CHECK(h.gateway.sent[1].kind == "deploy");
  CHECK(h.gateway.sent[1].order.revision_id == "r1");
  CHECK(h.gateway.sent[1].task_id != "t1");
}

TEST_CASE("A failed rollout leaves the old revision serving and Running", "[reconciler]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  h.reconciler.task_result("vm-1", h.ok_result("t1", "r1"));
  h.settle();
  // A second revision, then a failing result.
  core::AppService s = h.store.services["svc"];
  core::Revision r2 = h.store.revisions["r1"];
  r2.id = "r2";
  r2.number = 2;
  r2.state = core::RevisionState::kPending;
  r2.image_digest.clear();
  r2.deploy_logs.clear();
  core::Task t2{"t2", "svc", "r2", core::TaskKind::kDeploy, core::TaskState::kQueued, "",
                0,    h.now, h.now};
  const auto gen = s.generation;
  s.desired_deployment_id = "r2";
  s.status = core::ServiceStatus::kPendingModification;
  s.generation += 1;
  core::Change c;
  c.service = s;
  c.revision = r2;
  c.task = t2;
  REQUIRE(h.store.apply_change(c, gen).ok());
  h.queue.add("svc");
  h.settle();
  core::TaskOutcome bad = h.ok_result("t2", "r2");
  bad.ok = false;
  bad.error = "health check failed: no answer on / within 30 s";
  h.reconciler.task_result("vm-1", bad);
  h.settle();
  CHECK(h.store.services["svc"].status == core::ServiceStatus::kRunning);
  CHECK(h.store.services["svc"].current_deployment_id == "r1");
  CHECK(h.store.services["svc"].last_error.find("health check") != std::string::npos);
  CHECK(h.store.revisions["r2"].state == core::RevisionState::kFailed);
}

TEST_CASE("Deleting a placed service removes it on the agent and then forgets it", "[reconciler]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  h.reconciler.task_result("vm-1", h.ok_result("t1", "r1"));
  h.settle();
  core::AppService s = h.store.services["svc"];
  const auto gen = s.generation;
  s.status = core::ServiceStatus::kDeleting;
  s.generation += 1;
  core::Change c;
  c.service = s;
  c.task = core::Task{"t9", "svc", "",   core::TaskKind::kRemove, core::TaskState::kQueued, "",
                      0,    h.now, h.now};
  REQUIRE(h.store.apply_change(c, gen).ok());
  h.queue.add("svc");
  h.settle();
  REQUIRE(h.gateway.sent.back().kind == "remove");
  CHECK(h.store.services.count("svc") == 1);
  core::TaskOutcome removed;
  removed.task_id = "t9";
  removed.service_id = "svc";
  removed.ok = true;
  h.reconciler.task_result("vm-1", removed);
  h.settle();
  CHECK(h.store.services.count("svc") == 0);
}

TEST_CASE("Deleting during a rollout still removes the app on the agent before forgetting it",
          "[reconciler]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  REQUIRE(h.store.tasks["t1"].state == core::TaskState::kSent);  // the deploy is in flight
  core::AppService s = h.store.services["svc"];
  const auto gen = s.generation;
  s.status = core::ServiceStatus::kDeleting;
  s.generation += 1;
  core::Change c;
  c.service = s;
  c.task =
      core::Task{"t9", "svc",     "",       core::TaskKind::kRemove, core::TaskState::kQueued, "",
                 0,    h.now + 1, h.now + 1};
  REQUIRE(h.store.apply_change(c, gen).ok());
  h.queue.add("svc");
  h.settle();
  REQUIRE(h.store.services.count("svc") == 1);
  CHECK(h.gateway.sent.back().kind == "remove");
}

TEST_CASE("An agent of another zone never receives the service", "[reconciler]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-sto", "se-sto1", {});
  h.settle();
  CHECK(h.store.services["svc"].agent.empty());
  CHECK(h.gateway.sent.empty());
  h.reconciler.agent_disconnected("vm-sto");
  h.reconciler.agent_connected("vm-sto", "local", {});  // the same agent, now in the right zone
  h.settle();
  CHECK(h.store.services["svc"].agent == "vm-sto");
}
