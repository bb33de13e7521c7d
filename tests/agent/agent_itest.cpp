// The agent against real peers: podman (runc, vfs storage in a temp dir) and a private
// registry with htpasswd auth and TLS (tests/support/testenv.h). Tagged [podman].
#include <dirent.h>

#include <signal.h>
#include <unistd.h>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "agent/agent.h"
#include "agent/agent_state.h"
#include "agent/deployer.h"
#include "agent/health_probe.h"
#include "agent/podman_driver.h"
#include "agent/proxy_set.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "net_helpers.h"
#include "support/secret_scan.h"
#include "support/skip.h"
#include "support/testenv.h"

namespace fs = std::filesystem;
using namespace berth;
using namespace berth::agent;
using namespace berth::agent::testing;
using namespace std::chrono_literals;

namespace {

// Skipped (not passed) without podman or the registry; fails under CI=true (support/skip.h).
#define REQUIRE_PODMAN() BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry)

struct Live {
  testenv::PodmanEnv podman;
  testenv::Registry& reg = testenv::Registry::shared();
  std::string dir = testenv::make_temp_dir("agent-it");
  PodmanDriver driver;
  AsioHealthProber prober;
  std::unique_ptr<AsioProxySet> proxies;
  std::unique_ptr<AgentState> state;
  std::unique_ptr<Deployer> deployer;
  std::chrono::milliseconds probe_deadline = 30s;
  int stop_grace_seconds = 1;

  Live() { open(); }
  ~Live() {
    deployer.reset();
    state.reset();
    proxies.reset();
    fs::remove_all(dir);
  }

  // (Re)creates everything that lives in the agent process, on the same data dir.
  void open() {
    deployer.reset();
    state.reset();
    proxies = std::make_unique<AsioProxySet>();
    auto s = AgentState::open(dir + "/state.db");
    REQUIRE(s.ok());
    state = std::move(s).value();
    DeployerOptions o;
    o.data_dir = dir;
    o.registry_ca = {{reg.host(), reg.ca_file()}};
    o.probe_deadline = probe_deadline;
    o.drain_timeout = 2s;
    o.stop_grace_seconds = stop_grace_seconds;
    DeployerDeps d;
    d.driver = &driver;
    d.prober = &prober;
    d.proxies = proxies.get();
    d.state = state.get();
    deployer = std::make_unique<Deployer>(o, d);
  }

  agentlink::DeployTask task(const std::string& id, int rev, const std::string& tag,
                             const std::string& password) {
    agentlink::DeployTask t;
    t.task_id = id;
    t.service_id = "svc-it";
    t.revision_id = "rev" + std::to_string(rev);
    t.revision = rev;
    t.image_ref = reg.image(tag);
    t.pull_ref = t.image_ref;
    t.image_digest = reg.digest(tag);
    t.container_port = 8080;
    t.health.path = "/";
    t.health.interval_seconds = 1;
    t.health.timeout_seconds = 1;
    t.auth = agentlink::RegistryAuth{{reg.host()}, reg.username(), Secret(password)};
    return t;
  }

  std::vector<std::string> berth_containers() {
    auto l = driver.list_by_label(kLabelService, "svc-it");
    REQUIRE(l.ok());
    std::vector<std::string> names;
    for (const auto& c : *l) names.push_back(c.name);
    return names;
  }
};

// The parent pid of /proc/PID (field 4 of its stat line, after the parenthesised command).
pid_t parent_of(const std::string& proc_dir) {
  std::ifstream in(proc_dir + "/stat");
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 1));
  std::string state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A podman command the test itself runs (what an operator or a crash would do).
std::string podman(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"podman"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_process(argv, 60s);
  REQUIRE(r.ok());
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
  return r->out;
}

// Runs watch rounds until one reports `state` for the app (a wait on the agent's own report,
// bounded so a broken watch fails instead of hanging).
std::optional<agentlink::AppStatus> watch_until(Deployer& d, agentlink::AppState state,
                                                std::chrono::seconds limit = 60s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    for (const auto& s : d.watch())
      if (s.state == state) return s;
    std::this_thread::sleep_for(100ms);
  }
  return std::nullopt;
}

std::string serving_container(Live& live) {
  auto obs = live.deployer->observe();
  REQUIRE(obs.size() == 1);
  return obs[0].container;
}

}  // namespace

