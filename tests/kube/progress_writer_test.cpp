// kube::ProgressThrottle: which status.progress writes happen when, on times the test chooses.
#include "kube/progress_writer.h"

#include <catch2/catch.hpp>

namespace berth::kube {
namespace {

core::RolloutProgress report(const std::string& task, const std::string& step, int layers = 0) {
  core::RolloutProgress p;
  p.task_id = task;
  p.step = step;
  p.layers_done = layers;
  return p;
}

}  // namespace

TEST_CASE("progress throttle: the first report of a rollout is written at once",
          "[kube][progress]") {
  ProgressThrottle t(3000);
  t.offer("a", report("t1", "pull"), 1000);
  REQUIRE(t.next_due() == 0);
  auto due = t.take_due(1000);
  REQUIRE(due.size() == 1);
  CHECK(due[0].id == "a");
  REQUIRE(due[0].progress);
  CHECK(due[0].progress->step == "pull");
  CHECK_FALSE(t.next_due());
  CHECK(t.take_due(1000).empty());
}

TEST_CASE("progress throttle: reports within the interval are coalesced into the latest",
          "[kube][progress]") {
  ProgressThrottle t(3000);
  t.offer("a", report("t1", "pull", 1), 1000);
  REQUIRE(t.take_due(1000).size() == 1);
  t.offer("a", report("t1", "pull", 2), 1500);
  t.offer("a", report("t1", "pull", 3), 2500);
  CHECK(t.take_due(2500).empty());
  CHECK(t.take_due(3999).empty());
  REQUIRE(t.next_due() == 4000);
  auto due = t.take_due(4000);
  REQUIRE(due.size() == 1);
  REQUIRE(due[0].progress);
  CHECK(due[0].progress->layers_done == 3);  // only the latest of the interval
  // The next interval counts from that write.
  t.offer("a", report("t1", "start"), 4100);
  CHECK(t.next_due() == 7000);
}

TEST_CASE("progress throttle: each app has its own interval", "[kube][progress]") {
  ProgressThrottle t(3000);
  t.offer("a", report("t1", "pull"), 1000);
  REQUIRE(t.take_due(1000).size() == 1);
  t.offer("b", report("t2", "pull"), 1200);
  t.offer("a", report("t1", "start"), 1200);
  auto due = t.take_due(1200);
  REQUIRE(due.size() == 1);
  CHECK(due[0].id == "b");
  CHECK(t.next_due() == 4000);
}

TEST_CASE("progress throttle: a removal is due at once and replaces a waiting report",
          "[kube][progress]") {
  ProgressThrottle t(3000);
  t.offer("a", report("t1", "pull"), 1000);
  REQUIRE(t.take_due(1000).size() == 1);
  // A late report waits out the interval; the rollout ends before it is due.
  t.offer("a", report("t1", "probe"), 1500);
  t.offer("a", std::nullopt, 1600);
  auto due = t.take_due(1600);
  REQUIRE(due.size() == 1);
  CHECK(due[0].id == "a");
  CHECK_FALSE(due[0].progress);
  // The stale report is gone with it: nothing is written after the removal.
  CHECK_FALSE(t.next_due());
  CHECK(t.take_due(10'000).empty());
  CHECK(t.tracked() == 0);
}

TEST_CASE("progress throttle: a removal for an app with nothing written costs no request",
          "[kube][progress]") {
  ProgressThrottle t(3000);
  t.offer("never", std::nullopt, 1000);
  CHECK(t.take_due(1000).empty());
  // A report offered and removed before the worker took it is never written either.
  t.offer("a", report("t1", "pull"), 1000);
  t.offer("a", std::nullopt, 1000);
  CHECK(t.take_due(1000).empty());
  CHECK(t.tracked() == 0);
}

TEST_CASE("progress throttle: the next rollout's first report is written at once",
          "[kube][progress]") {
  ProgressThrottle t(3000);
  t.offer("a", report("t1", "pull"), 1000);
  REQUIRE(t.take_due(1000).size() == 1);
  t.offer("a", std::nullopt, 1100);
  REQUIRE(t.take_due(1100).size() == 1);
  t.offer("a", report("t2", "pull"), 1200);
  auto due = t.take_due(1200);
  REQUIRE(due.size() == 1);
  REQUIRE(due[0].progress);
  CHECK(due[0].progress->task_id == "t2");
}

TEST_CASE("progress throttle: a failed removal is retried, a bounded number of times",
          "[kube][progress]") {
  ProgressThrottle t(3000, 3);
  t.offer("a", report("t1", "pull"), 1000);
  REQUIRE(t.take_due(1000).size() == 1);
  t.offer("a", std::nullopt, 2000);
  auto due = t.take_due(2000);
  REQUIRE(due.size() == 1);
  t.failed(due[0], true, 2000);
  CHECK(t.next_due() == 5000);
  due = t.take_due(5000);
  REQUIRE(due.size() == 1);
  CHECK_FALSE(due[0].progress);
  CHECK(due[0].attempt == 1);
  t.failed(due[0], true, 5000);
  due = t.take_due(8000);
  REQUIRE(due.size() == 1);
  CHECK(due[0].attempt == 2);
  t.failed(due[0], true, 8000);  // the third attempt failed: given up
  CHECK_FALSE(t.next_due());
}

TEST_CASE("progress throttle: no retry when the app is gone or a failed write was a report",
          "[kube][progress]") {
  ProgressThrottle t(3000);
  t.offer("a", report("t1", "pull"), 1000);
  auto due = t.take_due(1000);
  REQUIRE(due.size() == 1);
  t.failed(due[0], true, 1000);  // a report: the next report is written instead
  CHECK_FALSE(t.next_due());
  // ...but its removal is still written: the report may have reached status.
  t.offer("a", std::nullopt, 1500);
  due = t.take_due(1500);
  REQUIRE(due.size() == 1);
  t.failed(due[0], false, 1500);  // NotFound: the app is gone
  CHECK_FALSE(t.next_due());
  CHECK(t.tracked() == 0);
}

TEST_CASE("progress throttle: a report during a removal's retry wait is written instead",
          "[kube][progress]") {
  ProgressThrottle t(3000);
  t.offer("a", report("t1", "pull"), 1000);
  REQUIRE(t.take_due(1000).size() == 1);
  t.offer("a", std::nullopt, 2000);
  auto due = t.take_due(2000);
  REQUIRE(due.size() == 1);
  t.offer("a", report("t2", "pull"), 2100);  // a new rollout, offered while the removal ran
  t.failed(due[0], true, 2200);
  due = t.take_due(2200);
  REQUIRE(due.size() == 1);
  REQUIRE(due[0].progress);
  CHECK(due[0].progress->task_id == "t2");
}

}  // namespace berth::kube
