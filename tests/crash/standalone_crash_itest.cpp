// Crashes in standalone mode: rollouts of one app on the real stack (controller, separate agent,
// private registry, podman), each with the controller or the agent SIGKILLed at a kill point
// chosen from a seed (crash_support.h), then restarted. After every restart the app converges,
// the revision the API acknowledged exists exactly once, one container is left, no auth file
// remains, and the dead process's SQLite databases pass `PRAGMA integrity_check`; all along, the
// app never has no running container.
#include <future>
#include <map>
#include <set>

#include <catch2/catch.hpp>

#include "crash/crash_support.h"
#include "e2e/stack.h"
#include "support/http_client.h"

namespace crash = berth::crash;
namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A probe that passes as soon as httpd answers: the suite is about crashes, not slow apps.
const json kFastProbe = {{"health_check_interval_seconds", 1},
                         {"health_check_timeout_seconds", 1},
                         {"health_check_healthy_threshold", 1}};

constexpr const char* kMarker = "BERTH_CRASH_ROLLOUT";

// The revisions in `deployments` whose env carries rollout `n`'s marker.
json with_marker(const json& deployments, int n) {
  json out = json::array();
  for (const auto& d : deployments) {
    if (d.value("env", json::object()).value(kMarker, "") == std::to_string(n)) out.push_back(d);
  }
  return out;
}

// PATCH as the stack's account on a fresh connection: safe on another thread while the test
// thread kills processes (Stack::api is the test thread's).
berth::testing::HttpResult patch_on_thread(std::uint16_t port, const std::string& user,
                                           const std::string& password, const std::string& id,
                                           const json& body) {
  berth::testing::HttpClientOptions o;
  o.port = port;
  o.timeout = 30000ms;  // longer than any hold: the answer or the crash decides
  return berth::testing::http_request(
      o, "PATCH", "/app-services/" + id, body.dump(),
      {{"Authorization", berth::testing::basic_auth(user, password)},
       {"Content-Type", "application/json"}});
}

std::uint16_t port_of(const std::string& url) {
  return static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
}

}  // namespace

