// berth-bench-kube: Kubernetes mode against the test API server (hack/testenv/kubeapi).
//
// N AppServices (default 1,000) applied to the test API server and reconciled by a real
// `berth-controller serve --kubernetes` with M simulated agents speaking the real agent link
// (bench/kube_sim.h; no podman). Every figure is printed beside a baseline measured in the same
// run on a fresh test API server of its own: the same N objects created by the same client and
// made Ready by a bare controller (an informer and one status merge patch per object, the same
// client library, no berth) - what the test API server allows at the least work per object.
//
//   create -> all Ready            N creates until every app is Running and Ready at revision 1
//                                  (seen by an informer), vs the bare controller
//   API calls per reconcile        the controller's requests in the server's log (watches left
//                                  out) / controller_runtime_reconcile_total; and per app, vs the
//                                  bare controller's one status write per app
//   watch events processed /s      every app annotated at once (one MODIFIED event each): the
//                                  rate berth_kube_watch_events_total{resource="appservices"}
//                                  grows in the controller, vs an informer of the bench on the
//                                  same event stream; plus the API calls those no-op reconciles
//                                  cost
//
// Contract: reports, never fails on a figure; exits non-zero (bench::die) when something does
// not start or does not converge within the deadline; --smoke (tiny sizes, for ctest) exits 77
// when python3 (the test API server) is missing. Only the processes it started are stopped.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include "bench_fixture.h"
#include "bench_util.h"
#include "common/log.h"
#include "kube_sim.h"
#include "support/kube_testenv.h"

using namespace berth;
using bench::Figures;
using bench::Unit;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct Options {
  int apps = 1'000;
  int agents = 10;
  int workers = 4;
  int threads = 8;  // parallel creates / patches of the bench's client
  std::chrono::seconds deadline{600};
  bool smoke = false;
  fs::path controller;
  std::string log_level = "error";
};

void must(const Status& st, const char* what) {
  if (!st.ok()) bench::die(what, st.error().message);
}

fs::path sibling(const char* name) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(name) : self.parent_path() / name;
}

testenv::KubeApiServer start_server(const Options& o) {
  auto server = testenv::KubeApiServer::start();
  if (!server) {
    if (o.smoke) {
      std::fprintf(stderr, "kube bench: skipped: test API server: %s\n",
                   server.error().message.c_str());
      std::exit(bench::kSkipped);
    }
    bench::die("test API server", server.error().message);
  }
  return std::move(server).value();
}

bench::sim::KubeSimOptions sim_options(const Options& o, const testenv::KubeApiServer& server,
                                       const fs::path& dir) {
  bench::sim::KubeSimOptions so;
  so.server = server.server();
  so.ca_file = server.ca_file();
  so.kubeconfig = server.kubeconfig_file();
  so.client_cert_file = server.client_cert_file();
  so.client_key_file = server.client_key_file();
  so.controller = o.controller;
  so.dir = dir;
  so.agents = o.agents;
  so.workers = o.workers;
  so.log_level = o.log_level;
  return so;
}

// CPU seconds (user + system) a process has used, from /proc/PID/stat; 0 when it is gone.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');  // the command may contain spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
    if (i == 15) break;
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The test API server's process: the one whose command line names its directory.
pid_t server_pid(const testenv::KubeApiServer& server) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find("kubeapi") != std::string::npos && cmd.find(server.dir()) != std::string::npos)
      return static_cast<pid_t>(std::stoi(name));
  }
  return 0;
}

double seconds_since(bench::Clock::time_point t0) { return bench::since_ns(t0) / 1e9; }

json annotation(int round) {
  return {{"metadata", {{"annotations", {{"bench.berth.dev/round", std::to_string(round)}}}}}};
}

// The baseline: a fresh server, the bench's client, the bare controller.
void bare_run(const Options& o, const fs::path& dir, Figures& f) {
  testenv::KubeApiServer server = start_server(o);
  // KubeSim is used only for its client and helpers here: nothing of berth starts.
  bench::sim::KubeSim sim(sim_options(o, server, dir / "bare"));
  must(sim.connect(), "bench client");
  const std::string ns = "bare";
  must(sim.create_apps(ns, 0, "v1"), "namespace");
  bench::sim::AppWatch watch(sim.client(), ns);
  bench::sim::BareController bare(sim.client(), ns, o.workers);
  const json before = server.requests();
  const pid_t spid = server_pid(server);
  const double server_cpu0 = cpu_seconds(spid);

  auto t0 = bench::Clock::now();
  must(sim.create_apps(ns, o.apps, "v1", o.threads), "create");
  f["create_ns"] = bench::since_ns(t0);
  if (!watch.wait_ready(o.apps, 1, o.deadline))
    bench::die("bare controller", "not all Ready: " + std::to_string(watch.ready_at(1)));
  f["ready_ns"] = bench::since_ns(t0);
  f["server_cpu"] = cpu_seconds(spid) - server_cpu0;
  const json after = server.requests();
  const int calls = bench::sim::count_requests(after, "berth-test", false) -
                    bench::sim::count_requests(before, "berth-test", false);
  // The bench's own creates are in the same user's count: the controller's share is the rest.
  f["calls_per_app"] = static_cast<double>(calls - o.apps) / o.apps;
  f["events_create"] = static_cast<double>(watch.events());

  const std::uint64_t e0 = watch.events();
  t0 = bench::Clock::now();
  must(sim.patch_apps(ns, o.apps, annotation(1), o.threads), "annotate");
  f["patch_ns"] = bench::since_ns(t0);
  if (!watch.wait_events(e0 + static_cast<std::uint64_t>(o.apps), o.deadline))
    bench::die("bare watch", "not every MODIFIED event arrived");
  f["watch_per_s"] = o.apps / seconds_since(t0);
}

