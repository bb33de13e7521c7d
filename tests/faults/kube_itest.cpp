// Kubernetes mode under API server faults, on the real stack (the test API server's fault
// switch, POST /_test/faults): the controller's status writes and revision records refused
// with 500, then with 429 (Retry-After: 1), then its AppService watch stalled and its relist
// refused after a compaction. While a fault lasts the user sees the AppService's status lag its
// spec (status.observedGeneration below metadata.generation); once it ends the informers
// resync and the app converges with no operator step.
#include <string>

#include <catch2/catch.hpp>

#include "e2e/kube_stack.h"
#include "faults/faults.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
namespace faults = berth::faults;
using e2e::KubeStack;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Requests the server answered with `code` so far.
int answered_with(KubeStack& stack, int code) {
  int n = 0;
  for (const auto& r : stack.server().requests()) {
    if (r.value("code", 0) == code) ++n;
  }
  return n;
}

// What a user sees while the controller cannot write: generation and observedGeneration.
std::string lag_of(const json& app) {
  const int generation = app["metadata"].value("generation", 0);
  const int observed = app.value("status", json::object()).value("observedGeneration", 0);
  return "generation " + std::to_string(generation) + ", status.observedGeneration " +
         std::to_string(observed);
}

bool lags(const json& app) {
  return app.value("status", json::object()).value("observedGeneration", 0) <
         app["metadata"].value("generation", 0);
}

// Every write the controller makes for an AppService fails with `code` until cleared. Only the
// controller's own requests meet it (the user's kubectl does not), so the fault can be in place
// before the user's change: the controller never gets a status write in first.
void refuse_writes(KubeStack& stack, int code) {
  const std::string controller = KubeStack::kControllerUser;
  for (const char* verb : {"patch", "update"}) {
    stack.server().inject_fault({{"kind", "status"},
                                 {"verb", verb},
                                 {"resource", "appservices"},
                                 {"code", code},
                                 {"count", 100000},
                                 {"user", controller}});
  }
  stack.server().inject_fault({{"kind", "status"},
                               {"verb", "create"},
                               {"resource", "controllerrevisions"},
                               {"code", code},
                               {"count", 100000},
                               {"user", controller}});
}

}  // namespace

TEST_CASE(
    "Kubernetes mode: API server 500s and 429s and a stalled watch make status lag while they "
    "last and the app converges after",
    "[faults][kube]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  KubeStack stack;
  stack.start();
  auto& registry = stack.registry();
  const std::string name = "faulty";
  stack.apply_password_secret("creds", registry.password());
  stack.apply(stack.app_yaml(name, "v1", "creds"));
  json app = stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1");
  const std::string url = app["status"]["endpoint"];

  struct Storm {
    std::string name;
    int code;
    std::string tag;
    int revision;
  };
  const Storm storms[] = {{"API server answering 500 to the controller's writes", 500, "v2", 2},
                          {"API server answering 429 to the controller's writes", 429, "v1", 3}};
  for (const auto& storm : storms) {
    INFO(storm.name);
    const int before = answered_with(stack, storm.code);
    refuse_writes(stack, storm.code);
    stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image(storm.tag)}}}});
    // The controller keeps trying (a few refusals), and the user sees the lag meanwhile.
    const bool refused = berth::testing::wait_until(
        [&] { return answered_with(stack, storm.code) >= before + 3; }, 60s, 200ms);
    INFO(stack.all_logs());
    REQUIRE(refused);
    const json lagging = stack.app(name);
    const std::string condition = lag_of(lagging);
    CHECK(lags(lagging));
    CHECK(KubeStack::page(url).size() ==
          3);  // still serving (v1 or v2), the fault is not the app's

    const auto back = faults::Clock::now();
    stack.server().clear_faults();
    app = stack.wait_for(name, KubeStack::running_at(storm.revision), "converged after the fault");
    faults::report_recovery(storm.name, condition, faults::seconds_since(back));
    KubeStack::wait_page(url, storm.tag + "\n", 30s);
    CHECK(stack.containers().size() == 1);
  }

  // The controller's AppService watch is dropped and its next watch request held 6 s; meanwhile
  // the user changes the app and the history is compacted past it, so the held watch, served
  // after the compaction whenever it arrived, resumes from a version that is gone (410 Gone)
  // and the next three lists fail with 500: the informer relists with backoff, watches again,
  // and sees the change made meanwhile. The faults name the controller, so the test's own
  // kubectl calls never meet them.
  const int lists_failed_before = answered_with(stack, 500);
  const std::string controller = KubeStack::kControllerUser;
  stack.server().inject_fault({{"kind", "status"},
                               {"verb", "list"},
                               {"resource", "appservices"},
                               {"code", 500},
                               {"count", 3},
                               {"user", controller}});
  stack.server().inject_fault({{"kind", "stall"},
                               {"verb", "watch"},
                               {"resource", "appservices"},
                               {"seconds", 6},
                               {"count", 1},
                               {"user", controller}});
  stack.server().inject_fault(
      {{"kind", "drop-watch"}, {"verb", "watch"}, {"resource", "appservices"}, {"count", 1}});
  const auto changed = faults::Clock::now();
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v2")}}}});
  stack.server().compact();
  const json lagging = stack.app(name);
  app = stack.wait_for(name, KubeStack::running_at(4), "converged after the stalled watch");
  faults::report_recovery("AppService watch stalled, dropped, 410 and 3 failed relists",
                          lags(lagging) ? lag_of(lagging) : "status lag (brief)",
                          faults::seconds_since(changed));
  KubeStack::wait_page(url, "v2\n", 30s);
  INFO(stack.all_logs());
  CHECK(answered_with(stack, 500) >= lists_failed_before + 3);  // the relists did fail
  CHECK(stack.containers().size() == 1);
  const auto ready = stack.health(0, "/readyz");
  INFO(ready.body);
  CHECK(ready.status == 200);
  // Nothing of this flow, faults included, left the registry password anywhere (but the user's
  // own Secret, which holds it by design).
  stack.server().clear_faults();
  CHECK(stack.password_findings({"creds"}) == std::vector<std::string>{});
}
