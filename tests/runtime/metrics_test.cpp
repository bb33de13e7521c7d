// The work queue's and the controller's metrics carry client-go's and controller-runtime's
// names, labels and meanings. Time is a ManualClock, so durations are exact.
#include <string>

#include <catch2/catch.hpp>

#include "common/metrics.h"
#include "harness.h"
#include "runtime/controller.h"
#include "runtime/workqueue.h"

using namespace berth;
using namespace berth::runtime;
using namespace std::chrono_literals;

namespace {
bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}
}  // namespace

TEST_CASE("the work queue reports depth, adds, retries and how long keys wait and run",
          "[workqueue][metrics]") {
  ManualClock clock;
  metrics::Registry registry;
  WorkQueue q(clock, BackoffPolicy{5ms, 1s, 0.0});
  q.instrument(registry, "demo");
  q.add("a");
  q.add("a");  // collapsed into the waiting one: not an add, as in client-go
  q.add("b");
  CHECK(has_line(registry.render(), "workqueue_depth{name=\"demo\"} 2"));
  CHECK(has_line(registry.render(), "workqueue_adds_total{name=\"demo\"} 2"));

  clock.advance(2ms);
  REQUIRE(q.try_get() == std::optional<std::string>("a"));
  clock.advance(3s);
  std::string text = registry.render();
  CHECK(has_line(text, "workqueue_depth{name=\"demo\"} 1"));
  // "a" waited 2 ms: the 0.01 bucket and not the 0.001 one.
  CHECK(has_line(text, "workqueue_queue_duration_seconds_bucket{name=\"demo\",le=\"0.001\"} 0"));
  CHECK(has_line(text, "workqueue_queue_duration_seconds_bucket{name=\"demo\",le=\"0.01\"} 1"));
  CHECK(has_line(text, "workqueue_unfinished_work_seconds{name=\"demo\"} 3"));
  CHECK(has_line(text, "workqueue_longest_running_processor_seconds{name=\"demo\"} 3"));

  q.add_rate_limited("a");
  q.done("a");
  text = registry.render();
  CHECK(has_line(text, "workqueue_retries_total{name=\"demo\"} 1"));
  CHECK(has_line(text, "workqueue_work_duration_seconds_count{name=\"demo\"} 1"));
  CHECK(has_line(text, "workqueue_work_duration_seconds_sum{name=\"demo\"} 3"));
  CHECK(has_line(text, "workqueue_unfinished_work_seconds{name=\"demo\"} 0"));
}

TEST_CASE("reconcile outcomes count under controller-runtime's result labels",
          "[controller][metrics]") {
  ManualClock clock;
  metrics::Registry registry;
  WorkQueue queue(clock, BackoffPolicy{5ms, 1s, 0.0});
  ControllerOptions options;
  options.name = "demo";
  options.workers = 3;
  options.resync_period = Duration::zero();
  options.metrics = &registry;
  Controller controller(
      queue,
      [](const std::string& key) {
        if (key == "ok") return ReconcileOutcome::done();
        if (key == "later") return ReconcileOutcome::requeue_after(1s, "wait");
        if (key == "retry") return ReconcileOutcome::retry("transient");
        return ReconcileOutcome::terminal("bad");
      },
      options);
  for (const char* key : {"ok", "later", "retry", "bad"}) queue.add(key);
  while (controller.process_one()) {
  }
  const std::string text = registry.render();
  CHECK(has_line(text,
                 "controller_runtime_reconcile_total{controller=\"demo\",result=\"success\"} 1"));
  CHECK(has_line(
      text, "controller_runtime_reconcile_total{controller=\"demo\",result=\"requeue_after\"} 1"));
  CHECK(
      has_line(text, "controller_runtime_reconcile_total{controller=\"demo\",result=\"error\"} 2"));
  CHECK(has_line(text,
                 "controller_runtime_reconcile_total{controller=\"demo\",result=\"requeue\"} 0"));
  CHECK(has_line(text, "controller_runtime_reconcile_errors_total{controller=\"demo\"} 2"));
  CHECK(
      has_line(text, "controller_runtime_terminal_reconcile_errors_total{controller=\"demo\"} 1"));
  CHECK(has_line(text, "controller_runtime_reconcile_time_seconds_count{controller=\"demo\"} 4"));
  CHECK(has_line(text, "controller_runtime_max_concurrent_reconciles{controller=\"demo\"} 3"));
  CHECK(has_line(text, "controller_runtime_active_workers{controller=\"demo\"} 0"));
  // The controller instruments its queue under its own name.
  CHECK(has_line(text, "workqueue_adds_total{name=\"demo\"} 4"));
}

// The reconciler's own metrics go to the process registry in the harness; each check reads the
// change a scenario makes, so other tests in this binary do not matter.
namespace {
double deploys(const char* outcome) {
  return metrics::process_registry()
      .counter("berth_deploys_total", "", {"outcome"})
      .with({outcome})
      .value();
}
double agents_connected() {
  return metrics::process_registry().gauge("berth_agents_connected", "").get().value();
}
std::uint64_t step_count(const char* step) {
  return metrics::process_registry()
      .histogram("berth_deploy_step_duration_seconds", "", {"step"}, metrics::default_buckets())
      .with({step})
      .cumulative()
      .back();
}
}  // namespace

TEST_CASE("deploy outcomes, their step durations and connected agents are counted",
          "[reconciler][metrics]") {
  berth::testing::Harness h;
  const double agents_before = agents_connected();
  const double succeeded_before = deploys("succeeded");
  const double failed_before = deploys("failed");
  const auto pulls_before = step_count("pull");
  const auto others_before = step_count("other");

  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.reconciler.agent_connected("vm-1", "local", {});  // a reconnect is not a second agent
  CHECK(agents_connected() == agents_before + 1);
  h.settle();
  auto result = h.ok_result("t1", "r1");
  // A step name the controller does not know is folded into "other", never a new series.
  result.logs.push_back(core::DeployLogEntry{"made-up-step-42", "ok", "x", "", h.now, 1});
  result.logs.push_back(core::DeployLogEntry{"pull", "info", "progress", "", h.now, 0});
  h.reconciler.task_result("vm-1", result);
  h.settle();
  REQUIRE(h.store.services["svc"].status == core::ServiceStatus::kRunning);
  CHECK(deploys("succeeded") == succeeded_before + 1);
  CHECK(deploys("failed") == failed_before);
  CHECK(step_count("pull") == pulls_before + 1);  // the info line is not a finished step
  CHECK(step_count("other") == others_before + 1);
  CHECK(metrics::process_registry().render().find("made-up-step-42") == std::string::npos);

  h.reconciler.agent_disconnected("vm-1");
  h.reconciler.agent_disconnected("vm-1");
  CHECK(agents_connected() == agents_before);
}