// The run itself: a fresh server, berth-controller and the simulated agents.
void berth_run(const Options& o, const fs::path& dir, Figures& f) {
  testenv::KubeApiServer server = start_server(o);
  bench::sim::KubeSim sim(sim_options(o, server, dir / "berth"));
  auto t_start = bench::Clock::now();
  must(sim.start(), "berth-controller with simulated agents");
  f["start_ns"] = bench::since_ns(t_start);
  const std::string ns = "berth";
  must(sim.create_apps(ns, 0, "v1"), "namespace");
  bench::sim::AppWatch watch(sim.client(), ns);
  const char* apps_label = "resource=\"appservices\"";
  const double reconciles0 = sim.metric("controller_runtime_reconcile_total");
  const double events0 = sim.metric("berth_kube_watch_events_total", apps_label);
  const json before = server.requests();
  const pid_t spid = server_pid(server);
  const double server_cpu0 = cpu_seconds(spid);
  const double controller_cpu0 = cpu_seconds(sim.controller_pid());

  auto t0 = bench::Clock::now();
  must(sim.create_apps(ns, o.apps, "v1", o.threads), "create");
  f["create_ns"] = bench::since_ns(t0);
  if (!watch.wait_ready(o.apps, 1, o.deadline))
    bench::die("berth", "not all Ready within the deadline: " + std::to_string(watch.ready_at(1)) +
                            " of " + std::to_string(o.apps));
  f["ready_ns"] = bench::since_ns(t0);
  const double ready_s = seconds_since(t0);
  f["server_cpu"] = cpu_seconds(spid) - server_cpu0;
  f["controller_cpu"] = cpu_seconds(sim.controller_pid()) - controller_cpu0;
  // Let the last status writes' reconciles settle before counting.
  std::this_thread::sleep_for(500ms);
  const json after = server.requests();
  const double reconciles1 = sim.metric("controller_runtime_reconcile_total");
  const double events1 = sim.metric("berth_kube_watch_events_total", apps_label);
  const int calls = bench::sim::count_requests(after, "admin", false) -
                    bench::sim::count_requests(before, "admin", false);
  f["calls"] = calls;
  // Where the calls go: "verb resource[/subresource]" -> count, per app.
  for (std::size_t i = before.size(); i < after.size(); ++i) {
    const json& r = after[i];
    if (!bench::sim::counted_request(r, "admin", false)) continue;
    std::string key = r.value("verb", "") + " " + r.value("resource", "");
    if (!r.value("subresource", "").empty()) key += "/" + r.value("subresource", "");
    f["by:" + key] += 1.0 / o.apps;
  }
  f["reconciles"] = reconciles1 - reconciles0;
  f["calls_per_reconcile"] = calls / std::max(1.0, reconciles1 - reconciles0);
  f["calls_per_app"] = static_cast<double>(calls) / o.apps;
  f["events_create"] = events1 - events0;
  f["events_create_per_s"] = (events1 - events0) / ready_s;
  f["deploys"] = static_cast<double>(sim.deploys());

  // The watch burst: one MODIFIED event per app, no spec change.
  const std::uint64_t w0 = watch.events();
  const double e0 = sim.metric("berth_kube_watch_events_total", apps_label);
  const json before_burst = server.requests();
  t0 = bench::Clock::now();
  must(sim.patch_apps(ns, o.apps, annotation(1), o.threads), "annotate");
  f["patch_ns"] = bench::since_ns(t0);
  double berth_s = 0;
  const auto limit = bench::Clock::now() + o.deadline;
  std::thread bench_watch([&] {
    if (watch.wait_events(w0 + static_cast<std::uint64_t>(o.apps), o.deadline))
      f["bench_watch_per_s"] = o.apps / seconds_since(t0);
  });
  while (sim.metric("berth_kube_watch_events_total", apps_label) < e0 + o.apps) {
    if (bench::Clock::now() > limit) bench::die("berth watch", "not every event was processed");
    std::this_thread::sleep_for(5ms);
  }
  berth_s = seconds_since(t0);
  bench_watch.join();
  f["watch_per_s"] = o.apps / berth_s;
  std::this_thread::sleep_for(500ms);
  const double reconciles2 = sim.metric("controller_runtime_reconcile_total");
  const int burst_calls = bench::sim::count_requests(server.requests(), "admin", false) -
                          bench::sim::count_requests(before_burst, "admin", false);
  f["noop_reconciles"] = reconciles2 - reconciles1;
  f["noop_calls_per_reconcile"] = burst_calls / std::max(1.0, reconciles2 - reconciles1);
  f["hwm"] = 0;
  {
    std::ifstream in("/proc/" + std::to_string(sim.controller_pid()) + "/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmHWM:", 0) == 0) f["hwm"] = std::stod(line.substr(6)) * 1024;
  }
}

