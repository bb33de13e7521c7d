// Load: 200 agents reconnecting at once (issue 12, "Load"). A real berth-controller (its own
// process, SQLite, the real TLS agent link) with 200 simulated agents (bench/sim_agent.h: real
// agentlink::Client connections with the agent's own backoff, acknowledging every task without
// podman) serving app services resolved against the real test registry. The controller is
// SIGKILLed and restarted, so every agent reconnects at the same moment; the test asserts that
// every agent is connected again (on both ends) and every app is Running again, and prints the
// reconnect time p50/p99 (figures, not assertions).
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "crypto/certs.h"
#include "e2e/stack.h"
#include "sim_agent.h"
#include "support/http_client.h"
#include "support/wait.h"

using namespace berth;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kAgents = 200;
constexpr int kApps = 40;

// Issued from the controller's own CA (DATA/pki), exactly as `berth-controller
// agent-credentials` does (CN = name, OU = zone, clientAuth); one process instead of 200.
std::vector<sim::AgentCredentials> reconnect_credentials(const std::string& data_dir) {
  auto ca = crypto::read_pem_files(data_dir + "/pki", "ca");
  REQUIRE(ca.ok());
  auto creds = sim::issue_agent_credentials(*ca, kAgents);
  REQUIRE(creds.ok());
  return std::move(creds).value();
}

int connected_count(const std::vector<std::unique_ptr<sim::SimAgent>>& agents) {
  return static_cast<int>(
      std::count_if(agents.begin(), agents.end(), [](const auto& a) { return a->connected(); }));
}

// berth_agents_connected from the controller's /metrics; -1 when unreadable.
int controller_agents(const e2e::Stack& stack) {
  testing::HttpClientOptions o;
  o.port =
      static_cast<std::uint16_t>(std::stoi(stack.api_url().substr(stack.api_url().rfind(':') + 1)));
  o.timeout = 5000ms;
  auto r = testing::http_request(o, "GET", "/metrics");
  if (r.status != 200) return -1;
  const std::string name = "\nberth_agents_connected ";
  const auto at = r.body.find(name);
  if (at == std::string::npos) return -1;
  return static_cast<int>(std::stod(r.body.substr(at + name.size())));
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

TEST_CASE("200 agents reconnecting at once are all connected again and every app runs",
          "[load][reconnect]") {
  const auto wall = Clock::now();
  e2e::Stack stack({.separate_agent = true});
  auto creds = reconnect_credentials(stack.data_dir());
  stack.start_controller();
  const std::string url = "wss://127.0.0.1:" + std::to_string(stack.agent_port());
  sim::Arrivals arrivals;
  sim::SimAgentOptions options;
  options.backoff = agentlink::Backoff{};  // berth-agent's own: 200 ms doubling to 10 s, jitter
  auto started = sim::start_agents(creds, url, arrivals, options);
  REQUIRE(started.ok());
  auto& agents = *started;
  REQUIRE(testing::wait_until([&] { return connected_count(agents) == kAgents; }, 60s));

  std::vector<std::string> ids;
  for (int i = 0; i < kApps; ++i)
    ids.push_back(stack.create_service(e2e::unique_name("rc"), "v1")["id"].get<std::string>());
  for (const auto& id : ids) stack.wait_running(id, 1, 60s);
  const auto deploys_before = arrivals.deploys.load();

  // Every agent loses its connection at the same moment, and finds the controller back at the
  // same moment.
  stack.kill_controller();
  REQUIRE(testing::wait_until([&] { return connected_count(agents) == 0; }, 30s));
  const auto restarted = Clock::now();
  stack.start_controller();

  std::vector<double> reconnect_ms(kAgents, -1);
  int pending = kAgents;
  const auto limit = restarted + 60s;
  while (pending > 0 && Clock::now() < limit) {
    for (int i = 0; i < kAgents; ++i) {
      if (reconnect_ms[i] < 0 && agents[i]->connected()) {
        reconnect_ms[i] =
            std::chrono::duration<double, std::milli>(Clock::now() - restarted).count();
        --pending;
      }
    }
    std::this_thread::sleep_for(5ms);
  }
  CHECK(pending == 0);
  REQUIRE(testing::wait_until([&] { return controller_agents(stack) == kAgents; }, 30s));
  for (const auto& id : ids) {
    auto svc = stack.wait_running(id, 1, 60s);
    CHECK(svc["status"] == "Running");
  }
  // The agents reported their apps in their Hello; how many were deployed again is printed.
  const auto redeploys = arrivals.deploys.load() - deploys_before;

  std::vector<double> done;
  for (double v : reconnect_ms)
    if (v >= 0) done.push_back(v);
  REQUIRE(!done.empty());
  std::printf(
      "load/agents_reconnect: %d agents, %d apps; reconnect after controller restart p50 %.0f ms, "
      "p99 %.0f ms, max %.0f ms; %llu redeploys; wall %.1f s\n",
      kAgents, kApps, percentile(done, 0.5), percentile(done, 0.99), percentile(done, 1.0),
      static_cast<unsigned long long>(redeploys),
      std::chrono::duration<double>(Clock::now() - wall).count());
  for (auto& a : agents) a->stop();
}
