// The agent keeps watching the apps it serves after cutover: AppWatch's decisions, and the
// Deployer's watch rounds on fakes (a container that vanishes, stops or stops answering).
#include <catch2/catch.hpp>

#include "agent/agent.h"
#include "agent/app_watch.h"
#include "deployer_rig.h"

using namespace berth;
using namespace berth::agent;
using namespace berth::agent::testing;
using agentlink::AppState;
using Kind = Observation::Kind;

namespace {

std::vector<std::string> feed(AppWatch& w, const std::vector<Kind>& kinds, WatchThresholds t) {
  std::vector<std::string> changes;
  for (Kind k : kinds)
    if (auto s = w.observe({k, "why"}, t)) changes.push_back(agentlink::to_string(*s));
  return changes;
}

// One watch round after the app's interval (5 s by default) has passed.
std::vector<agentlink::AppStatus> watch_later(Rig& rig) {
  rig.clock += 60'000;
  return rig.deployer->watch();
}

}  // namespace

TEST_CASE("A running app becomes unhealthy only after the threshold of consecutive failures",
          "[watch]") {
  AppWatch w;
  const WatchThresholds t{1, 3};
  CHECK(feed(w, {Kind::kUnhealthy, Kind::kUnhealthy, Kind::kHealthy}, t).empty());
  CHECK(feed(w, {Kind::kUnhealthy, Kind::kUnhealthy}, t).empty());
  CHECK(feed(w, {Kind::kUnhealthy}, t) == std::vector<std::string>{"unhealthy"});
  CHECK(w.detail() == "why");
  CHECK(feed(w, {Kind::kUnhealthy}, t).empty());  // already reported
  CHECK(feed(w, {Kind::kHealthy}, t) == std::vector<std::string>{"running"});
  CHECK(w.detail().empty());
}

TEST_CASE("A vanished container is missing at once and running again after the healthy threshold",
          "[watch]") {
  AppWatch w;
  const WatchThresholds t{2, 3};
  CHECK(feed(w, {Kind::kMissing}, t) == std::vector<std::string>{"missing"});
  CHECK(feed(w, {Kind::kMissing, Kind::kUnknown}, t).empty());
  CHECK(feed(w, {Kind::kHealthy}, t).empty());  // one success of two
  CHECK(feed(w, {Kind::kHealthy}, t) == std::vector<std::string>{"running"});
  // A container that is back but does not answer is unhealthy, after the threshold.
  CHECK(feed(w, {Kind::kMissing, Kind::kUnhealthy, Kind::kUnhealthy, Kind::kUnhealthy}, t) ==
        std::vector<std::string>{"missing", "unhealthy"});
}

TEST_CASE("An observation podman could not make changes nothing", "[watch]") {
  AppWatch w;
  const WatchThresholds t{1, 2};
  CHECK(feed(w, {Kind::kUnhealthy, Kind::kUnknown, Kind::kUnknown, Kind::kUnhealthy}, t) ==
        std::vector<std::string>{"unhealthy"});
}

TEST_CASE("After cutover a removed container is reported missing, and running after a redeploy",
          "[watch][deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  CHECK(watch_later(rig).empty());  // healthy: nothing to say
  rig.driver.containers.erase("berth-svc1-r1-s0");

  auto s = watch_later(rig);
  REQUIRE(s.size() == 1);
  CHECK(s[0].service_id == "svc1");
  CHECK(s[0].revision_id == "rev1");
  CHECK(s[0].state == AppState::kMissing);
  CHECK(s[0].container.empty());
  CHECK_THAT(s[0].detail, Catch::Contains("berth-svc1-r1-s0 no longer exists"));
  CHECK(s[0].observed_at_ms > 0);
  CHECK(watch_later(rig).empty());  // reported once

  const auto hello = rig.deployer->observe();
  REQUIRE(hello.size() == 1);
  CHECK_FALSE(hello[0].healthy);
  CHECK(hello[0].container.empty());
  CHECK(hello[0].revision_id == "rev1");

  REQUIRE(rig.deploy(rig.task("t2", 1)).ok);  // the controller redeploys the same revision
  s = rig.deployer->watch();
  REQUIRE(s.size() == 1);
  CHECK(s[0].state == AppState::kRunning);
  CHECK(s[0].container == "berth-svc1-r1-s1");
  CHECK(rig.deployer->observe()[0].healthy);
}

TEST_CASE("A stopped container (its process killed) is reported missing", "[watch][deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.driver.containers["berth-svc1-r1-s0"].state = "exited";
  auto s = watch_later(rig);
  REQUIRE(s.size() == 1);
  CHECK(s[0].state == AppState::kMissing);
  CHECK_THAT(s[0].detail, Catch::Contains("not running (state exited)"));
}