Options parse(int argc, char** argv) {
  Options o;
  o.controller = sibling("berth-controller");
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) bench::die("usage", a + " needs a value");
      return argv[++i];
    };
    if (a == "--apps") {
      o.apps = std::stoi(value());
    } else if (a == "--agents") {
      o.agents = std::stoi(value());
    } else if (a == "--workers") {
      o.workers = std::stoi(value());
    } else if (a == "--deadline") {
      o.deadline = std::chrono::seconds(std::stoi(value()));
    } else if (a == "--controller") {
      o.controller = value();
    } else if (a == "--log-level") {
      o.log_level = value();
    } else if (a == "--smoke") {
      o.smoke = true;
      o.apps = 20;
      o.agents = 2;
      o.deadline = 120s;
    } else {
      bench::die("usage",
                 "berth-bench-kube [--apps N] [--agents M] [--workers W] [--deadline S] "
                 "[--controller PATH] [--log-level L] [--smoke]");
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  log::set_level(log::Level::kError);
  const Options o = parse(argc, argv);
  const fs::path dir = bench::make_temp_dir(fs::temp_directory_path(), "kube");
  const std::string N = std::to_string(o.apps);
  const std::string M = std::to_string(o.agents);

  Figures bare;
  bench::progress("kube: baseline, " + N + " AppServices and a bare controller");
  bare_run(o, dir, bare);
  Figures f;
  bench::progress("kube: berth-controller serve --kubernetes, " + N + " AppServices, " + M +
                  " simulated agents");
  berth_run(o, dir, f);
  std::error_code ec;
  fs::remove_all(dir, ec);

  bench::Table t;
  t.section("Kubernetes mode on the test API server (" + N + " AppServices, " + M +
            " simulated agents, " + std::to_string(o.workers) +
            " workers; each baseline: " + "a bare controller on a fresh server)");
  t.figure("controller start (keys, caches synced, agents connected)", f["start_ns"], Unit::kNanos);
  t.ratio("create -> all " + N + " Ready", f["ready_ns"], bare["ready_ns"], Unit::kNanos, 3);
  t.figure("  baseline: bare controller, one status write per app", bare["ready_ns"], Unit::kNanos);
  t.figure("  the bench's " + N + " creates alone (8 at a time)", bare["create_ns"], Unit::kNanos);
  t.figure("  CPU until all Ready: test API server (python3), s", f["server_cpu"], Unit::kCount);
  t.figure("  CPU until all Ready: berth-controller, s", f["controller_cpu"], Unit::kCount);
  t.figure("  baseline: test API server CPU, s", bare["server_cpu"], Unit::kCount);
  t.figure("reconciles until all Ready", f["reconciles"], Unit::kCount);
  t.figure("API calls per reconcile (watches left out)", f["calls_per_reconcile"], Unit::kCount);
  for (const auto& [key, per_app] : f)
    if (key.rfind("by:", 0) == 0) t.figure("  per app: " + key.substr(3), per_app, Unit::kCount);
  t.ratio("API calls per app until Ready", f["calls_per_app"], bare["calls_per_app"], Unit::kCount,
          4);
  t.figure("watch events processed while creating (appservices)", f["events_create"], Unit::kCount);
  t.ratio_at_least("watch events processed /s (" + N + " MODIFIED at once)", f["watch_per_s"],
                   f["bench_watch_per_s"], Unit::kPerSecond, 0.7);
  t.figure("  baseline: an informer of the bench on the same events", f["bench_watch_per_s"],
           Unit::kPerSecond);
  t.figure("  baseline: the same burst to a bare watcher, no berth running", bare["watch_per_s"],
           Unit::kPerSecond);
  t.figure("API calls per no-op reconcile (annotation only)", f["noop_calls_per_reconcile"],
           Unit::kCount);
  t.figure("controller peak RSS (VmHWM)", f["hwm"], Unit::kBytes);
  return 0;
}
