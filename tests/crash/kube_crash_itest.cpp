// Crashes in Kubernetes mode: rollouts of one AppService on the test API server (kubectl as the
// user, `berth-controller serve --kubernetes` as the manifests' service account, a separate
// agent, the private registry, podman), each with the controller or the agent SIGKILLed at a
// kill point chosen from a seed (crash_support.h), then restarted. Every change the API server
// acknowledged (kubectl patch) becomes exactly one ControllerRevision; after every restart the
// app is Running at it through the CR status, one container is left, no auth file remains, and
// the dead agent's SQLite database passes `PRAGMA integrity_check`; all along, the app never
// has no running container.
#include <map>
#include <set>

#include <catch2/catch.hpp>

#include "crash/crash_support.h"
#include "e2e/kube_stack.h"

namespace crash = berth::crash;
namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
using e2e::KubeStack;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const json kFastProbe = {{"intervalSeconds", 1}, {"timeoutSeconds", 1}, {"healthyThreshold", 1}};

constexpr const char* kMarker = "BERTH_CRASH_ROLLOUT";

std::string marker_of(const json& revision) {
  return revision.value("data", json::object())
      .value("spec", json::object())
      .value("env", json::object())
      .value(kMarker, "");
}

json with_marker(const json& revisions, int n) {
  json out = json::array();
  for (const auto& r : revisions) {
    if (marker_of(r) == std::to_string(n)) out.push_back(r);
  }
  return out;
}

std::string state_of(const json& revision) {
  return revision["metadata"].value("annotations", json::object()).value("berth.dev/state", "");
}

}  // namespace

TEST_CASE(
    "Kubernetes mode rollouts with the controller or the agent SIGKILLed at seeded points "
    "converge with every acknowledged change in exactly one revision",
    "[crash][kube]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  BERTH_REQUIRE_SQLITE3();
  const std::uint64_t seed = crash::seed();
  const auto kills = crash::plan(seed, crash::rollouts(20));
  crash::announce("kubernetes", seed, kills);
  INFO("seed " << seed << " (replay: BERTH_CRASH_SEED=" << seed << ")");

  crash::PauseFile pause;  // before the stack: its processes inherit the variable
  KubeStack stack({.separate_agent = true, .stop_grace_seconds = 0});
  stack.start();
  const std::string controller_data = stack.dir() + "/data-0";
  const std::string agent_data = stack.dir() + "/agent-data";
  const std::string name = "crash";
  stack.apply_password_secret("creds", stack.registry().password());
  stack.apply(stack.app_yaml(name, "v1", "creds",
                             {{"healthCheck", kFastProbe}, {"env", {{kMarker, "0"}}}}));
  const json first = stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1");
  const std::string url = first["status"]["endpoint"];
  KubeStack::wait_page(url, "v1\n", 30s);

  crash::ContainerSampler sampler(stack.podman().env(), "berth.service");
  sampler.expect_serving(true);  // v1 serves: from now on the app never has no container
  crash::Coverage coverage;
  std::map<int, std::string> acknowledged;  // rollout -> ControllerRevision uid
  std::string serving_tag = "v1";
  const auto started = e2e::Clock::now();

  for (int n = 1; n <= static_cast<int>(kills.size()); ++n) {
    const crash::Kill& kill = kills[static_cast<std::size_t>(n - 1)];
    INFO("rollout " << n << ": kill the " << crash::name_of(kill.victim) << " at " << kill.point);
    sampler.set_rollout(n);
    const std::string tag = serving_tag == "v1" ? "v2" : "v1";
    const crash::Victim held = crash::held_by(kill.point);
    const std::string held_log =
        held == crash::Victim::kController ? stack.replica_log_path(0) : stack.agent_log_path();
    const int holds_before = crash::count_in(e2e::read_file(held_log), crash::kPauseLine);

    if (kill.point == "pull") crash::forget_unused_images(stack.podman());
    pause.arm(kill.point);
    // The API server acknowledges the change; berth must turn it into exactly one revision.
    stack.patch(
        "appservice", name,
        {{"spec",
          {{"imageRef", stack.registry().image(tag)}, {"env", {{kMarker, std::to_string(n)}}}}}});
    const bool held_there = berth::testing::wait_until(
        [&] { return crash::count_in(e2e::read_file(held_log), crash::kPauseLine) > holds_before; },
        60s, 20ms);
    if (!held_there) {
      pause.release();
      FAIL("the " << crash::name_of(held) << " never reached " << kill.point << "\n"
                  << stack.all_logs());
    }
    if (kill.victim == crash::Victim::kController) {
      stack.kill_replica(0);
    } else {
      stack.kill_agent();
    }
    pause.release();
    coverage.add(kill);

    // The dead process's databases, as the crash left them (the controller keeps its state in
    // the API server; its data dir may hold none).
    if (kill.victim == crash::Victim::kController) {
      crash::check_databases(controller_data, "controller");
      stack.start_replica(0);
    } else {
      CHECK(crash::check_databases(agent_data, "agent") >= 1);
      if (kill.point == "pull") CHECK_FALSE(crash::auth_files(agent_data).empty());
      stack.start_agent();
    }

    // Exactly one revision for the acknowledged change (a crash before the intake committed it
    // only delays it), and the app runs it.
    json mine;
    berth::testing::wait_until(
        [&] { return !(mine = with_marker(stack.revisions(name), n)).empty(); }, 60s, 300ms);
    REQUIRE(mine.size() == 1);
    const int number = mine[0].value("revision", 0);
    const json running = stack.wait_for(name, KubeStack::running_at(number),
                                        "Running at revision " + std::to_string(number), 120s);
    CHECK(running["status"].value("endpoint", "") == url);
    serving_tag = tag;
    acknowledged[n] = mine[0]["metadata"].value("uid", "");
    KubeStack::wait_page(url, serving_tag + "\n", 30s);

    std::size_t left = 0;
    berth::testing::wait_until([&] { return (left = stack.containers(true).size()) == 1; }, 30s,
                               250ms);
    CHECK(left == 1);
    CHECK(stack.containers().size() == 1);
    std::vector<std::string> auth;
    berth::testing::wait_until([&] { return (auth = crash::auth_files(agent_data)).empty(); }, 10s,
                               100ms);
    CHECK(auth.empty());

    // No duplicate and nothing lost among the revisions the server keeps.
    const json revisions = stack.revisions(name);
    std::set<int> numbers;
    std::set<std::string> markers;
    for (const auto& r : revisions) {
      CHECK(numbers.insert(r.value("revision", 0)).second);
      CHECK(markers.insert(marker_of(r)).second);
      CHECK(state_of(r) != "pending");
    }
    for (auto it = acknowledged.lower_bound(n - 9); it != acknowledged.end(); ++it) {
      const json found = with_marker(revisions, it->first);
      INFO("acknowledged rollout " << it->first);
      REQUIRE(found.size() == 1);
      CHECK(found[0]["metadata"].value("uid", "") == it->second);
      CHECK(state_of(found[0]) == "succeeded");
    }
    const auto violations = sampler.violations();
    INFO("container samples: " << sampler.samples());
    INFO("first violation: " << (violations.empty() ? "" : violations.front()));
    REQUIRE(violations.empty());
  }
  sampler.stop();
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(e2e::Clock::now() - started).count();
  std::cout << coverage.table("crash kill points (Kubernetes mode, seed " + std::to_string(seed) +
                              ", " + std::to_string(kills.size()) + " rollouts in " +
                              std::to_string(seconds) + " s, " + std::to_string(sampler.samples()) +
                              " container samples):")
            << std::flush;
  CHECK(sampler.violations().empty());
}
