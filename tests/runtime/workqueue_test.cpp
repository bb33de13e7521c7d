#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "runtime/controller.h"
#include "runtime/workqueue.h"

using namespace berth::runtime;
using namespace std::chrono_literals;

namespace {
BackoffPolicy no_jitter(Duration cap = 1000s) { return BackoffPolicy{5ms, cap, 0.0}; }
}  // namespace

TEST_CASE("Adding a key twice before it is taken hands it out once", "[workqueue]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  q.add("a");
  q.add("a");
  q.add("b");
  CHECK(q.try_get() == std::optional<std::string>("a"));
  CHECK(q.try_get() == std::optional<std::string>("b"));
  CHECK_FALSE(q.try_get().has_value());
  CHECK(q.stats().adds_total == 3);
}

TEST_CASE("A key being processed is not handed to a second worker until done", "[workqueue]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  q.add("a");
  auto first = q.try_get();
  REQUIRE(first == std::optional<std::string>("a"));
  q.add("a");  // changed while being processed
  CHECK_FALSE(q.try_get().has_value());
  q.done("a");
  CHECK(q.try_get() == std::optional<std::string>("a"));
  q.done("a");
  CHECK_FALSE(q.try_get().has_value());
}

TEST_CASE("A delayed key becomes ready only when its delay has passed", "[workqueue]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  q.add_after("a", 100ms);
  CHECK_FALSE(q.try_get().has_value());
  clock.advance(99ms);
  CHECK_FALSE(q.try_get().has_value());
  clock.advance(1ms);
  CHECK(q.try_get() == std::optional<std::string>("a"));
}

TEST_CASE("An earlier add_after wins over a later one for the same key", "[workqueue]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  q.add_after("a", 500ms);
  q.add_after("a", 50ms);
  q.add_after("a", 900ms);
  clock.advance(50ms);
  CHECK(q.try_get() == std::optional<std::string>("a"));
  q.done("a");
  clock.advance(1s);
  CHECK_FALSE(q.try_get().has_value());  // the superseded entries do not fire again
}

TEST_CASE("Failures back off exponentially from 5 ms and stop at the cap", "[workqueue]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter(40ms));
  CHECK(q.next_backoff("a") == 5ms);
  q.add_rate_limited("a");
  CHECK(q.next_backoff("a") == 10ms);
  q.add_rate_limited("a");
  CHECK(q.next_backoff("a") == 20ms);
  q.add_rate_limited("a");
  CHECK(q.next_backoff("a") == 40ms);
  q.add_rate_limited("a");
  CHECK(q.next_backoff("a") == 40ms);  // capped
  CHECK(q.failures("a") == 4);
  CHECK(q.stats().retries_total == 4);
  q.forget("a");
  CHECK(q.next_backoff("a") == 5ms);
}

TEST_CASE("A rate-limited key is ready after its backoff and not before", "[workqueue]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  q.add_rate_limited("a");  // 5 ms
  clock.advance(4ms);
  CHECK_FALSE(q.try_get().has_value());
  clock.advance(1ms);
  CHECK(q.try_get() == std::optional<std::string>("a"));
}

TEST_CASE("Jitter shortens a backoff by at most the jitter fraction", "[workqueue]") {
  ManualClock clock;
  double u = 0.999;
  WorkQueue q(clock, BackoffPolicy{100ms, 1000s, 0.5}, [&u] { return u; });
  q.add_rate_limited("a");  // 100ms * (1 - 0.5*0.999) ~= 50.05ms
  clock.advance(50ms);
  CHECK_FALSE(q.try_get().has_value());
  clock.advance(1ms);
  CHECK(q.try_get() == std::optional<std::string>("a"));
}

TEST_CASE("Shutting down with drain hands out what is queued and then stops", "[workqueue]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  q.add("a");
  q.add("b");
  q.shut_down_with_drain();
  q.add("c");  // ignored after shutdown
  CHECK(q.get() == std::optional<std::string>("a"));
  CHECK(q.get() == std::optional<std::string>("b"));
  CHECK_FALSE(q.get().has_value());
}

TEST_CASE("Shutting down without drain wakes a blocked get with nothing", "[workqueue]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  std::optional<std::string> got = std::string("unset");
  std::thread waiter([&] { got = q.get(); });
  q.shut_down();
  waiter.join();
  CHECK_FALSE(got.has_value());
}