TEST_CASE("Deploying v1 then v2 serves each at the same stable port and removes the old container",
          "[podman]") {
  REQUIRE_PODMAN();
  Live live;
  auto r1 = live.deployer->deploy(live.task("it-1", 1, "v1", live.reg.password()), nullptr);
  INFO(r1.error);
  REQUIRE(r1.ok);
  REQUIRE(r1.stable_port > 0);
  CHECK(http_get(r1.stable_port).body == "v1\n");
  const auto first = live.berth_containers();
  REQUIRE(first.size() == 1);

  auto r2 = live.deployer->deploy(live.task("it-2", 2, "v2", live.reg.password()), nullptr);
  INFO(r2.error);
  REQUIRE(r2.ok);
  CHECK(r2.stable_port == r1.stable_port);
  CHECK(http_get(r2.stable_port).body == "v2\n");
  const auto now = live.berth_containers();
  REQUIRE(now.size() == 1);
  CHECK(now[0] != first[0]);
  CHECK(now[0].rfind("berth-svc-it-r2-", 0) == 0);
  CHECK(live.driver.inspect(first[0]).error().code == ErrorCode::kNotFound);
  CHECK(fs::is_empty(live.dir + "/tmp"));
}

TEST_CASE(
    "A wrong password fails with the registry's unauthorized reason, v1 keeps serving and no log "
    "line holds a password",
    "[podman]") {
  REQUIRE_PODMAN();
  std::vector<std::string> lines;
  std::mutex mu;
  auto previous = log::set_sink([&](std::string_view l) {
    std::lock_guard lock(mu);
    lines.emplace_back(l);
  });
  const auto prev_level = log::level();
  log::set_level(log::Level::kDebug);
  const std::string wrong = "wrong-canary-5d1e0b7a\"\\";
  std::string real;
  berth::testing::SecretScan scan;
  {
    Live live;
    real = live.reg.password();
    auto r1 = live.deployer->deploy(live.task("it-1", 1, "v1", real), nullptr);
    REQUIRE(r1.ok);
    auto r2 = live.deployer->deploy(live.task("it-2", 2, "v2", wrong), nullptr);
    CHECK_FALSE(r2.ok);
    CHECK_THAT(r2.error, Catch::Contains("unauthorized", Catch::CaseSensitive::No));
    CHECK(r2.error.find(wrong) == std::string::npos);
    CHECK(http_get(r1.stable_port).body == "v1\n");
    CHECK(live.berth_containers().size() == 1);
    auto obs = live.deployer->observe();
    REQUIRE(obs.size() == 1);
    CHECK(obs[0].revision_id == "rev1");
    CHECK(fs::is_empty(live.dir + "/tmp"));
    // Nothing in the agent's data dir holds either password in any encoding (state DB, WAL,
    // files; base64("user:password") is what an auth file would keep).
    scan.add(wrong, live.reg.username());
    scan.add(real, live.reg.username());
    CHECK(scan.files_under(live.dir).empty());
  }
  log::set_sink(previous);
  log::set_level(prev_level);
  REQUIRE_FALSE(lines.empty());
  for (const auto& l : lines) CHECK(scan.find_in(l).empty());
}

TEST_CASE("A green that never becomes healthy is removed while blue keeps serving", "[podman]") {
  REQUIRE_PODMAN();
  Live live;
  auto r1 = live.deployer->deploy(live.task("it-1", 1, "v1", live.reg.password()), nullptr);
  REQUIRE(r1.ok);
  const auto blue = live.berth_containers();
  live.probe_deadline = 4s;
  live.open();  // same data dir and containers, shorter probe deadline
  REQUIRE(live.deployer->reconcile().ok());
  CHECK(http_get(r1.stable_port).body == "v1\n");

  SECTION("the image never serves") {
    auto r2 = live.deployer->deploy(live.task("it-2", 2, "broken", live.reg.password()), nullptr);
    CHECK_FALSE(r2.ok);
    CHECK_THAT(r2.error, Catch::Contains("did not become healthy"));
  }
  SECTION("the health path answers 404") {
    auto t = live.task("it-3", 2, "v2", live.reg.password());
    t.health.path = "/no-such-page";
    auto r2 = live.deployer->deploy(t, nullptr);
    CHECK_FALSE(r2.ok);
    CHECK_THAT(r2.error, Catch::Contains("404"));
  }
  CHECK(http_get(r1.stable_port).body == "v1\n");
  CHECK(live.berth_containers() == blue);
}

