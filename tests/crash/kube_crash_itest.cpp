// Crashes in Kubernetes mode: rollouts of one AppService on the test API server (kubectl as the
// user, `berth-controller serve --kubernetes` as the manifests' service account, a separate
// agent, the private registry, podman), each with the controller or the agent SIGKILLed at a
// kill point chosen from a seed (crash_support.h), then restarted. Every change the API server
// acknowledged (kubectl patch) becomes exactly one ControllerRevision; after every restart the
// app is Running at it through the CR status, one container is left, no auth file remains, and
// the dead agent's SQLite database passes `PRAGMA integrity_check`; all along, the app never
// has no running container.
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

std::vector<crash::Revision> revisions_of(const json& revisions) {
  std::vector<crash::Revision> out;
  for (const auto& r : revisions) {
    const json meta = r.value("metadata", json::object());
    out.push_back({r.value("revision", 0),
                   r.value("data", json::object())
                       .value("spec", json::object())
                       .value("env", json::object())
                       .value(kMarker, ""),
                   meta.value("annotations", json::object()).value("berth.dev/state", ""),
                   meta.value("uid", "")});
  }
  return out;
}

}  // namespace

TEST_CASE(
    "Kubernetes mode rollouts with the controller or the agent SIGKILLed at seeded points "
    "converge with every acknowledged change in exactly one revision",
    "[crash][kube]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  BERTH_REQUIRE_SQLITE3();
  const crash::Run run = crash::begin("kubernetes", 20);

  crash::PauseFile pause;  // before the stack: its processes inherit the variable
  KubeStack stack({.separate_agent = true, .stop_grace_seconds = 0});
  stack.start();
  const std::string name = "crash";
  stack.apply_password_secret("creds", stack.registry().password());
  stack.apply(stack.app_yaml(name, "v1", "creds",
                             {{"healthCheck", kFastProbe}, {"env", {{kMarker, "0"}}}}));
  const json first = stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1");
  const std::string url = first["status"]["endpoint"];
  KubeStack::wait_page(url, "v1\n", 30s);

  crash::Mode mode;
  mode.title = "Kubernetes mode";
  mode.podman = &stack.podman();
  mode.container_label = "berth.service";
  mode.url = url;
  mode.controller_log_path = stack.replica_log_path(0);
  mode.agent_log_path = stack.agent_log_path();
  mode.controller_data = stack.dir() + "/data-0";
  mode.agent_data = stack.dir() + "/agent-data";
  // The controller keeps its state in the API server; its data dir may hold no database.
  mode.controller_has_database = false;
  // The API server acknowledges the change (kubectl patch returns); berth must turn it into
  // exactly one revision.
  mode.change = [&](int n, const std::string& tag) {
    stack.patch(
        "appservice", name,
        {{"spec",
          {{"imageRef", stack.registry().image(tag)}, {"env", {{kMarker, std::to_string(n)}}}}}});
  };
  mode.before_kill = [](const crash::Kill&) {};
  mode.kill = [&](crash::Victim v) {
    if (v == crash::Victim::kController) {
      stack.kill_replica(0);
    } else {
      stack.kill_agent();
    }
  };
  mode.acknowledged = [](const crash::Kill&) { return true; };
  mode.restart = [&](crash::Victim v) {
    if (v == crash::Victim::kController) {
      stack.start_replica(0);
    } else {
      stack.start_agent();
    }
  };
  // A crash before the intake committed the change only delays its revision.
  mode.revisions_of = [&](int n) {
    std::vector<crash::Revision> mine;
    berth::testing::wait_until(
        [&] {
          return !(mine = crash::with_marker(revisions_of(stack.revisions(name)), n)).empty();
        },
        60s, 300ms);
    return mine;
  };
  mode.revisions = [&] { return revisions_of(stack.revisions(name)); };
  mode.wait_running = [&](int number) {
    const json running = stack.wait_for(name, KubeStack::running_at(number),
                                        "Running at revision " + std::to_string(number), 120s);
    return running["status"].value("endpoint", "");
  };
  mode.containers = [&](bool all) { return stack.containers(all).size(); };
  mode.logs = [&] { return stack.all_logs(); };
  crash::run_rollouts(run, pause, mode);
  // Nothing of this flow, faults included, left the registry password anywhere (but the user's
  // own Secret, which holds it by design).
  CHECK(stack.password_findings({"creds"}) == std::vector<std::string>{});
}