TEST_CASE(
    "Standalone rollouts with the controller or the agent SIGKILLed at seeded points converge "
    "with every acknowledged revision exactly once",
    "[crash]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  BERTH_REQUIRE_SQLITE3();
  const std::uint64_t seed = crash::seed();
  const auto kills = crash::plan(seed, crash::rollouts(30));
  crash::announce("standalone", seed, kills);
  INFO("seed " << seed << " (replay: BERTH_CRASH_SEED=" << seed << ")");

  crash::PauseFile pause;  // before the stack: its processes inherit the variable
  e2e::Stack stack({.separate_agent = true, .stop_grace_seconds = 0});
  stack.start();
  json config = kFastProbe;
  config["env"] = {{kMarker, "0"}};
  const json created = stack.create_service(e2e::unique_name("crash"), "v1", std::nullopt, config);
  const std::string id = created["id"];
  const json first = stack.wait_running(id, 1, 120s);
  const std::string url = first["url"];
  e2e::Stack::wait_page(url, "v1\n", 30s);

  crash::ContainerSampler sampler(stack.podman().env(), "berth.service=" + id);
  sampler.expect_serving(true);  // v1 serves: from now on the app never has no container
  crash::Coverage coverage;
  std::map<int, std::string> acknowledged;  // rollout -> revision id the API showed for it
  std::string serving_tag = "v1";
  const auto started = e2e::Clock::now();

  for (int n = 1; n <= static_cast<int>(kills.size()); ++n) {
    const crash::Kill& kill = kills[static_cast<std::size_t>(n - 1)];
    INFO("rollout " << n << ": kill the " << crash::name_of(kill.victim) << " at " << kill.point);
    sampler.set_rollout(n);
    const std::string tag = serving_tag == "v1" ? "v2" : "v1";
    const crash::Victim held = crash::held_by(kill.point);
    const std::string held_log =
        held == crash::Victim::kController ? stack.controller_log_path() : stack.agent_log_path();
    const int holds_before = crash::count_in(e2e::read_file(held_log), crash::kPauseLine);

    if (kill.point == "pull") crash::forget_unused_images(stack.podman());
    pause.arm(kill.point);
    const json body = {{"app_config",
                        {{"image_ref", stack.registry().image(tag)},
                         {"container_port", e2e::Stack::kContainerPort},
                         {"registry_username", stack.registry().username()},
                         {"env", {{kMarker, std::to_string(n)}}}}}};
    auto patched = std::async(std::launch::async, patch_on_thread, port_of(stack.api_url()),
                              stack.account_name(), stack.account_password(), id, body);
    const bool held_there = berth::testing::wait_until(
        [&] { return crash::count_in(e2e::read_file(held_log), crash::kPauseLine) > holds_before; },
        60s, 20ms);
    if (!held_there) {
      pause.release();
      patched.wait();
      FAIL("the " << crash::name_of(held) << " never reached " << kill.point
                  << "\ncontroller log:\n"
                  << e2e::tail(stack.controller_log()) << "\nagent log:\n"
                  << e2e::tail(stack.agent_log()));
    }
    // Past accept the answer is on its way whatever the held thread does; waiting for it keeps
    // a quick worker (held at resolve before the response left) from making the crash look
    // like one during accept. At accept nothing answers until the point is released.
    const bool answer_first = kill.point != "accept";
    if (answer_first) REQUIRE(patched.wait_for(30s) == std::future_status::ready);
    if (kill.victim == crash::Victim::kController) {
      stack.kill_controller();
    } else {
      stack.kill_agent();
    }
    pause.release();
    coverage.add(kill);

    // The dead process's databases, as the crash left them.
    if (kill.victim == crash::Victim::kController) {
      CHECK(crash::check_databases(stack.data_dir(), "controller") >= 1);
    } else {
      CHECK(crash::check_databases(stack.agent_data_dir(), "agent") >= 1);
      // Held at pull, the agent had written the registry login to disk: the restart wipes it.
      if (kill.point == "pull") CHECK_FALSE(crash::auth_files(stack.agent_data_dir()).empty());
    }

    const berth::testing::HttpResult answer = patched.get();
    const bool acked = answer.ok() && answer.status == 200;
    INFO("PATCH answer: " << answer.status << " " << answer.error << " " << answer.body);
    // Only a crash of the controller while it holds the stored change leaves it unanswered.
    const bool lost_answer = kill.point == "accept" && kill.victim == crash::Victim::kController;
    REQUIRE(acked == !lost_answer);

    if (kill.victim == crash::Victim::kController) {
      stack.start_controller();
    } else {
      stack.start_agent();
    }

    // The revision of this rollout, exactly once: acknowledged, or (crash during accept) held
    // after the store committed it, so durable either way and never stored twice.
    const json mine = with_marker(stack.all_deployments(id), n);
    REQUIRE(mine.size() == 1);
    const int number = mine[0].value("revision", 0);
    const json running = stack.wait_running(id, number, 120s);
    CHECK(running["url"] == url);  // the stable port survives every crash
    serving_tag = tag;
    if (acked) acknowledged[n] = mine[0].value("id", "");
    e2e::Stack::wait_page(url, serving_tag + "\n", 30s);

    // At the end, one container: blue is removed by the rollout or by the restart.
    std::size_t left = 0;
    berth::testing::wait_until([&] { return (left = stack.containers(id, true).size()) == 1; }, 30s,
                               250ms);
    CHECK(left == 1);
    CHECK(stack.containers(id).size() == 1);
    std::vector<std::string> auth;
    berth::testing::wait_until(
        [&] { return (auth = crash::auth_files(stack.agent_data_dir())).empty(); }, 10s, 100ms);
    CHECK(auth.empty());

    // No duplicate and nothing lost: every revision the store keeps is there once, and every
    // acknowledged one of the recent rollouts (older succeeded ones are pruned by design,
    // keep_succeeded) is among them, succeeded.
    const json deployments = stack.all_deployments(id);
    std::set<int> numbers;
    std::set<std::string> markers;
    for (const auto& d : deployments) {
      CHECK(numbers.insert(d.value("revision", 0)).second);
      CHECK(markers.insert(d.value("env", json::object()).value(kMarker, "")).second);
      CHECK(d.value("state", "") != "pending");
    }
    for (auto it = acknowledged.lower_bound(n - 9); it != acknowledged.end(); ++it) {
      const json found = with_marker(deployments, it->first);
      INFO("acknowledged rollout " << it->first << " (revision id " << it->second << ")");
      REQUIRE(found.size() == 1);
      CHECK(found[0].value("id", "") == it->second);
      CHECK(found[0].value("state", "") == "succeeded");
    }
    const auto violations = sampler.violations();
    INFO("container samples: " << sampler.samples());
    INFO("first violation: " << (violations.empty() ? "" : violations.front()));
    REQUIRE(violations.empty());
  }
  sampler.stop();
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(e2e::Clock::now() - started).count();
  std::cout << coverage.table("crash kill points (standalone, seed " + std::to_string(seed) + ", " +
                              std::to_string(kills.size()) + " rollouts in " +
                              std::to_string(seconds) + " s, " + std::to_string(sampler.samples()) +
                              " container samples):")
            << std::flush;
  CHECK(sampler.violations().empty());
}
