// The order in which the reconciler's progress listener hears a report and the end of its
// progress when they race on two threads (the agent link's reader and a reconcile or a
// disconnect): the end must come last, or a writer that follows the calls (Kubernetes mode's
// kube::ProgressWriter) would write a stale status.progress after the removal.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "support/wait.h"

using namespace berth;
using namespace berth::runtime;
using berth::testing::Harness;
using namespace std::chrono_literals;

TEST_CASE("A report being told to the listener is heard before the end that races it",
          "[reconciler][progress]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  REQUIRE(h.gateway.sent.size() == 1);
  const std::string task = h.gateway.sent[0].task_id;

  // The listener is slow on the report (as an API write on the link's thread used to be) and
  // records each call when it returns.
  std::mutex mu;
  std::condition_variable cv;
  bool in_report = false;
  bool release = false;
  std::vector<bool> heard;  // true: a report, false: the end
  h.reconciler.set_progress_listener(
      [&](const std::string&, const std::optional<core::RolloutProgress>& p) {
        std::unique_lock lock(mu);
        if (p) {
          in_report = true;
          cv.notify_all();
          cv.wait(lock, [&] { return release; });
        }
        heard.push_back(p.has_value());
      });

  std::thread reader([&] {
    h.reconciler.task_progress("vm-1", task,
                               core::DeployLogEntry{"pull", "info", "pulling", "", h.now, 0},
                               Reconciler::PullReport{1, 5, 100, 1000});
  });
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 10s, [&] { return in_report; }));
  }
  // The agent goes away while the report is still being told: its progress is dropped at once
  // (memory), but the end may only be told after the report.
  std::atomic<bool> ended{false};
  std::thread link([&] {
    h.reconciler.agent_disconnected("vm-1");
    ended = true;
  });
  // Give the end every chance to overtake (it must not); bounded, not asserted on.
  (void)testing::wait_until([&] { return ended.load(); }, 300ms);
  CHECK_FALSE(h.reconciler.progress("svc").has_value());
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  reader.join();
  link.join();
  std::lock_guard lock(mu);
  REQUIRE(heard.size() == 2);
  CHECK(heard[0]);
  CHECK_FALSE(heard[1]);
}