TEST_CASE(
    "During a pull the password is in no process's cmdline or environ, and the auth file is gone "
    "afterwards",
    "[podman]") {
  REQUIRE_PODMAN();
  Live live;
  const std::string password = live.reg.password();
  const berth::testing::SecretScan scan(password, live.reg.username());
  std::atomic<bool> done{false};
  agentlink::TaskResult result;
  std::thread worker([&] {
    result = live.deployer->deploy(live.task("it-1", 1, "v1", password), nullptr);
    done = true;
  });
  int scans = 0, leaks = 0;
  std::string authfile_seen;
  while (!done) {
    ++scans;
    DIR* proc = ::opendir("/proc");
    REQUIRE(proc != nullptr);
    while (dirent* e = ::readdir(proc)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      const std::string base = std::string("/proc/") + e->d_name;
      std::string cmdline = slurp(base + "/cmdline");
      const std::string environ = slurp(base + "/environ");
      if (!scan.find_in(cmdline).empty() || !scan.find_in(environ).empty()) ++leaks;
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      // Only this agent's own podman (a direct child of this process): other suites run in
      // parallel and pull with auth files in their own data dirs.
      if (cmdline.find(" pull ") != std::string::npos && parent_of(base) == ::getpid()) {
        const auto at = cmdline.find("--authfile ");
        if (at != std::string::npos) {
          const auto start = at + 11;
          authfile_seen = cmdline.substr(start, cmdline.find(' ', start) - start);
        }
      }
    }
    ::closedir(proc);
  }
  worker.join();
  INFO(result.error);
  CHECK(result.ok);
  CHECK(scans > 0);
  CHECK(leaks == 0);
  // The scan caught podman pulling, with an auth file inside the agent's data dir...
  REQUIRE_FALSE(authfile_seen.empty());
  CHECK(authfile_seen.rfind(live.dir + "/tmp/auth-", 0) == 0);
  // ...which is gone, with its directory.
  CHECK_FALSE(fs::exists(authfile_seen));
  CHECK_FALSE(fs::exists(fs::path(authfile_seen).parent_path()));
}

TEST_CASE("A new agent on the same data dir sees the app, keeps its stable port and serves it",
          "[podman]") {
  REQUIRE_PODMAN();
  Live live;
  std::mutex mu;
  std::vector<agentlink::Message> sent;
  auto sender = [&](agentlink::Message m) {
    std::lock_guard lock(mu);
    sent.push_back(std::move(m));
  };
  int stable = 0;
  {
    Agent agent({"vm-1", "z1"}, *live.deployer, sender);
    REQUIRE(agent.start().ok());
    agent.handle(live.task("it-1", 1, "v1", live.reg.password()));
    agent.wait_idle();
    std::lock_guard lock(mu);
    REQUIRE(!sent.empty());
    REQUIRE(std::holds_alternative<agentlink::TaskResult>(sent.back()));
    const auto& r = std::get<agentlink::TaskResult>(sent.back());
    INFO(r.error);
    REQUIRE(r.ok);
    stable = r.stable_port;
    agent.stop();
  }
  live.open();                          // a fresh process: new proxies, state handle and deployer
  CHECK(http_get(stable).status == 0);  // nothing listens until the agent starts
  Agent again({"vm-1", "z1"}, *live.deployer, sender);
  REQUIRE(again.start().ok());
  const auto hello = again.hello();
  CHECK(hello.name == "vm-1");
  REQUIRE(hello.apps.size() == 1);
  CHECK(hello.apps[0].service_id == "svc-it");
  CHECK(hello.apps[0].revision_id == "rev1");
  CHECK(hello.apps[0].stable_port == stable);
  CHECK(hello.apps[0].healthy);
  CHECK(http_get(stable).body == "v1\n");

  // The same task id again is answered from the record, not redone.
  const auto before = live.berth_containers();
  {
    std::lock_guard lock(mu);
    sent.clear();
  }
  again.handle(live.task("it-1", 1, "v1", live.reg.password()));
  again.wait_idle();
  CHECK(live.berth_containers() == before);
  std::lock_guard lock(mu);
  REQUIRE(sent.size() == 2);
  CHECK(std::holds_alternative<agentlink::Ack>(sent[0]));
  CHECK(std::get<agentlink::TaskResult>(sent[1]).ok);
}

TEST_CASE("Restart restarts the serving container and remove tears the app down", "[podman]") {
  REQUIRE_PODMAN();
  Live live;
  auto r1 = live.deployer->deploy(live.task("it-1", 1, "v1", live.reg.password()), nullptr);
  REQUIRE(r1.ok);
  auto rs = live.deployer->restart({"it-2", "svc-it"}, nullptr);
  INFO(rs.error);
  CHECK(rs.ok);
  CHECK(http_get(r1.stable_port).body == "v1\n");
  auto rm = live.deployer->remove({"it-3", "svc-it"}, nullptr);
  CHECK(rm.ok);
  CHECK(live.berth_containers().empty());
  CHECK(http_get(r1.stable_port).status == 0);
  CHECK(live.deployer->observe().empty());
}