TEST_CASE("The controller forgets failures when a reconcile succeeds", "[controller]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  int calls = 0;
  Controller c(
      q,
      [&](const std::string&) {
        ++calls;
        return calls < 3 ? ReconcileOutcome::retry("not yet") : ReconcileOutcome::done();
      },
      ControllerOptions{});
  q.add("a");
  CHECK(c.process_one());
  CHECK(q.failures("a") == 1);
  CHECK_FALSE(c.process_one());  // backing off
  clock.advance(5ms);
  CHECK(c.process_one());
  CHECK(q.failures("a") == 2);
  clock.advance(10ms);
  CHECK(c.process_one());
  CHECK(q.failures("a") == 0);
  CHECK(calls == 3);
  auto counters = c.counters();
  CHECK(counters.error == 2);
  CHECK(counters.success == 1);
}

TEST_CASE("A terminal outcome is not retried", "[controller]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  Controller c(
      q, [](const std::string&) { return ReconcileOutcome::terminal("bad spec"); },
      ControllerOptions{});
  q.add("a");
  CHECK(c.process_one());
  clock.advance(1h);
  CHECK_FALSE(c.process_one());
  CHECK(c.counters().terminal == 1);
}

TEST_CASE("RequeueAfter brings the key back after the requested delay", "[controller]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  int calls = 0;
  Controller c(
      q,
      [&](const std::string&) {
        ++calls;
        return ReconcileOutcome::requeue_after(30s, "waiting for the agent");
      },
      ControllerOptions{});
  q.add("a");
  CHECK(c.process_one());
  clock.advance(29s);
  CHECK_FALSE(c.process_one());
  clock.advance(1s);
  CHECK(c.process_one());
  CHECK(calls == 2);
}

TEST_CASE("Resync re-adds every listed key once", "[controller]") {
  ManualClock clock;
  WorkQueue q(clock, no_jitter());
  ControllerOptions opts;
  opts.list_keys = [] { return std::vector<std::string>{"a", "b", "a"}; };
  std::multiset<std::string> seen;
  Controller c(
      q,
      [&](const std::string& k) {
        seen.insert(k);
        return ReconcileOutcome::done();
      },
      opts);
  c.resync_now();
  while (c.process_one()) {
  }
  CHECK(seen == std::multiset<std::string>{"a", "b"});
}

TEST_CASE("Workers never reconcile the same key at the same time", "[controller]") {
  SteadyClock clock;
  WorkQueue q(clock, no_jitter());
  std::mutex mu;
  std::condition_variable cv;
  int a_in_flight = 0;
  int a_calls = 0;
  bool overlap = false;
  bool release_a = false;
  std::multiset<std::string> others;
  ControllerOptions opts;
  opts.workers = 4;
  opts.resync_period = Duration::zero();
  Controller c(
      q,
      [&](const std::string& k) {
        std::unique_lock lock(mu);
        if (k == "a") {
          overlap = overlap || a_in_flight > 0;
          ++a_in_flight;
          ++a_calls;
          cv.notify_all();
          // The first "a" is held until the test has seen the queue move past the point where a
          // second worker could have taken "a" (a second "a" arriving releases it too).
          cv.wait_for(lock, 10s, [&] { return release_a || a_calls > 1; });
          --a_in_flight;
        } else {
          others.insert(k);
          cv.notify_all();
        }
        return ReconcileOutcome::done();
      },
      opts);
  c.start();
  std::unique_lock lock(mu);
  q.add("a");
  REQUIRE(cv.wait_for(lock, 10s, [&] { return a_calls == 1; }));
  // "a" again while it is in flight, then "b" behind it: three idle workers wait. A queue that
  // handed "a" out again would do so before "b", so once "b" ran, a second "a" had its chance.
  q.add("a");
  q.add("b");
  REQUIRE(cv.wait_for(lock, 10s, [&] { return others.count("b") == 1; }));
  CHECK(a_calls == 1);
  CHECK_FALSE(overlap);
  // Done with the first "a": the key was dirty, so it runs once more, alone.
  release_a = true;
  cv.notify_all();
  REQUIRE(cv.wait_for(lock, 10s, [&] { return a_calls == 2 && a_in_flight == 0; }));
  lock.unlock();
  c.stop();
  CHECK_FALSE(overlap);
  CHECK(a_calls == 2);
}
