// Rollout progress through the wiring Kubernetes mode uses (controller/cmd_serve_kube.cpp):
// runtime::Reconciler's progress listener -> kube::ProgressWriter -> KubeStateStore::
// write_progress -> the test API server. The agent is a fake gateway driven by the test; the
// reconciler, the writer, the store and the server are real. Checks that status.progress
// appears, that reports within the interval are never written one by one, that it is gone once
// the app is Ready, and that a report arriving after the end writes nothing.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "core/progress.h"
#include "kube/app_intake.h"
#include "kube/progress_writer.h"
#include "kube/state_store.h"
#include "kube/types.h"
#include "kube_itest.h"
#include "runtime/clock.h"
#include "runtime/reconciler.h"
#include "runtime/workqueue.h"
#include "support/wait.h"

namespace berth::kube {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kWiringNs = "progress-wiring";
constexpr const char* kAgent = "agent-1";

class WiringDigests final : public core::DigestResolver {
 public:
  Result<std::string> resolve(const std::string&, const core::RegistryLogin*) override {
    return "sha256:" + std::string(64, 'b');
  }
};

// Records the deploy tasks the reconciler sends; nothing else is expected.
class WiringGateway final : public core::AgentGateway {
 public:
  Status send_deploy(const std::string& agent, const core::DeployOrder& order,
                     const Secret*) override {
    std::lock_guard lock(mu);
    deploys.push_back({agent, order});
    return Status::Ok();
  }
  Status send_restart(const std::string&, const std::string&, const std::string&) override {
    return Status::Ok();
  }
  Status send_remove(const std::string&, const std::string&, const std::string&) override {
    return Status::Ok();
  }
  std::mutex mu;
  std::vector<std::pair<std::string, core::DeployOrder>> deploys;
};

core::UnixMillis wiring_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE(
    "rollout progress reaches status.progress through the reconciler, throttled, and is "
    "gone after Ready",
    "[kube][progress][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  itest::make_namespace(*cluster.transport, kWiringNs);
  Typed<AppService> apps(*cluster.transport);

  KubeStateStoreOptions so;
  so.now = wiring_now;
  KubeStateStore store(*cluster.transport, so);
  WiringDigests digests;
  IntakeOptions io;
  io.now = wiring_now;
  int ids = 0;
  io.new_id = [&ids] { return "wiring-" + std::to_string(++ids); };
  io.secret_version = [](const std::string&, const std::string&) { return std::string(); };
  AppIntake intake(store, *cluster.transport, digests, io);

  runtime::SteadyClock clock;
  runtime::WorkQueue queue(clock, runtime::BackoffPolicy{5ms, 1s, 0.1});
  WiringGateway gateway;
  metrics::Registry registry;
  runtime::ReconcilerOptions ro;
  ro.now = wiring_now;
  ro.new_id = [&ids] { return "task-" + std::to_string(++ids); };
  ro.metrics = &registry;
  runtime::Reconciler reconciler(store, gateway, digests, queue, ro);

  // The interval is longer than the test: only the first report and the removal may be
  // written, whatever the timing.
  ProgressWriterOptions po;
  po.interval = std::chrono::hours(1);
  po.now = wiring_now;
  ProgressWriter writer(
      [&store](const std::string& id, const std::optional<core::RolloutProgress>& p) {
        return store.write_progress(id, p);
      },
      po);
  std::atomic<int> listener_calls{0};
  reconciler.set_progress_listener(
      [&writer, &listener_calls](const std::string& id,
                                 const std::optional<core::RolloutProgress>& p) {
        ++listener_calls;
        writer.report(id, p);
      });
  writer.start();

  // An accepted app, dispatched to the one agent.
  REQUIRE(apps.raw().create(itest::app(kWiringNs, "web")).ok());
  auto got = apps.get(kWiringNs, "web");
  REQUIRE(got.ok());
  const std::string id = got->metadata.uid;
  store.observe(*got);
  REQUIRE(intake.run(id).ok());
  reconciler.agent_connected(kAgent, "local", {});
  // Passes until the deploy is sent (the work queue would run them; the test runs them itself).
  std::string reasons;
  for (int pass = 0; pass < 10; ++pass) {
    const runtime::ReconcileOutcome out = reconciler.reconcile(id);
    reasons += "[" + out.reason + "] ";
    std::lock_guard lock(gateway.mu);
    if (!gateway.deploys.empty()) break;
  }
  std::string task_id;
  core::DeployOrder order;
  {
    INFO("reconcile outcomes: " << reasons);
    std::lock_guard lock(gateway.mu);
    REQUIRE(gateway.deploys.size() == 1);
    task_id = gateway.deploys[0].second.task_id;
    order = gateway.deploys[0].second;
  }
  reconciler.task_acked(kAgent, task_id);

  auto status = [&] {
    auto a = apps.raw().get(kWiringNs, "web");
    REQUIRE(a.ok());
    return (*a).value("status", json::object());
  };
  auto pull = [&](int layers) {
    reconciler.task_progress(kAgent, task_id,
                             core::DeployLogEntry{"pull", "info", "pulling", "", wiring_now(), 0},
                             runtime::Reconciler::PullReport{layers, 10, layers * 1000, 10'000});
  };

  // The first report is written at once.
  pull(1);
  json seen;
  REQUIRE(testing::wait_until(
      [&] {
        seen = status();
        return seen.contains("progress");
      },
      20s));
  INFO(seen.dump(2));
  CHECK(seen["progress"]["step"] == "pull");
  CHECK(seen["progress"]["layersDone"] == 1);
  CHECK(seen["progress"]["layersTotal"] == 10);
  REQUIRE(testing::wait_until([&] { return writer.writes() == 1; }, 20s));

  // Nine more within the interval: coalesced, none written yet.
  for (int layers = 2; layers <= 10; ++layers) pull(layers);
  CHECK(listener_calls == 10);

  // The agent finishes; the reconcile records Ready and ends the progress.
  core::TaskOutcome outcome;
  outcome.task_id = task_id;
  outcome.service_id = id;
  outcome.revision_id = order.revision_id;
  outcome.ok = true;
  outcome.image_digest = "sha256:" + std::string(64, 'b');
  outcome.stable_port = 20'000;
  reconciler.task_result(kAgent, outcome);
  std::string last_reason;
  for (int pass = 0; pass < 10; ++pass) {
    const runtime::ReconcileOutcome out = reconciler.reconcile(id);
    last_reason = out.reason;
    if (!reconciler.progress(id) && status().value("phase", "") == "Running") break;
  }
  INFO("last reconcile: " << last_reason);

  REQUIRE(testing::wait_until(
      [&] {
        seen = status();
        return !seen.contains("progress") && writer.writes() == 2;
      },
      20s));
  INFO(seen.dump(2));
  CHECK(seen.value("phase", "") == "Running");
  // Exactly two writes: the first report and the removal. The nine waiting reports were
  // replaced by the removal, never written after it.
  CHECK(writer.writes() == 2);

  // A report of the finished task arriving late (the agent's last line racing its result):
  // the reconciler drops it before the listener, so nothing can bring status.progress back.
  const int calls = listener_calls;
  pull(10);
  CHECK(listener_calls == calls);
  CHECK_FALSE(reconciler.progress(id));
  writer.stop();
  CHECK(writer.writes() == 2);
  CHECK_FALSE(status().contains("progress"));
}

}  // namespace berth::kube