// Not a check: prints how long each step of a real redeploy takes, with the 10 s stop grace the
// agent used before (like for like with the figures quoted in docs/agent.md; run `[.measure]`).
TEST_CASE("Measure: cleanup duration of a redeploy with the default stop grace", "[.measure]") {
  REQUIRE_PODMAN();
  Live live;
  live.stop_grace_seconds = 10;
  live.open();
  const auto start = std::chrono::steady_clock::now();
  auto r1 = live.deployer->deploy(live.task("m-1", 1, "v1", live.reg.password()), nullptr);
  REQUIRE(r1.ok);
  auto r2 = live.deployer->deploy(live.task("m-2", 2, "v2", live.reg.password()), nullptr);
  REQUIRE(r2.ok);
  const auto total = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  std::string figures;
  for (const auto& e : r2.logs) figures += e.step + "=" + std::to_string(e.duration_ms) + "ms ";
  WARN("redeploy: " << figures << "(two deploys: " << total.count() << " ms)");
}

TEST_CASE("A container removed with podman rm -f is reported missing and cannot be restarted",
          "[podman][watch]") {
  REQUIRE_PODMAN();
  Live live;
  auto r1 = live.deployer->deploy(live.task("it-1", 1, "v1", live.reg.password()), nullptr);
  REQUIRE(r1.ok);
  const std::string name = serving_container(live);
  CHECK(live.deployer->watch().empty());  // serving and healthy

  podman({"rm", "-f", name});
  auto missing = watch_until(*live.deployer, agentlink::AppState::kMissing);
  REQUIRE(missing);
  CHECK(missing->service_id == "svc-it");
  CHECK(missing->revision_id == "rev1");
  CHECK_THAT(missing->detail, Catch::Contains(name));
  CHECK_FALSE(live.deployer->observe()[0].healthy);

  auto rs = live.deployer->restart({"it-2", "svc-it"}, nullptr);
  CHECK_FALSE(rs.ok);
  CHECK_THAT(rs.error, Catch::Contains("no longer exists"));
  auto again = live.deployer->watch();
  REQUIRE(again.size() == 1);
  CHECK(again[0].state == agentlink::AppState::kMissing);

  // The controller's answer, a redeploy of the current revision, brings it back.
  auto r3 = live.deployer->deploy(live.task("it-3", 1, "v1", live.reg.password()), nullptr);
  REQUIRE(r3.ok);
  CHECK(http_get(r3.stable_port).body == "v1\n");
  auto running = watch_until(*live.deployer, agentlink::AppState::kRunning);
  REQUIRE(running);
  CHECK(running->container == serving_container(live));
}

TEST_CASE("A container whose process is killed is reported missing", "[podman][watch]") {
  REQUIRE_PODMAN();
  Live live;
  auto r1 = live.deployer->deploy(live.task("it-1", 1, "v1", live.reg.password()), nullptr);
  REQUIRE(r1.ok);
  const std::string name = serving_container(live);
  std::string pid = podman({"inspect", "--format", "{{.State.Pid}}", name});
  pid.erase(pid.find_last_not_of(" \n") + 1);
  REQUIRE(std::stoi(pid) > 0);
  REQUIRE(::kill(std::stoi(pid), SIGKILL) == 0);
  auto missing = watch_until(*live.deployer, agentlink::AppState::kMissing);
  REQUIRE(missing);
  CHECK_THAT(missing->detail, Catch::Contains("not running"));
}

TEST_CASE("An app whose health path starts failing is reported unhealthy, then running again",
          "[podman][watch]") {
  REQUIRE_PODMAN();
  Live live;
  auto t = live.task("it-1", 1, "v1", live.reg.password());
  t.health.path = "/index.html";
  auto r1 = live.deployer->deploy(t, nullptr);
  REQUIRE(r1.ok);
  const std::string name = serving_container(live);
  CHECK(live.deployer->watch().empty());

  podman({"exec", name, "/bin/busybox", "mv", "/www/index.html", "/www/away.html"});
  auto unhealthy = watch_until(*live.deployer, agentlink::AppState::kUnhealthy);
  REQUIRE(unhealthy);
  CHECK(unhealthy->container == name);
  CHECK_THAT(unhealthy->detail, Catch::Contains("404"));
  CHECK_FALSE(live.deployer->observe()[0].healthy);

  podman({"exec", name, "/bin/busybox", "mv", "/www/away.html", "/www/index.html"});
  auto running = watch_until(*live.deployer, agentlink::AppState::kRunning);
  REQUIRE(running);
  CHECK(live.deployer->observe()[0].healthy);
}

