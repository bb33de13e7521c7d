// The progress of a running rollout (Reconciler::task_progress / progress): kept in memory from
// the agent's reports while the task is the one sent, gone when the task finishes or the agent
// disconnects, and told to the listener (Kubernetes mode writes status.progress from it).
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "harness.h"

using namespace berth;
using namespace berth::runtime;
using berth::testing::Harness;

namespace {

core::DeployLogEntry pull_line(const std::string& message, core::UnixMillis at) {
  return core::DeployLogEntry{"pull", "info", message, "", at, 0};
}

Reconciler::PullReport pulled(int layers_done, std::int64_t bytes_done) {
  return Reconciler::PullReport{layers_done, 5, bytes_done, 80'000'000};
}

double pull_bytes_total() {
  return metrics::process_registry().counter("berth_pull_bytes_total", "").get().value();
}

// A service whose first deploy task t1 was sent to vm-1 and is running there.
void dispatch(Harness& h) {
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  REQUIRE(h.gateway.sent.size() == 1);
  REQUIRE(h.gateway.sent[0].task_id == "t1");
}

}  // namespace

TEST_CASE("A running task's pull reports become the service's progress, in memory only",
          "[reconciler][progress]") {
  Harness h;
  dispatch(h);
  CHECK_FALSE(h.reconciler.progress("svc").has_value());
  const auto writes_before = h.store.services["svc"].updated_at;

  h.advance(std::chrono::milliseconds(1000));
  h.reconciler.task_progress("vm-1", "t1", pull_line("pulling: 1/5 layers", h.now), pulled(1, 8));
  h.advance(std::chrono::milliseconds(1000));
  h.reconciler.task_progress("vm-1", "t1", pull_line("pulling: 3/5 layers", h.now),
                             pulled(3, 41'200'000));
  auto p = h.reconciler.progress("svc");
  REQUIRE(p.has_value());
  CHECK(p->task_id == "t1");
  CHECK(p->step == "pull");
  CHECK(p->layers_done == 3);
  CHECK(p->layers_total == 5);
  CHECK(p->bytes_done == 41'200'000);
  CHECK(p->bytes_total == 80'000'000);
  CHECK(p->updated_at == h.now);
  REQUIRE(p->entries.size() == 2);
  CHECK(p->entries[0].message == "pulling: 1/5 layers");
  CHECK(p->entries[1].message == "pulling: 3/5 layers");
  // Memory only: no store write, nothing queued for a reconcile.
  CHECK(h.store.services["svc"].updated_at == writes_before);
  CHECK(h.store.services["svc"].status == core::ServiceStatus::kPending);
  CHECK(h.queue.stats().depth == 0);

  // A later report without pull counts moves the step and keeps the counts.
  h.reconciler.task_progress(
      "vm-1", "t1", core::DeployLogEntry{"start", "ok", "started", "", h.now, 3}, std::nullopt);
  p = h.reconciler.progress("svc");
  REQUIRE(p.has_value());
  CHECK(p->step == "start");
  CHECK(p->bytes_done == 41'200'000);
  CHECK(p->layers_done == 3);
  CHECK(p->entries.size() == 3);
}

TEST_CASE("Progress is gone once the task's result arrives", "[reconciler][progress]") {
  Harness h;
  dispatch(h);
  h.reconciler.task_progress("vm-1", "t1", pull_line("pulling", h.now), pulled(2, 1000));
  REQUIRE(h.reconciler.progress("svc").has_value());

  SECTION("a successful result") {
    h.reconciler.task_result("vm-1", h.ok_result("t1", "r1"));
    h.settle();
    REQUIRE(h.store.services["svc"].status == core::ServiceStatus::kRunning);
  }
  SECTION("a failed result") {
    auto failed = h.ok_result("t1", "r1");
    failed.ok = false;
    failed.error = "pull failed";
    failed.logs = {core::DeployLogEntry{"pull", "failed", "pull failed", "", h.now, 5}};
    h.reconciler.task_result("vm-1", failed);
    h.settle();
    REQUIRE(h.store.revisions["r1"].state == core::RevisionState::kFailed);
  }
  CHECK_FALSE(h.reconciler.progress("svc").has_value());
  // A straggling report of the finished task does not bring it back.
  h.reconciler.task_progress("vm-1", "t1", pull_line("late", h.now), pulled(5, 80'000'000));
  CHECK_FALSE(h.reconciler.progress("svc").has_value());
}

