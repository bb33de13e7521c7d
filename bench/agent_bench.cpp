// berth-bench-agent: what the agent adds to starting an app. The agent's own deploy path (a
// real Deployer with the real podman driver, health prober and port proxy, as berth-agent runs
// it) of the sample image from a local docker-registry (TLS, htpasswd; tests/support/testenv.h),
// timed from the task handed to deploy() ("task received") to the first HTTP 200 through the
// app's stable port; against the same image started by hand: `podman pull` (the registry has a
// private CA, which `podman run` cannot be given) + `podman run -d --init -p 127.0.0.1:PORT:8080`
// + polling until the first HTTP 200. Cold (image removed before each run: both pull) and warm
// (image present), alternating agent / by hand. Target: agent <= 1.3x by hand.
//
// Usage: berth-bench-agent [--rounds N] [--smoke]
// --smoke: one warm round. Without podman or the registry tools it prints why and exits 77 in
// --smoke mode (0 otherwise, so hack/bench.sh goes on).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent_state.h"
#include "agent/deployer.h"
#include "agent/health_probe.h"
#include "agent/podman_driver.h"
#include "agent/proxy_set.h"
#include "bench_util.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "support/testenv.h"

namespace fs = std::filesystem;
using namespace berth;
using namespace std::chrono_literals;

namespace {

// One GET / on 127.0.0.1:port; true on a 200 answer.
bool http_ok(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof req - 1)) {
      char buf[64] = {};
      const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      ok = n >= 12 && std::string(buf, 12).find(" 200") != std::string::npos;
    }
  }
  ::close(fd);
  return ok;
}

// Polls every 2 ms until a 200 (both sides poll alike); dies after 60 s.
void wait_http(int port) {
  const auto until = bench::Clock::now() + 60s;
  while (!http_ok(port)) {
    if (bench::Clock::now() > until) bench::die("wait_http", "no 200 within 60 s");
    std::this_thread::sleep_for(2ms);
  }
}

void podman(const std::vector<std::string>& args, bool must_succeed = true) {
  std::vector<std::string> argv{"podman"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_process(argv, 120s);
  if (must_succeed && (!r.ok() || r->exit_code != 0)) {
    bench::die("podman " + args.front(), r.ok() ? r->err : r.error().message);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 3;
  bool smoke = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--smoke")
      smoke = true;
    else if (a == "--rounds" && i + 1 < argc)
      rounds = std::atoi(argv[++i]);
    else
      bench::die("arguments", "unknown argument " + a);
  }
  if (smoke) rounds = 1;
  const std::string missing =
      testenv::missing_peers({testenv::Peer::kPodman, testenv::Peer::kRegistry});
  if (!missing.empty()) {
    std::printf("\n== agent overhead: skipped (%s) ==\n", missing.c_str());
    return smoke ? bench::kSkipped : 0;
  }
  log::set_level(log::Level::kWarn);
  testenv::PodmanEnv env;  // podman storage and config of its own, removed at the end
  auto started = testenv::Registry::start();
  if (!started.ok()) bench::die("registry", started.error().message);
  testenv::Registry& reg = *started;
  reg.push_samples();
  const std::string image = reg.image("v1");
  const std::string pinned =
      reg.host() + "/" + testenv::Registry::kRepository + "@" + reg.digest("v1");
  const std::string dir = testenv::make_temp_dir("bench-agent");
  const std::string authfile = dir + "/auth.json";
  reg.write_authfile(authfile);

  agent::PodmanDriver driver;
  agent::AsioHealthProber prober;
  agent::AsioProxySet proxies;
  auto state = agent::AgentState::open(dir + "/state.db");
  if (!state.ok()) bench::die("AgentState::open", state.error().message);
  agent::DeployerOptions o;
  o.data_dir = dir;
  o.registry_ca = {{reg.host(), reg.ca_file()}};
  o.probe_deadline = 60s;
  o.drain_timeout = 2s;
  o.stop_grace_seconds = 1;
  agent::DeployerDeps d;
  d.driver = &driver;
  d.prober = &prober;
  d.proxies = &proxies;
  d.state = state->get();
  agent::Deployer deployer(o, d);

  int seq = 0;
  // Where the agent's time goes: the deploy log's step durations, summed over counted runs.
  std::map<std::string, double> step_ms;
  bool counting = false;
  auto by_agent = [&](bool cold) {
    if (cold) podman({"rmi", "-f", pinned}, false);
    agentlink::DeployTask t;
    t.task_id = "bench-task-" + std::to_string(++seq);
    t.service_id = "svc-bench";
    t.revision_id = "rev" + std::to_string(seq);
    t.revision = seq;
    t.image_ref = image;
    t.pull_ref = image;
    t.image_digest = reg.digest("v1");
    t.container_port = 8080;
    t.health.path = "/";
    t.health.interval_seconds = 1;
    t.health.timeout_seconds = 1;
    t.auth = agentlink::RegistryAuth{{reg.host()}, reg.username(), reg.password_secret()};
    const auto t0 = bench::Clock::now();
    const auto result = deployer.deploy(t, [](const core::DeployLogEntry&) {});
    if (!result.ok) bench::die("deploy", result.error);
    if (counting) {
      for (const auto& e : result.logs) step_ms[e.step] += static_cast<double>(e.duration_ms);
    }
    wait_http(result.stable_port);
    const double ns = bench::since_ns(t0);
    agentlink::RemoveTask rm{"bench-rm-" + std::to_string(seq), "svc-bench"};
    const auto removed = deployer.remove(rm, [](const core::DeployLogEntry&) {});
    if (!removed.ok) bench::die("remove", removed.error);
    return ns;
  };
  auto by_hand = [&](bool cold) {
    if (cold) podman({"rmi", "-f", pinned}, false);
    auto port = agent::pick_loopback_port();
    if (!port.ok()) bench::die("port", port.error().message);
    const std::string name = "bench-hand-" + std::to_string(++seq);
    const auto t0 = bench::Clock::now();
    if (cold)
      podman({"pull", "--quiet", "--authfile", authfile, "--cert-dir", reg.ca_dir(), pinned});
    podman({"run", "-d", "--init", "--name", name, "-p",
            "127.0.0.1:" + std::to_string(*port) + ":8080", pinned});
    wait_http(*port);
    const double ns = bench::since_ns(t0);
    podman({"rm", "-f", "-t", "0", name});
    return ns;
  };

  bench::Table table{"Agent overhead"};
  table.section("task received -> first HTTP 200 (agent) vs podman [pull +] run -> first 200");
  for (const bool cold : {true, false}) {
    if (smoke && cold) continue;
    bench::Samples agent_s, hand_s;
    by_agent(cold);  // warm-up, not counted (first podman calls, page cache)
    step_ms.clear();
    counting = true;
    for (int r = 0; r < rounds; ++r) {
      bench::progress(std::string(cold ? "cold" : "warm") + " round " + std::to_string(r + 1));
      agent_s.add(by_agent(cold));
      hand_s.add(by_hand(cold));
    }
    table.ratio(std::string("agent deploy vs by hand, ") + (cold ? "cold (both pull)" : "warm"),
                agent_s.p50(), hand_s.p50(), bench::Unit::kNanos, 1.3, "good");
    for (const auto& [step, ms] : step_ms) {
      table.figure("  agent step " + step + " (mean)", ms * 1e6 / rounds, bench::Unit::kNanos);
    }
    counting = false;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