TEST_CASE(
    "An agent restarted with its containers gone reports the app as not serving, then missing",
    "[podman][watch]") {
  REQUIRE_PODMAN();
  Live live;
  auto r1 = live.deployer->deploy(live.task("it-1", 1, "v1", live.reg.password()), nullptr);
  REQUIRE(r1.ok);
  // The agent stops, and its containers go too (a host reboot, a `podman rm -af`).
  live.open();
  for (const auto& n : live.berth_containers()) podman({"rm", "-f", n});

  std::mutex mu;
  std::condition_variable cv;
  std::vector<agentlink::AppStatus> statuses;
  Agent::Options o{"vm-1", "z1"};
  o.watch_every = 100ms;
  Agent agent(o, *live.deployer, [&](agentlink::Message m) {
    if (auto* s = std::get_if<agentlink::AppStatus>(&m)) {
      std::lock_guard lock(mu);
      statuses.push_back(*s);
      cv.notify_all();
    }
  });
  REQUIRE(agent.start().ok());
  const auto hello = agent.hello();
  REQUIRE(hello.apps.size() == 1);
  CHECK(hello.apps[0].revision_id == "rev1");
  CHECK(hello.apps[0].container.empty());
  CHECK_FALSE(hello.apps[0].healthy);
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 60s, [&] { return !statuses.empty(); }));
    CHECK(statuses[0].state == agentlink::AppState::kMissing);
    CHECK(statuses[0].revision_id == "rev1");
  }
  agent.stop();
}

TEST_CASE("Containers run with an init process and the stop grace period", "[podman-driver]") {
  // `echo` in place of podman prints the argv the driver would run.
  PodmanDriver driver(PodmanOptions{"echo"});
  ContainerSpec spec;
  spec.name = "c";
  spec.image = "img";
  spec.host_port = 1;
  spec.container_port = 2;
  spec.stop_grace_seconds = 3;
  auto out = driver.run(spec);
  REQUIRE(out.ok());
  CHECK_THAT(*out, Catch::StartsWith("run -d --init --stop-timeout 3 --name c"));
}

TEST_CASE("Stopping a container sends SIGTERM to the app, not SIGKILL after the grace period",
          "[podman]") {
  REQUIRE_PODMAN();
  Live live;
  REQUIRE(live.deployer->deploy(live.task("it-1", 1, "v1", live.reg.password()), nullptr).ok);
  const std::string name = serving_container(live);
  // busybox httpd has no SIGTERM handler: as PID 1 (no init) it would ignore SIGTERM and be
  // killed when the grace period ran out (exit code 137). With the init process in front it
  // dies of the SIGTERM itself (143), at once.
  REQUIRE(live.driver.stop(name, 10).ok());
  std::string code = podman({"inspect", "--format", "{{.State.ExitCode}}", name});
  code.erase(code.find_last_not_of(" \n") + 1);
  CHECK(code == "143");
}

TEST_CASE("A redeploy of a digest podman already holds pulls nothing and needs no credentials",
          "[podman][pull]") {
  REQUIRE_PODMAN();
  Live live;
  auto r1 = live.deployer->deploy(live.task("it-1", 1, "v1", live.reg.password()), nullptr);
  INFO(r1.error);
  REQUIRE(r1.ok);
  const std::string pinned =
      live.reg.host() + "/" + testenv::Registry::kRepository + "@" + live.reg.digest("v1");
  auto local = live.driver.local_image(pinned);
  REQUIRE(local.ok());
  CHECK(local->has_value());
  auto absent = live.driver.local_image(live.reg.host() + "/" + testenv::Registry::kRepository +
                                        "@sha256:" + std::string(64, 'e'));
  REQUIRE(absent.ok());
  CHECK_FALSE(absent->has_value());

  // The same digest again, with a password the registry refuses: the image is the one asked
  // for, so no pull (and no auth file) happens, and the deploy succeeds.
  auto r2 = live.deployer->deploy(live.task("it-2", 2, "v1", "not-the-password"), nullptr);
  INFO(r2.error);
  REQUIRE(r2.ok);
  REQUIRE(!r2.logs.empty());
  CHECK(r2.logs[0].step == "pull");
  CHECK(r2.logs[0].message.find("already present") != std::string::npos);
  CHECK(http_get(r2.stable_port).body == "v1\n");
  CHECK(fs::is_empty(live.dir + "/tmp"));
  CHECK(live.berth_containers().size() == 1);
}
