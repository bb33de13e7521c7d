// The agent link cut mid-task, on the real stack: the separate agent dials the controller
// through a fault proxy, and the registry is reached through another one that slows the pull
// down so the cut lands while the agent is pulling. The connection is cut, refused for a
// while (the agent's reconnects fail), then let through: the service says it waits for an
// agent meanwhile, and the rollout finishes on its own with exactly one container.
#include <string>

#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "faults/faults.h"
#include "support/fault_proxy.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
namespace faults = berth::faults;
namespace testenv = berth::testenv;
using berth::testing::FaultProxy;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::uint16_t link_port_of(const std::string& host) {
  return static_cast<std::uint16_t>(std::stoi(host.substr(host.rfind(':') + 1)));
}

int count_in(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

// What the API says about the missing agent: the condition with reason AgentDisconnected.
std::string agent_condition(const json& service) {
  for (const auto& c : service.value("conditions", json::array())) {
    if (c.value("reason", "") == "AgentDisconnected") {
      return c.value("type", "") + "=" + c.value("status", "") +
             " AgentDisconnected: " + c.value("message", "");
    }
  }
  return "";
}

bool has_step(const json& revision, const std::string& step, const std::string& status) {
  for (const auto& e : revision.value("deploy_logs", json::array())) {
    if (e.value("step", "") == step && (status.empty() || e.value("status", "") == status))
      return true;
  }
  return false;
}

}  // namespace

TEST_CASE(
    "The agent link cut during a pull: the service waits for its agent and the rollout "
    "finishes once the link is back",
    "[faults][link]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  auto& registry = testenv::Registry::shared();
  auto registry_proxy = FaultProxy::start(link_port_of(registry.host()));
  e2e::StackOptions o;
  o.separate_agent = true;
  o.registry_aliases = {registry_proxy->host()};
  o.controller_args = {"--registry-timeout-seconds", "10", "--credential-check-timeout", "5",
                       "--backoff-cap-seconds",      "4"};
  e2e::Stack stack(o);
  auto link_proxy = FaultProxy::start(stack.agent_port());
  stack.options().agent_dial_port = link_proxy->port();
  stack.start();
  REQUIRE(link_proxy->open_connections() == 1);

  const json created = stack.create_service(e2e::unique_name("link-cut"), "v1", std::nullopt,
                                            faults::via(registry_proxy->host(), "v1"));
  const std::string id = created["id"];
  const std::string url = stack.wait_running(id, 1)["url"];

  // v2, pulled slowly: every chunk from the registry waits (the resolve and the API's check
  // of the password too, within their deadlines).
  const int deploys_before = count_in(stack.agent_log(), "\"deploy started\"");
  registry_proxy->set_delay(300ms);
  registry_proxy->set_mode(FaultProxy::Mode::kDelay);
  stack.patch_image(id, "v2", registry.password(), faults::via(registry_proxy->host(), "v2"));
  // The agent started the task: it is pulling (its first step), slowly.
  const bool pulling = berth::testing::wait_until(
      [&] { return count_in(stack.agent_log(), "\"deploy started\"") > deploys_before; }, 60s,
      20ms);
  INFO(stack.agent_log());
  REQUIRE(pulling);

  // Cut, and keep the controller unreachable until the service shows it.
  link_proxy->set_mode(FaultProxy::Mode::kRefuse);
  const auto cut = faults::Clock::now();
  stack.wait_log("\"agent disconnected\"", 1, 30s);
  const json waiting = stack.wait_service(
      id, [](const json& s) { return !agent_condition(s).empty(); },
      "a condition with reason AgentDisconnected", 60s);
  const std::string condition = agent_condition(waiting);
  CHECK(e2e::Stack::page(url) == "v1\n");  // the app itself does not need the link

  const auto back = faults::Clock::now();
  registry_proxy->set_mode(FaultProxy::Mode::kPass);
  link_proxy->set_mode(FaultProxy::Mode::kPass);
  const json done = stack.wait_running(id, 2, 120s);
  faults::report_recovery("agent link cut during a pull", condition, faults::seconds_since(back));
  INFO("cut lasted " << std::chrono::duration<double>(back - cut).count() << " s");
  e2e::Stack::wait_page(url, "v2\n", 30s);
  CHECK(stack.containers(id).size() == 1);
  CHECK(done.value("last_error", "") == "");

  // A second cut, once, as the controller dispatches the next task (its digest resolved): the
  // agent reconnects at once and the task is sent again or resumed.
  stack.patch_image(id, "v1", registry.password(), faults::via(registry_proxy->host(), "v1"));
  berth::testing::wait_until([&] { return has_step(stack.deployment(id, 3), "resolve", "ok"); },
                             60s, 20ms);
  const auto cut2 = faults::Clock::now();
  link_proxy->cut();
  stack.wait_log("\"agent disconnected\"", 2, 30s);
  const json done2 = stack.wait_running(id, 3, 120s);
  faults::report_recovery("agent link cut once at dispatch", "agent disconnected (controller log)",
                          faults::seconds_since(cut2));
  e2e::Stack::wait_page(url, "v1\n", 30s);
  CHECK(stack.containers(id).size() == 1);
  CHECK(done2.value("last_error", "") == "");
}