TEST_CASE("Failing health checks make an app unhealthy after the threshold, then running again",
          "[watch][deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.prober.probes.clear();
  rig.prober.healthy = false;
  CHECK(watch_later(rig).empty());
  CHECK(watch_later(rig).empty());
  auto s = watch_later(rig);  // the agent's default threshold: 3
  REQUIRE(s.size() == 1);
  CHECK(s[0].state == AppState::kUnhealthy);
  CHECK(s[0].container == "berth-svc1-r1-s0");
  CHECK_THAT(s[0].detail, Catch::Contains("404"));
  CHECK_FALSE(rig.deployer->observe()[0].healthy);
  // Each check is one attempt on the container's own port, bounded by the app's timeout.
  REQUIRE(rig.prober.probes.size() == 3);
  CHECK(rig.prober.probes[0].port == 30000);
  CHECK(rig.prober.probes[0].path == "/health");
  CHECK(rig.prober.probes[0].deadline <= rig.prober.probes[0].interval);

  rig.prober.healthy = true;
  s = watch_later(rig);
  REQUIRE(s.size() == 1);
  CHECK(s[0].state == AppState::kRunning);
  CHECK(s[0].detail.empty());
  CHECK(rig.deployer->observe()[0].healthy);
}

TEST_CASE("An app is checked at its own health interval, not at every round", "[watch][deployer]") {
  Rig rig;
  auto t = rig.task("t1", 1);
  t.health.interval_seconds = 10;
  REQUIRE(rig.deploy(t).ok);
  rig.prober.probes.clear();
  rig.deployer->watch();  // the first check follows the deploy at once
  rig.deployer->watch();
  rig.clock += 5'000;
  rig.deployer->watch();
  CHECK(rig.prober.probes.size() == 1);
  rig.clock += 6'000;
  rig.deployer->watch();
  CHECK(rig.prober.probes.size() == 2);
}

TEST_CASE("After a reconnect every app that is not running is reported again",
          "[watch][deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.driver.containers.erase("berth-svc1-r1-s0");
  REQUIRE(watch_later(rig).size() == 1);
  CHECK(rig.deployer->watch().empty());
  rig.deployer->report_all_on_next_watch();
  auto s = rig.deployer->watch();
  REQUIRE(s.size() == 1);
  CHECK(s[0].state == AppState::kMissing);
  CHECK(rig.deployer->watch().empty());
}

TEST_CASE("Restarting a container that is gone fails clearly and reports the app missing",
          "[watch][deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.driver.containers.erase("berth-svc1-r1-s0");
  rig.driver.calls.clear();
  auto r = rig.deployer->restart({"t2", "svc1"}, nullptr);
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.error, Catch::Contains("berth-svc1-r1-s0 no longer exists"));
  CHECK_THAT(r.error, Catch::Contains("redeployed"));
  CHECK(rig.driver.calls.empty());  // no podman restart of a container that is not there
  auto s = rig.deployer->watch();   // reported without waiting for the next check
  REQUIRE(s.size() == 1);
  CHECK(s[0].state == AppState::kMissing);
}

TEST_CASE("After a restart with its containers gone the agent says so in Hello and a status",
          "[watch][deployer][reconcile]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  // A host reboot: the containers and the proxy are gone; the state DB remains.
  rig.driver.containers.clear();
  rig.proxies.routes.clear();
  rig.make_deployer();
  REQUIRE(rig.deployer->reconcile().ok());
  const auto hello = rig.deployer->observe();
  REQUIRE(hello.size() == 1);
  CHECK(hello[0].revision_id == "rev1");  // what to redeploy
  CHECK(hello[0].container.empty());
  CHECK_FALSE(hello[0].healthy);
  auto s = rig.deployer->watch();
  REQUIRE(s.size() == 1);
  CHECK(s[0].state == AppState::kMissing);
  CHECK(s[0].revision_id == "rev1");
}

TEST_CASE("A removed app is no longer watched", "[watch][deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  REQUIRE(rig.deployer->remove({"t2", "svc1"}, nullptr).ok);
  rig.prober.probes.clear();
  CHECK(watch_later(rig).empty());
  CHECK(rig.prober.probes.empty());
}

TEST_CASE("The agent's watch thread sends what the watch finds", "[watch][agent]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.driver.containers.erase("berth-svc1-r1-s0");
  std::mutex mu;
  std::condition_variable cv;
  std::vector<agentlink::AppStatus> sent;
  Agent::Options o{"vm", "z"};
  o.watch_every = std::chrono::milliseconds(1);
  Agent agent(o, *rig.deployer, [&](agentlink::Message m) {
    if (auto* s = std::get_if<agentlink::AppStatus>(&m)) {
      std::lock_guard lock(mu);
      sent.push_back(*s);
      cv.notify_all();
    }
  });
  REQUIRE(agent.start().ok());
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return !sent.empty(); });
  CHECK(sent[0].state == AppState::kMissing);
  lock.unlock();
  agent.stop();
}
