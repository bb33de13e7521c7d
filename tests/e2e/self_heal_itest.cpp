// Observed state is the truth, on the real stack: when an app's container is removed, its
// process killed, it stops answering its probe, or the agent comes back with its containers
// gone, the controller redeploys the current revision, says so through the API meanwhile, and
// the app serves again at the same url. Needs the agent's continuous probe (AppStatus).
#include <thread>

#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "support/skip.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

void podman(e2e::Stack& stack, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"podman"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  const int rc = testenv::run_command(argv, &out, stack.podman().env(), 60);
  INFO(out);
  REQUIRE(rc == 0);
}

std::string ready_status(const json& service) {
  for (const auto& c : service.value("conditions", json::array())) {
    if (c.value("type", "") == "Ready") return c.value("status", "");
  }
  return "";
}

// A service running v1; returns {id, url}.
std::pair<std::string, std::string> running_v1(e2e::Stack& stack, const std::string& tag) {
  const json created = stack.create_service(e2e::unique_name(tag), "v1");
  const std::string id = created["id"];
  const json v1 = stack.wait_running(id, 1);
  const std::string url = v1["url"];
  REQUIRE(e2e::Stack::page(url) == "v1\n");
  return {id, url};
}

// The API stops saying Ready (the app is gone), then the app is Running and serving v1 again
// from revision 1, whose deploy log says why it was redeployed.
void expect_healed(e2e::Stack& stack, const std::string& id, const std::string& url) {
  stack.wait_service(
      id, [](const json& s) { return ready_status(s) != "True"; }, "Ready to drop", 90s);
  const json healed = stack.wait_service(
      id,
      [](const json& s) { return s.value("status", "") == "Running" && ready_status(s) == "True"; },
      "the app to be redeployed", 120s);
  CHECK(healed["url"] == url);
  e2e::Stack::wait_page(url, "v1\n", 30s);
  bool logged = false;
  for (const auto& e : stack.deployment(id, 1).value("deploy_logs", json::array())) {
    if (e.value("step", "") == "redeploy") logged = true;
  }
  CHECK(logged);
  CHECK(stack.containers(id).size() == 1);
}

}  // namespace

TEST_CASE("A container removed behind berth's back is redeployed", "[e2e][self-heal]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack;
  stack.start();
  auto [id, url] = running_v1(stack, "heal-rm");
  const auto cids = stack.containers(id);
  REQUIRE(cids.size() == 1);
  podman(stack, {"rm", "-f", cids[0]});
  expect_healed(stack, id, url);
}

TEST_CASE("An app whose process was killed is redeployed", "[e2e][self-heal]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack;
  stack.start();
  auto [id, url] = running_v1(stack, "heal-kill");
  const auto cids = stack.containers(id);
  REQUIRE(cids.size() == 1);
  podman(stack, {"kill", "--signal", "KILL", cids[0]});
  expect_healed(stack, id, url);
}

TEST_CASE("An app that stops answering its probe is redeployed", "[e2e][self-heal]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack;
  stack.start();
  auto [id, url] = running_v1(stack, "heal-pause");
  const auto cids = stack.containers(id);
  REQUIRE(cids.size() == 1);
  podman(stack, {"pause", cids[0]});  // alive but silent: unhealthy, not missing
  stack.wait_service(
      id, [](const json& s) { return ready_status(s) == "False"; }, "Ready=False", 90s);
  const json healed = stack.wait_service(
      id,
      [](const json& s) { return s.value("status", "") == "Running" && ready_status(s) == "True"; },
      "the app to be redeployed", 180s);
  CHECK(healed["url"] == url);
  e2e::Stack::wait_page(url, "v1\n", 30s);
}

TEST_CASE("An agent restarted with its containers gone redeploys them", "[e2e][self-heal]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack({.separate_agent = true});
  stack.start();
  auto [id, url] = running_v1(stack, "heal-reboot");
  stack.kill_agent();
  for (const auto& cid : stack.containers(id, /*all=*/true)) podman(stack, {"rm", "-f", cid});
  stack.start_agent();
  expect_healed(stack, id, url);
}
