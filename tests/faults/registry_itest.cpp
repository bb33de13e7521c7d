// Registry faults on the real stack: the registry is reached through a fault proxy
// (support/fault_proxy.h) that resets connections (down), holds them (stalled: timeouts),
// or terminates TLS with the registry's own certificate and answers 500 or 429. Each fault is
// seen through the API as the service's last_error while the serving revision keeps serving,
// and the rollout (or the redeploy) finishes on its own once the registry is back.
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "faults/faults.h"
#include "support/fault_proxy.h"
#include "support/skip.h"

namespace e2e = berth::e2e;
namespace faults = berth::faults;
namespace testenv = berth::testenv;
using berth::testing::FaultProxy;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct RegistryFault {
  std::string name;
  std::function<void(FaultProxy&)> inject;
  std::vector<std::string> expect;  // any of these in last_error
};

std::uint16_t port_of(const std::string& host) {
  return static_cast<std::uint16_t>(std::stoi(host.substr(host.rfind(':') + 1)));
}

FaultProxy::HttpAnswer registry_answer(const testenv::Registry& registry, int status,
                                       int retry_after = -1) {
  return {status, retry_after, registry.dir() + "/server.crt", registry.dir() + "/server.key"};
}

std::vector<RegistryFault> registry_faults(const testenv::Registry& registry) {
  return {
      {"registry down (connections reset)",
       [](FaultProxy& p) { p.set_mode(FaultProxy::Mode::kRefuse); },
       {"cannot reach registry"}},
      {"registry stalled (accepts, never answers)",
       [](FaultProxy& p) { p.set_mode(FaultProxy::Mode::kStall); },
       {"timed out", "did not answer before the deadline"}},
      {"registry answering 500",
       [&registry](FaultProxy& p) { p.answer_with(registry_answer(registry, 500)); },
       {"answered HTTP 500"}},
      {"registry answering 429 (Retry-After: 1)",
       [&registry](FaultProxy& p) { p.answer_with(registry_answer(registry, 429, 1)); },
       {"answered HTTP 429"}},
  };
}

bool mentions_any(const std::string& text, const std::vector<std::string>& needles) {
  for (const auto& n : needles) {
    if (text.find(n) != std::string::npos) return true;
  }
  return false;
}

// Short registry deadlines (a rollout's and the API's check of a new password, which a PATCH
// waits for) and retry cap, so a stalled registry and the backoff cost seconds.
e2e::StackOptions options_through(const FaultProxy& proxy, bool separate_agent = false) {
  e2e::StackOptions o;
  o.separate_agent = separate_agent;
  o.registry_aliases = {proxy.host()};
  o.controller_args = {"--registry-timeout-seconds", "3", "--credential-check-timeout", "3",
                       "--backoff-cap-seconds",      "4"};
  return o;
}

}  // namespace

TEST_CASE(
    "Registry down, stalled, answering 500 or 429 during a rollout: the service says why "
    "and the rollout finishes once the registry is back",
    "[faults][registry]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  auto& registry = testenv::Registry::shared();
  auto proxy = FaultProxy::start(port_of(registry.host()));
  e2e::Stack stack(options_through(*proxy));
  stack.start();
  const json created = stack.create_service(e2e::unique_name("reg-faults"), "v1", std::nullopt,
                                            faults::via(proxy->host(), "v1"));
  const std::string id = created["id"];
  const std::string url = stack.wait_running(id, 1)["url"];
  e2e::Stack::wait_page(url, "v1\n", 30s);

  int revision = 1;
  std::string serving = "v1";
  for (const auto& fault : registry_faults(registry)) {
    INFO(fault.name);
    fault.inject(*proxy);
    ++revision;
    const std::string tag = serving == "v1" ? "v2" : "v1";
    stack.patch_image(id, tag, registry.password(), faults::via(proxy->host(), tag));
    const json seen = stack.wait_service(
        id, [&](const json& s) { return mentions_any(s.value("last_error", ""), fault.expect); },
        fault.name + " named in last_error", 60s);
    const std::string condition = seen.value("last_error", "");
    CHECK(condition.starts_with("resolve: "));
    // A retry, not a verdict: the revision waits, the serving one keeps serving.
    CHECK(stack.deployment(id, revision).value("state", "") == "pending");
    CHECK(e2e::Stack::page(url) == serving + "\n");

    const auto back = faults::Clock::now();
    proxy->set_mode(FaultProxy::Mode::kPass);
    const json done = stack.wait_running(id, revision, 60s);
    const double took = faults::seconds_since(back);
    CHECK(done.value("last_error", "") == "");
    e2e::Stack::wait_page(url, tag + "\n", 30s);
    serving = tag;
    faults::report_recovery(fault.name + ", at resolve", condition, took);
  }
  CHECK(proxy->answered() > 0);  // the 500/429 answers were served, not a pass-through
}

TEST_CASE(
    "A redeploy whose pull fails (registry down, then 500) says so and succeeds once the "
    "registry is back",
    "[faults][registry]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  auto& registry = testenv::Registry::shared();
  auto proxy = FaultProxy::start(port_of(registry.host()));
  e2e::Stack stack(options_through(*proxy, /*separate_agent=*/true));
  stack.start();
  const json created = stack.create_service(e2e::unique_name("pull-faults"), "v1", std::nullopt,
                                            faults::via(proxy->host(), "v1"));
  const std::string id = created["id"];
  const std::string url = stack.wait_running(id, 1)["url"];

  struct PullFault {
    std::string name;
    std::function<void()> inject;
  };
  const std::vector<PullFault> pull_faults = {
      {"registry down during a pull", [&] { proxy->set_mode(FaultProxy::Mode::kRefuse); }},
      {"registry answering 500 during a pull",
       [&] { proxy->answer_with(registry_answer(registry, 500)); }},
  };
  for (const auto& fault : pull_faults) {
    INFO(fault.name);
    // The app and its image are gone from the agent's machine: the redeploy must pull, and
    // the controller resolves nothing (the revision's digest is known).
    fault.inject();
    stack.kill_agent();
    std::string out;
    for (const auto& cid : stack.containers(id, /*all=*/true)) {
      testenv::run_command({"podman", "rm", "-f", cid}, &out, stack.podman().env(), 60);
    }
    testenv::run_command({"podman", "rmi", "-a", "-f"}, &out, stack.podman().env(), 60);
    stack.start_agent();
    const json seen = stack.wait_service(
        id, [](const json& s) { return s.value("last_error", "").starts_with("pull: "); },
        "the failed pull in last_error", 90s);
    const std::string condition = seen.value("last_error", "");
    CHECK(faults::condition_of(seen, "Ready", "status") == "False");
    CHECK(stack.deployment(id, 1).value("state", "") == "succeeded");  // not failed by it

    const auto back = faults::Clock::now();
    proxy->set_mode(FaultProxy::Mode::kPass);
    stack.wait_service(
        id,
        [](const json& s) {
          return s.value("status", "") == "Running" && s.value("last_error", "").empty() &&
                 faults::condition_of(s, "Ready", "status") == "True";
        },
        "the app redeployed", 120s);
    e2e::Stack::wait_page(url, "v1\n", 30s);
    faults::report_recovery(fault.name + " (redeploy)", condition, faults::seconds_since(back));
    CHECK(stack.containers(id).size() == 1);
  }
}
