// Crashes in standalone mode: rollouts of one app on the real stack (controller, separate agent,
// private registry, podman), each with the controller or the agent SIGKILLed at a kill point
// chosen from a seed (crash_support.h), then restarted. After every restart the app converges,
// the revision the API acknowledged exists exactly once, one container is left, no auth file
// remains, and the dead process's SQLite databases pass `PRAGMA integrity_check`; all along, the
// app never has no running container.
#include <future>

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

std::vector<crash::Revision> revisions_of(const json& deployments) {
  std::vector<crash::Revision> out;
  for (const auto& d : deployments) {
    out.push_back({d.value("revision", 0), d.value("env", json::object()).value(kMarker, ""),
                   d.value("state", ""), d.value("id", "")});
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
  const crash::Run run = crash::begin("standalone", 30);

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

  // The PATCH of the rollout under way, answered on a thread of its own (declared after the
  // stack: when a failure unwinds the test, the answer is waited for before the stack stops).
  std::future<berth::testing::HttpResult> patched;
  crash::Mode mode;
  mode.title = "standalone";
  mode.podman = &stack.podman();
  mode.container_label = "berth.service=" + id;
  mode.url = url;
  mode.controller_log_path = stack.controller_log_path();
  mode.agent_log_path = stack.agent_log_path();
  mode.controller_data = stack.data_dir();
  mode.agent_data = stack.agent_data_dir();
  mode.change = [&](int n, const std::string& tag) {
    const json body = {{"app_config",
                        {{"image_ref", stack.registry().image(tag)},
                         {"container_port", e2e::Stack::kContainerPort},
                         {"registry_username", stack.registry().username()},
                         {"env", {{kMarker, std::to_string(n)}}}}}};
    patched = std::async(std::launch::async, patch_on_thread, port_of(stack.api_url()),
                         stack.account_name(), stack.account_password(), id, body);
  };
  mode.before_kill = [&](const crash::Kill& kill) {
    // Past accept the answer is on its way whatever the held thread does; waiting for it keeps
    // a quick worker (held at resolve before the response left) from making the crash look
    // like one during accept. At accept nothing answers until the point is released.
    if (kill.point != "accept") REQUIRE(patched.wait_for(30s) == std::future_status::ready);
  };
  mode.kill = [&](crash::Victim v) {
    if (v == crash::Victim::kController) {
      stack.kill_controller();
    } else {
      stack.kill_agent();
    }
  };
  mode.acknowledged = [&](const crash::Kill& kill) {
    const berth::testing::HttpResult answer = patched.get();
    const bool acked = answer.ok() && answer.status == 200;
    INFO("PATCH answer: " << answer.status << " " << answer.error << " " << answer.body);
    // Only a crash of the controller while it holds the stored change leaves it unanswered.
    const bool lost_answer = kill.point == "accept" && kill.victim == crash::Victim::kController;
    REQUIRE(acked == !lost_answer);
    return acked;
  };
  mode.restart = [&](crash::Victim v) {
    if (v == crash::Victim::kController) {
      stack.start_controller();
    } else {
      stack.start_agent();
    }
  };
  // The controller has stored the change when it answers, or before it held at accept.
  mode.revisions_of = [&](int n) {
    return crash::with_marker(revisions_of(stack.all_deployments(id)), n);
  };
  mode.revisions = [&] { return revisions_of(stack.all_deployments(id)); };
  mode.wait_running = [&](int number) {
    return stack.wait_running(id, number, 120s).value("url", "");
  };
  mode.containers = [&](bool all) { return stack.containers(id, all).size(); };
  mode.logs = [&] {
    return "controller log:\n" + e2e::tail(stack.controller_log()) + "\nagent log:\n" +
           e2e::tail(stack.agent_log());
  };
  crash::run_rollouts(run, pause, mode);
  // Nothing of this flow, faults included, left the registry password anywhere.
  CHECK(stack.password_findings() == std::vector<std::string>{});
}
