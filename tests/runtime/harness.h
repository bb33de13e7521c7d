#pragma once
// A reconciler wired to the in-memory fakes, a manual queue clock and a settable wall clock,
// driven by hand: settle() processes every key that is ready now.
#include <catch2/catch.hpp>

#include "fakes.h"
#include "runtime/controller.h"
#include "runtime/reconciler.h"

namespace berth::testing {

using namespace berth::runtime;

struct Harness {
  ManualClock clock;
  WorkQueue queue{clock, BackoffPolicy{std::chrono::milliseconds(5), std::chrono::seconds(1), 0.0}};
  FakeStore store;
  FakeGateway gateway;
  FakeResolver resolver;
  core::UnixMillis now = 1'800'000'000'000;
  int ids = 0;
  Reconciler reconciler{
      store, gateway, resolver, queue,
      ReconcilerOptions{20, [this] { return now; },
                        [this] { return "task-" + std::to_string(++ids); }, "127.0.0.1"}};
  Controller controller{queue, [this](const std::string& k) { return reconciler.reconcile(k); },
                        ControllerOptions{}};

  // Processes keys until nothing is ready now (timed requeues stay in the delayed set).
  // Moves both clocks: the queue's and the reconciler's wall clock.
  void advance(std::chrono::milliseconds d) {
    now += d.count();
    clock.advance(d);
  }

  void settle() {
    for (int i = 0; i < 100 && controller.process_one(); ++i) {
    }
  }

  void add_service(const std::string& username = "") {
    core::AppService s;
    s.id = "svc";
    s.name = "my-api";
    s.zone = "local";
    s.status = core::ServiceStatus::kPending;
    s.desired_deployment_id = "r1";
    s.config.image_ref = "127.0.0.1:5000/acme/api:1.0.0";
    s.config.container_port = 8080;
    s.config.registry_username = username;
    s.registry_host = "127.0.0.1:5000";
    core::Revision r;
    r.id = "r1";
    r.service_id = "svc";
    r.number = 1;
    r.config = s.config;
    r.registry_host = s.registry_host;
    r.reason = "initial deployment";
    core::Task t;
    t.id = "t1";
    t.service_id = "svc";
    t.revision_id = "r1";
    t.kind = core::TaskKind::kDeploy;
    core::Change c;
    c.service = s;
    c.revision = r;
    c.task = t;
    REQUIRE(store.create_service(c).ok());
    if (!username.empty()) {
      store.credentials["svc"] =
          core::StoredCredential{"127.0.0.1:5000", username, now, std::nullopt};
      store.passwords["svc"] = "canary-Zq8";
    }
    queue.add("svc");
  }

  // A service Running revision r1 on agent vm-1.
  void run_first_revision(const std::string& username = "") {
    add_service(username);
    reconciler.agent_connected("vm-1", "local", {});
    settle();
    reconciler.task_result("vm-1", ok_result("t1", "r1"));
    settle();
    REQUIRE(store.services["svc"].status == core::ServiceStatus::kRunning);
  }

  const core::Condition* condition(const std::string& type) {
    for (const auto& c : store.services["svc"].conditions) {
      if (c.type == type) return &c;
    }
    return nullptr;
  }

  core::TaskOutcome ok_result(const std::string& task_id, const std::string& revision_id) {
    core::TaskOutcome o;
    o.task_id = task_id;
    o.service_id = "svc";
    o.revision_id = revision_id;
    o.ok = true;
    o.stable_port = 20001;
    o.image_digest = std::string("sha256:") + std::string(64, 'a');
    o.logs.push_back(core::DeployLogEntry{"pull", "ok", "pulled", "", now, 5});
    return o;
  }
};

}  // namespace berth::testing