TEST_CASE("Progress is gone when the agent disconnects", "[reconciler][progress]") {
  Harness h;
  dispatch(h);
  h.reconciler.task_progress("vm-1", "t1", pull_line("pulling", h.now), pulled(2, 1000));
  REQUIRE(h.reconciler.progress("svc").has_value());
  h.reconciler.agent_disconnected("vm-1");
  CHECK_FALSE(h.reconciler.progress("svc").has_value());
}

TEST_CASE("Reports of unknown tasks or from another agent are ignored", "[reconciler][progress]") {
  Harness h;
  dispatch(h);
  h.reconciler.agent_connected("vm-2", "local", {});
  h.reconciler.task_progress("vm-1", "t-unknown", pull_line("x", h.now), pulled(1, 10));
  h.reconciler.task_progress("vm-2", "t1", pull_line("x", h.now), pulled(1, 10));
  CHECK_FALSE(h.reconciler.progress("svc").has_value());
  CHECK_FALSE(h.reconciler.progress("no-such-service").has_value());
}

TEST_CASE("The listener hears each change of progress and its end", "[reconciler][progress]") {
  Harness h;
  std::vector<std::pair<std::string, std::optional<core::RolloutProgress>>> heard;
  h.reconciler.set_progress_listener(
      [&](const std::string& id, const std::optional<core::RolloutProgress>& p) {
        heard.emplace_back(id, p);
      });
  dispatch(h);
  CHECK(heard.empty());
  h.reconciler.task_progress("vm-1", "t1", pull_line("a", h.now), pulled(1, 100));
  h.reconciler.task_progress("vm-1", "t1", pull_line("b", h.now), pulled(2, 200));
  REQUIRE(heard.size() == 2);
  CHECK(heard[0].first == "svc");
  REQUIRE(heard[1].second.has_value());
  CHECK(heard[1].second->bytes_done == 200);

  h.reconciler.task_result("vm-1", h.ok_result("t1", "r1"));
  h.settle();
  REQUIRE(heard.size() == 3);
  CHECK(heard[2].first == "svc");
  CHECK_FALSE(heard[2].second.has_value());
}

TEST_CASE("The listener hears the end of progress when the agent disconnects",
          "[reconciler][progress]") {
  Harness h;
  std::vector<std::pair<std::string, bool>> heard;
  h.reconciler.set_progress_listener(
      [&](const std::string& id, const std::optional<core::RolloutProgress>& p) {
        heard.emplace_back(id, p.has_value());
      });
  dispatch(h);
  h.reconciler.task_progress("vm-1", "t1", pull_line("a", h.now), pulled(1, 100));
  h.reconciler.agent_disconnected("vm-1");
  REQUIRE(heard.size() == 2);
  CHECK(heard[1] == std::make_pair(std::string("svc"), false));
}

TEST_CASE("Pull bytes are counted once, by how far each report moved", "[reconciler][progress]") {
  Harness h;
  dispatch(h);
  const double before = pull_bytes_total();
  h.reconciler.task_progress("vm-1", "t1", pull_line("a", h.now), pulled(1, 1000));
  h.reconciler.task_progress("vm-1", "t1", pull_line("b", h.now), pulled(2, 3500));
  h.reconciler.task_progress("vm-1", "t1", pull_line("c", h.now), pulled(2, 3500));  // no move
  CHECK(pull_bytes_total() == before + 3500);
}
