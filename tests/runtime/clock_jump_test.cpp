// Wall-clock steps (NTP, a resumed VM) against the reconciler's memory-only timers: the
// redeploy backoff and the resend of an unacknowledged task follow the steady clock
// (ReconcilerOptions::steady_now), so a wall clock moved back does not hold them back and one
// moved forward does not fire them early. Timestamps that are stored still follow the wall.
#include <catch2/catch.hpp>

#include "harness.h"

using namespace berth;
using namespace berth::runtime;
using berth::testing::Harness;

namespace {

// A reconciler on a harness's fakes whose memory timers follow the harness's steady clock
// (the queue's ManualClock) while its wall clock is `h.now`, moved on its own by the test.
struct SteadyReconciler {
  explicit SteadyReconciler(Harness& h)
      : h(h),
        reconciler(h.store, h.gateway, h.resolver, h.queue, options(h)),
        controller(
            h.queue, [this](const std::string& k) { return reconciler.reconcile(k); },
            ControllerOptions{}) {}

  static ReconcilerOptions options(Harness& h) {
    ReconcilerOptions o{20, [&h] { return h.now; },
                        [&h] { return "task-" + std::to_string(++h.ids); }, "127.0.0.1"};
    o.steady_now = [&h] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(h.clock.now().time_since_epoch())
          .count();
    };
    return o;
  }

  void settle() {
    for (int i = 0; i < 100 && controller.process_one(); ++i) {
    }
  }

  Harness& h;
  Reconciler reconciler;
  Controller controller;
};

core::AppReport missing() {
  return core::AppReport{"svc", "r1", core::AppState::kMissing, "container gone"};
}

}  // namespace

TEST_CASE("A wall clock moved back does not hold back a redeploy", "[reconciler][clock]") {
  Harness h;
  SteadyReconciler s(h);
  h.add_service();
  s.reconciler.agent_connected("vm-1", "local", {});
  s.settle();
  s.reconciler.task_result("vm-1", h.ok_result("t1", "r1"));
  s.settle();
  REQUIRE(h.store.services["svc"].status == core::ServiceStatus::kRunning);

  // The app is lost and its redeploy fails (a pull that cannot reach the registry): the next
  // attempt waits for the redeploy backoff (1 s).
  s.reconciler.app_status("vm-1", missing());
  s.settle();
  REQUIRE(h.gateway.sent.size() == 2);
  core::TaskOutcome failed = h.ok_result(h.gateway.sent[1].task_id, "r1");
  failed.ok = false;
  failed.logs = {core::DeployLogEntry{"pull", "failed", "registry unreachable", "", h.now, 5}};
  s.reconciler.task_result("vm-1", failed);
  s.settle();
  REQUIRE(h.gateway.sent.size() == 2);  // backing off

  // The wall clock steps back two hours; the steady clock moves on past the backoff.
  h.now -= 2 * 3600 * 1000;
  h.clock.advance(std::chrono::seconds(2));
  h.queue.add("svc");
  s.settle();
  // Measured on the wall clock the backoff would have two hours left.
  REQUIRE(h.gateway.sent.size() == 3);
  CHECK(h.gateway.sent[2].order.revision_id == "r1");
}

TEST_CASE("A wall clock moved forward does not resend an unacknowledged task early",
          "[reconciler][clock]") {
  Harness h;
  SteadyReconciler s(h);
  h.add_service();
  s.reconciler.agent_connected("vm-1", "local", {});
  s.settle();
  REQUIRE(h.gateway.sent.size() == 1);
  // No ack yet. The wall clock jumps an hour ahead: the task is not due again (15 s steady).
  h.now += 3600 * 1000;
  h.queue.add("svc");
  s.settle();
  CHECK(h.gateway.sent.size() == 1);
  // 15 s later on the steady clock it is sent again, same id.
  h.clock.advance(std::chrono::seconds(16));
  h.queue.add("svc");
  s.settle();
  REQUIRE(h.gateway.sent.size() == 2);
  CHECK(h.gateway.sent[1].task_id == h.gateway.sent[0].task_id);
}
