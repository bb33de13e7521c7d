#include <catch2/catch.hpp>
#include <filesystem>

#include "agent/agent.h"
#include "agent/agent_state.h"
#include "fakes.h"

using namespace berth;
using namespace berth::agent;
using namespace berth::agent::testing;

namespace {

struct AgentRig {
  FakeDriver driver;
  FakeProber prober;
  FakeProxies proxies;
  std::unique_ptr<AgentState> state = std::move(AgentState::open(":memory:")).value();
  std::string dir;
  std::unique_ptr<Deployer> deployer;
  std::mutex mu;
  std::vector<agentlink::Message> sent;
  AgentRig() {
    dir = (std::filesystem::temp_directory_path() / "berth-agent-unit-XXXXXX").string();
    REQUIRE(::mkdtemp(dir.data()) != nullptr);
    DeployerDeps d{&driver,
                   &prober,
                   &proxies,
                   state.get(),
                   [] { return core::UnixMillis{1}; },
                   []() -> Result<int> { return 31000; },
                   [] { return std::string("x"); }};
    deployer = std::make_unique<Deployer>(DeployerOptions{dir}, d);
  }
  ~AgentRig() { std::filesystem::remove_all(dir); }
  Agent::Sender sender() {
    return [this](agentlink::Message m) {
      std::lock_guard lock(mu);
      sent.push_back(std::move(m));
    };
  }
  std::vector<std::string> kinds() {
    std::lock_guard lock(mu);
    std::vector<std::string> k;
    for (const auto& m : sent) {
      if (std::holds_alternative<agentlink::Ack>(m))
        k.push_back("ack");
      else if (std::holds_alternative<agentlink::Progress>(m))
        k.push_back("progress");
      else if (std::holds_alternative<agentlink::TaskResult>(m))
        k.push_back("result");
      else
        k.push_back("other");
    }
    return k;
  }
};

agentlink::DeployTask deploy_task(const std::string& id) {
  agentlink::DeployTask t;
  t.task_id = id;
  t.service_id = "svc";
  t.revision_id = "r1";
  t.revision = 1;
  t.image_ref = "docker.io/library/app:1";
  t.container_port = 80;
  return t;
}

}  // namespace

TEST_CASE("The agent acks a task, reports progress, then its result", "[agent]") {
  AgentRig rig;
  Agent agent({"vm", "z"}, *rig.deployer, rig.sender());
  REQUIRE(agent.start().ok());
  agent.handle(deploy_task("t1"));
  agent.wait_idle();
  const auto k = rig.kinds();
  REQUIRE(k.size() == 7);
  CHECK(k.front() == "ack");
  CHECK(std::count(k.begin(), k.end(), "progress") == 5);
  CHECK(k.back() == "result");
  std::lock_guard lock(rig.mu);
  CHECK(std::get<agentlink::TaskResult>(rig.sent.back()).ok);
  CHECK(std::get<agentlink::TaskResult>(rig.sent.back()).task_id == "t1");
}

TEST_CASE("A task id delivered again is acked and answered with the recorded result, not redone",
          "[agent]") {
  AgentRig rig;
  Agent agent({"vm", "z"}, *rig.deployer, rig.sender());
  REQUIRE(agent.start().ok());
  agent.handle(deploy_task("t1"));
  agent.wait_idle();
  const auto runs =
      std::count(rig.driver.calls.begin(), rig.driver.calls.end(), "run berth-svc-r1-x");
  {
    std::lock_guard lock(rig.mu);
    rig.sent.clear();
  }
  agent.handle(deploy_task("t1"));
  agent.wait_idle();
  CHECK(std::count(rig.driver.calls.begin(), rig.driver.calls.end(), "run berth-svc-r1-x") == runs);
  CHECK(rig.kinds() == std::vector<std::string>{"ack", "result"});
}

TEST_CASE("Hello carries the agent's name, zone and every app it runs", "[agent]") {
  AgentRig rig;
  Agent agent({"vm-7", "zone-a"}, *rig.deployer, rig.sender());
  REQUIRE(agent.start().ok());
  CHECK(agent.hello().apps.empty());
  agent.handle(deploy_task("t1"));
  agent.wait_idle();
  const auto h = agent.hello();
  CHECK(h.name == "vm-7");
  CHECK(h.zone == "zone-a");
  REQUIRE(h.apps.size() == 1);
  CHECK(h.apps[0].service_id == "svc");
  CHECK(h.apps[0].revision_id == "r1");
  CHECK(h.apps[0].last_task_id == "t1");
}

TEST_CASE("Agent state survives reopening the database file and keeps no task beyond its record",
          "[agent-state]") {
  const std::string dir = [] {
    std::string d = (std::filesystem::temp_directory_path() / "berth-agent-unit-XXXXXX").string();
    REQUIRE(::mkdtemp(d.data()) != nullptr);
    return d;
  }();
  {
    auto s = AgentState::open(dir + "/state.db");
    REQUIRE(s.ok());
    AppRecord a;
    a.service_id = "svc";
    a.stable_port = 41234;
    a.revision_id = "r3";
    a.health.path = "/h";
    agentlink::TaskResult r;
    r.task_id = "t3";
    r.service_id = "svc";
    r.ok = true;
    r.logs.push_back({"pull", "ok", "Pulled.", "", 5, 7});
    REQUIRE((*s)->finish_task(r, "deploy", a).ok());
  }
  auto s = AgentState::open(dir + "/state.db");
  REQUIRE(s.ok());
  auto a = (*s)->app("svc");
  REQUIRE(a.ok());
  REQUIRE(a->has_value());
  CHECK((*a)->stable_port == 41234);
  CHECK((*a)->revision_id == "r3");
  CHECK((*a)->health.path == "/h");
  auto r = (*s)->recorded_result("t3");
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((*r)->ok);
  REQUIRE((*r)->logs.size() == 1);
  CHECK((*r)->logs[0].duration_ms == 7);
  CHECK_FALSE((*(*s)->recorded_result("other")).has_value());
  std::filesystem::remove_all(dir);
}
