// Crashes mid-rollout on the real stack: SIGKILL of the agent or of the controller while the
// green container is being probed, then a restart. The stack must converge on the new revision
// with exactly one container for the app.
#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Five consecutive successes one second apart: the probe of a healthy green takes at least 4 s,
// a window wide enough to kill a process while green exists but is not yet serving.
const json kSlowProbe = {{"health_check_interval_seconds", 1},
                         {"health_check_timeout_seconds", 1},
                         {"health_check_healthy_threshold", 5}};

// Waits until the app has `n` containers (green started beside blue); FAILs after `limit`.
void wait_containers(e2e::Stack& stack, const std::string& id, std::size_t n, e2e::Seconds limit,
                     const std::string& what) {
  std::size_t seen = 0;
  if (berth::testing::wait_until(
          [&] { return (seen = stack.containers(id, /*all=*/true).size()) == n; }, limit, 100ms)) {
    return;
  }
  FAIL("waiting for " << what << ": " << seen << " containers, wanted " << n
                      << "\ncontroller log:\n"
                      << stack.controller_log() << "\nagent log:\n"
                      << stack.agent_log());
}

}  // namespace

TEST_CASE(
    "An agent killed with SIGKILL mid-deploy converges after its restart without a duplicate "
    "container",
    "[e2e][crash]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack({.separate_agent = true});
  stack.start();
  const json created =
      stack.create_service(e2e::unique_name("agentkill"), "v1", std::nullopt, kSlowProbe);
  const std::string id = created["id"];
  const json v1 = stack.wait_running(id, 1);
  const std::string url = v1["url"];
  REQUIRE(e2e::Stack::page(url) == "v1\n");

  stack.patch_image(id, "v2");
  wait_containers(stack, id, 2, 60s, "the green container");
  stack.kill_agent();
  // Killed mid-deploy: revision 2 has no outcome and green is left behind.
  REQUIRE(stack.deployment(id, 2).value("state", "") == "pending");
  REQUIRE(stack.containers(id, /*all=*/true).size() == 2);

  stack.start_agent();
  const json v2 = stack.wait_running(id, 2, 120s);
  CHECK(v2["url"] == url);  // the stable port survived the crash
  e2e::Stack::wait_page(url, "v2\n", 10s);
  const auto running = stack.containers(id);
  const auto all = stack.containers(id, /*all=*/true);
  CHECK(running.size() == 1);
  CHECK(all.size() == 1);
}

TEST_CASE(
    "A controller killed with SIGKILL mid-rollout converges from the agent's report after a "
    "restart",
    "[e2e][crash]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack({.separate_agent = true});
  stack.start();
  const json created =
      stack.create_service(e2e::unique_name("ctlkill"), "v1", std::nullopt, kSlowProbe);
  const std::string id = created["id"];
  const json v1 = stack.wait_running(id, 1);
  const std::string url = v1["url"];
  REQUIRE(e2e::Stack::page(url) == "v1\n");

  stack.patch_image(id, "v2");
  wait_containers(stack, id, 2, 60s, "the green container");
  REQUIRE(stack.deployment(id, 2).value("state", "") == "pending");
  stack.kill_controller();

  // The agent finishes the rollout on its own while no controller listens: blue goes away and
  // the stable port serves v2. Its result has nowhere to go.
  wait_containers(stack, id, 1, 60s, "the agent to finish the rollout alone");
  e2e::Stack::wait_page(url, "v2\n", 10s);
  REQUIRE(stack.agent().running());

  stack.start_controller();
  const json v2 = stack.wait_running(id, 2, 90s);
  CHECK(v2["url"] == url);
  CHECK(e2e::Stack::page(url) == "v2\n");
  CHECK(stack.containers(id, /*all=*/true).size() == 1);
  // The agent stayed up the whole time (no restart hid the convergence path).
  CHECK(stack.agent().running());
}
