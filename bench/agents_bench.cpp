// berth-bench-agents: the standalone controller at scale over the real agent protocol.
//
// A real `berth-controller serve` (its own process, SQLite in a temp dir on the real disk, and on
// tmpfs with --tmpfs) holding N app services (default 10,000, written with the store as POST
// /app-services would), M simulated agents (default 50) enrolled with `berth-controller
// agent-credentials` and speaking the real agent link (agentlink::Client: TLS 1.3, client
// certificates, Hello, ack, result) that acknowledge and report success at once without podman,
// and an in-process HTTPS registry that answers every manifest HEAD with one digest (the
// controller resolves every revision before it dispatches it). Figures, each beside a baseline
// measured in the same run:
//
//   start -> all Running     vs the same N deploy tasks and results through an in-process
//                            agentlink::Server and the same M agents (the protocol floor)
//   controller peak RSS      /proc/PID/status VmHWM, vs the same controller with no services
//   dispatch latency         PATCH accepted (response received) -> DeployTask received by the
//                            agent, p50/p99 at --rate changes/s, vs a raw TLS 1.3 echo round trip
//                            of a frame of the same size
//
// Contract: reports, never fails on a figure; exits non-zero (bench::die) when the controller
// does not start or does not converge within the deadline. Only the processes it started are
// stopped (by pid).
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "agentlink/client.h"
#include "agentlink/server.h"
#include "bench_fixture.h"
#include "bench_util.h"
#include "common/log.h"
#include "common/process.h"
#include "common/subprocess.h"
#include "crypto/certs.h"
#include "sim_agent.h"
#include "sim_registry.h"
#include "store/sqlite_store.h"

using namespace berth;
using bench::Figures;
using bench::Samples;
using bench::Unit;
// The in-bench registry, the TLS helpers and their namespace aliases (fs, asio, ssl, http, tcp):
// sim_registry.h. The agents are berth::sim (sim_agent.h).
using namespace bench::sim;

namespace {

struct Options {
  int services = 10'000;
  int agents = 50;
  double rate = 100;  // changes per second in the dispatch phase
  int changes = 1'000;
  int echoes = 2'000;
  fs::path dir;  // the real disk (TMPDIR or /tmp)
  bool tmpfs = false;
  fs::path controller;  // berth-controller
  int workers = 4;
  std::chrono::seconds deadline{600};
  std::string controller_log_level = "error";  // its lines go to this process's stderr
};

template <class T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) bench::die(what, r.error().message);
  return std::move(r).value();
}

void must(const Status& st, const char* what) {
  if (!st.ok()) bench::die(what, st.error().message);
}

// --- TLS peers written with Asio directly: the fake registry and the echo baseline ------------

// server_context, set_socket_deadline, TlsServer and serve_registry: sim_registry.h.

// Echo of length-prefixed frames: the floor under one controller -> agent message.
void serve_echo(ssl::stream<tcp::socket>& s) {
  std::string frame;
  for (;;) {
    std::uint32_t n = 0;
    boost::system::error_code ec;
    asio::read(s, asio::buffer(&n, sizeof n), ec);
    if (ec) return;
    frame.resize(n);
    asio::read(s, asio::buffer(frame), ec);
    if (ec) return;
    asio::write(s, std::array{asio::buffer(&n, sizeof n), asio::buffer(frame)}, ec);
    if (ec) return;
  }
}

Samples echo_round_trips(std::uint16_t port, const std::string& ca_pem, std::size_t frame_bytes,
                         int n) {
  asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  ctx.add_certificate_authority(asio::buffer(ca_pem));
  ctx.set_verify_mode(ssl::verify_peer);
  ssl::stream<tcp::socket> s(io, ctx);
  s.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  s.next_layer().set_option(tcp::no_delay(true));
  set_socket_deadline(s.next_layer().native_handle(), 10s);
  s.handshake(ssl::stream_base::client);
  const std::string frame(frame_bytes, 'x');
  std::string back(frame_bytes, '\0');
  const auto len = static_cast<std::uint32_t>(frame_bytes);
  Samples out;
  for (int i = 0; i < n; ++i) {
    std::uint32_t got = 0;
    const auto t0 = bench::Clock::now();
    asio::write(s, std::array{asio::buffer(&len, sizeof len), asio::buffer(frame)});
    asio::read(s, asio::buffer(&got, sizeof got));
    asio::read(s, asio::buffer(back));
    out.add(bench::since_ns(t0));
  }
  boost::system::error_code ec;
  s.shutdown(ec);
  return out;
}

// --- simulated agents --------------------------------------------------------------------------

using Credentials = sim::AgentCredentials;
using sim::agent_name;
using sim::Arrivals;
using sim::SimAgent;

// The simulated agents are bench/sim_agent.h (shared with tests/load).
std::vector<std::unique_ptr<SimAgent>> start_sim_agents(const std::vector<Credentials>& creds,
                                                        const std::string& url,
                                                        Arrivals& arrivals) {
  sim::SimAgentOptions options;
  options.fallback_digest = bench::fixed_digest();
  return must(sim::start_agents(creds, url, arrivals, options), "agent start");
}

// --- the controller process ----------------------------------------------------------------------

std::uint16_t free_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

std::int64_t proc_status_kib(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(std::strlen(field) + 1));
  }
  return 0;
}

class ControllerProcess {
 public:
  ControllerProcess(const Options& o, const fs::path& data, const std::string& registry_ca) {
    agent_port_ = free_port();
    port_file_ = data / "api.port";
    std::vector<std::string> argv = {o.controller.string(),
                                     "serve",
                                     "--data-dir",
                                     data.string(),
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--port-file",
                                     port_file_.string(),
                                     "--agent-listen",
                                     "127.0.0.1:" + std::to_string(agent_port_),
                                     "--log-level",
                                     o.controller_log_level,
                                     "--workers",
                                     std::to_string(o.workers),
                                     "--registry-ca",
                                     registry_ca};
    started_ = bench::Clock::now();
    pid_ = must(spawn_child(SpawnOptions{argv, SIGTERM}), "spawn berth-controller");
  }
  ~ControllerProcess() { stop(); }

  bench::Clock::time_point started() const { return started_; }
  pid_t pid() const { return pid_; }
  std::string agent_url() const { return "wss://127.0.0.1:" + std::to_string(agent_port_); }
  std::uint16_t api_port() {
    if (!wait_for([&] { return fs::exists(port_file_); }, 60s))
      bench::die("berth-controller", "no port file within 60 s");
    return static_cast<std::uint16_t>(std::stoi(read_text(port_file_)));
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
  }

 private:
  pid_t pid_ = 0;
  std::uint16_t agent_port_ = 0;
  fs::path port_file_;
  bench::Clock::time_point started_;
};

// The number of services the store records as Running, read the way any SQLite reader can (WAL:
// it never blocks the controller's writer).
class RunningCounter {
 public:
  explicit RunningCounter(const fs::path& db) {
    if (sqlite3_open_v2(db.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
      bench::die("sqlite3_open_v2", db.string());
    sqlite3_busy_timeout(db_, 1000);
    sqlite3_prepare_v2(db_, "SELECT count(*) FROM app_services WHERE status = 'Running'", -1,
                       &stmt_, nullptr);
  }
  ~RunningCounter() {
    sqlite3_finalize(stmt_);
    sqlite3_close(db_);
  }
  int count() {
    int n = -1;
    if (sqlite3_step(stmt_) == SQLITE_ROW) n = sqlite3_column_int(stmt_, 0);
    sqlite3_reset(stmt_);
    return n;
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// A keep-alive HTTP/1.1 client of the controller's API (loopback, Bearer token).
class ApiClient {
 public:
  ApiClient(std::uint16_t port, std::string token) : sock_(io_), token_(std::move(token)) {
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    sock_.set_option(tcp::no_delay(true));
    set_socket_deadline(sock_.native_handle(), 30s);
  }
  unsigned patch(const std::string& id, const std::string& body) {
    http::request<http::string_body> req{http::verb::patch, "/app-services/" + id, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + token_);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(sock_, req);
    http::response<http::string_body> res;
    http::read(sock_, buf_, res);
    return res.result_int();
  }

 private:
  asio::io_context io_;
  tcp::socket sock_;
  boost::beast::flat_buffer buf_;
  std::string token_;
};

// --- the phases
// ------------------------------------------------------------------------------------

struct Pki {
  crypto::PemPair ca;
  crypto::PemPair registry;  // the fake registry's certificate (IP SAN 127.0.0.1)
  fs::path ca_file;
};

Pki make_pki(const fs::path& dir) {
  Pki p;
  p.ca = must(crypto::create_ca("berth bench CA", 24 * 3600), "create_ca");
  crypto::CertRequest r;
  r.common_name = "bench-registry";
  r.ip_addresses = {"127.0.0.1"};
  r.server = true;
  p.registry = must(crypto::issue_certificate(p.ca, r), "issue_certificate");
  p.ca_file = dir / "bench-ca.crt";
  std::ofstream(p.ca_file) << p.ca.cert_pem;
  return p;
}

// Enrols M agents the way an operator does: `berth-controller agent-credentials`.
std::vector<Credentials> enrol(const Options& o, const fs::path& data) {
  std::vector<Credentials> out;
  for (int i = 0; i < o.agents; ++i) {
    const fs::path dir = data / "sim-agents" / agent_name(i);
    auto r =
        must(run_process({o.controller.string(), "agent-credentials", "--data-dir", data.string(),
                          "--name", agent_name(i), "--zone", "local", "--out", dir.string()},
                         60s),
             "agent-credentials");
    if (r.exit_code != 0) bench::die("agent-credentials", r.err);
    auto pair = must(crypto::read_pem_files(dir, "agent"), "read agent credentials");
    out.push_back({agent_name(i), read_text(dir / "ca.crt"), pair.cert_pem, pair.key_pem});
  }
  return out;
}

// The protocol floor: the same N deploy tasks over an in-process agentlink::Server to the same
// kind of agents, answered the same way, with no store, reconcile or registry behind them.
void protocol_floor(const Options& o, const Pki& pki, std::size_t& frame_bytes, Figures& f) {
  std::vector<Credentials> creds;
  for (int i = 0; i < o.agents; ++i) {
    crypto::CertRequest r;
    r.common_name = agent_name(i);
    r.zone = "local";
    r.client = true;
    auto pair = must(crypto::issue_certificate(pki.ca, r), "issue agent certificate");
    creds.push_back({agent_name(i), pki.ca.cert_pem, pair.cert_pem, pair.key_pem});
  }
  crypto::CertRequest sr;
  sr.common_name = "berth-controller";
  sr.ip_addresses = {"127.0.0.1"};
  sr.server = true;
  auto server_pair = must(crypto::issue_certificate(pki.ca, sr), "issue server certificate");
  std::atomic<std::uint64_t> results{0};
  std::atomic<int> hellos{0};
  agentlink::ServerOptions so;
  so.ca_cert_pem = pki.ca.cert_pem;
  so.server_cert_pem = server_pair.cert_pem;
  so.server_key_pem = Secret(server_pair.key_pem.reveal());
  so.on_hello = [&](const agentlink::AgentIdentity&, const agentlink::Hello&) { ++hellos; };
  so.on_message = [&](const std::string&, const agentlink::Message& m) {
    if (std::holds_alternative<agentlink::TaskResult>(m)) ++results;
  };
  agentlink::Server server(std::move(so));
  must(server.start(), "agentlink::Server start");
  Arrivals arrivals;
  auto agents =
      start_sim_agents(creds, "wss://127.0.0.1:" + std::to_string(server.port()), arrivals);
  if (!wait_for(
          [&] {
            return hellos.load() == o.agents &&
                   server.connected().size() == static_cast<std::size_t>(o.agents);
          },
          30s))
    bench::die("protocol floor", "the agents did not connect");
  const auto t0 = bench::Clock::now();
  for (int i = 0; i < o.services; ++i) {
    core::Change c = bench::make_change(i, "acct", {"127.0.0.1:5000", "local", 0});
    agentlink::DeployTask t;
    t.task_id = c.task->id;
    t.service_id = c.service.id;
    t.revision_id = c.revision->id;
    t.revision = 1;
    t.image_ref = c.service.config.image_ref;
    t.image_digest = bench::fixed_digest();
    t.pull_ref = "127.0.0.1:5000/acme/app@" + bench::fixed_digest();
    t.container_port = c.service.config.container_port;
    t.env = c.service.config.env;
    t.health = c.service.config.health;
    if (i == 0) frame_bytes = agentlink::encode(t).size();
    while (!server.send(agent_name(i % o.agents), t).ok()) std::this_thread::sleep_for(1ms);
  }
  if (!wait_for([&] { return results.load() >= static_cast<std::uint64_t>(o.services); },
                o.deadline, 1ms))
    bench::die("protocol floor", "not every result came back");
  f["floor_ns"] = bench::since_ns(t0);
  for (auto& a : agents) a->stop();
  server.stop();
}

// The same controller with no services and every agent connected: the RSS it needs anyway.
void empty_controller(const Options& o, const fs::path& base, const Pki& pki, Figures& f) {
  const fs::path data = bench::make_temp_dir(base, "agents-empty");
  auto creds = enrol(o, data);
  ControllerProcess ctl(o, data, "127.0.0.1=" + pki.ca_file.string());
  Arrivals arrivals;
  auto agents = start_sim_agents(creds, ctl.agent_url(), arrivals);
  ctl.api_port();
  if (!wait_for(
          [&] {
            for (auto& a : agents)
              if (!a->connected()) return false;
            return true;
          },
          60s))
    bench::die("empty controller", "the agents did not connect");
  f["empty_connect_ns"] = bench::since_ns(ctl.started());
  std::this_thread::sleep_for(500ms);
  f["empty_hwm"] = static_cast<double>(proc_status_kib(ctl.pid(), "VmHWM:")) * 1024;
  for (auto& a : agents) a->stop();
  ctl.stop();
  std::error_code ec;
  fs::remove_all(data, ec);
}

// The run itself, with the data directory under `base`.
void scale_run(const Options& o, const fs::path& base, const Pki& pki, std::uint16_t registry_port,
               Figures& f) {
  const fs::path data = bench::make_temp_dir(base, "agents");
  const std::string registry_host = "127.0.0.1:" + std::to_string(registry_port);
  std::string token;
  std::vector<std::string> ids;
  {
    bench::progress("agents: writing " + std::to_string(o.services) + " app services to " +
                    data.string());
    auto st = must(store::SqliteStore::open(data), "SqliteStore::open");
    const std::string acct =
        must(st->add_account("bench", Secret("bench-account-password")), "add_account");
    token = std::string(must(st->create_token("bench", "bench"), "create_token").reveal());
    const auto t0 = bench::Clock::now();
    for (int i = 0; i < o.services; ++i) {
      core::Change c = bench::make_change(i, acct, {registry_host, "local", 10});
      ids.push_back(c.service.id);
      must(st->create_service(c), "create_service");
    }
    f["populate_ns"] = bench::since_ns(t0);
  }
  bench::progress("agents: enrolling " + std::to_string(o.agents) + " agents");
  auto creds = enrol(o, data);

  bench::progress("agents: starting berth-controller serve and the agents");
  ControllerProcess ctl(o, data, registry_host + "=" + pki.ca_file.string());
  Arrivals arrivals;
  auto agents = start_sim_agents(creds, ctl.agent_url(), arrivals);
  const std::uint16_t api_port = ctl.api_port();
  RunningCounter running(data / "berth.db");
  std::int64_t peak_hwm = 0;
  bool results_done = false;
  if (!wait_for(
          [&] {
            peak_hwm = std::max(peak_hwm, proc_status_kib(ctl.pid(), "VmHWM:"));
            if (!results_done &&
                arrivals.results.load() >= static_cast<std::uint64_t>(o.services)) {
              results_done = true;
              f["results_ns"] = bench::since_ns(ctl.started());
            }
            return running.count() >= o.services;
          },
          o.deadline, 20ms)) {
    bench::die("agents", "not all Running within the deadline: " + std::to_string(running.count()) +
                             " of " + std::to_string(o.services));
  }
  f["running_ns"] = bench::since_ns(ctl.started());
  f["deploys_received"] = static_cast<double>(arrivals.deploys.load());
  f["hwm_running"] =
      static_cast<double>(std::max(peak_hwm, proc_status_kib(ctl.pid(), "VmHWM:"))) * 1024;

  // Dispatch latency: one PATCH (a redeploy: new revision, resolve, deploy task) to a different
  // Running service every 1/rate s; from the response to the DeployTask reaching its agent.
  const int changes = std::min(o.changes, o.services);
  bench::progress("agents: " + std::to_string(changes) + " changes at " +
                  std::to_string(static_cast<int>(o.rate)) + "/s");
  ApiClient api(api_port, token);
  {
    std::lock_guard lock(arrivals.mu);
    arrivals.deploy_at.clear();
  }
  std::vector<bench::Clock::time_point> accepted(static_cast<std::size_t>(changes));
  Samples patch_rt;
  const auto period = std::chrono::duration_cast<bench::Clock::duration>(
      std::chrono::duration<double>(1.0 / o.rate));
  const auto t0 = bench::Clock::now();
  for (int i = 0; i < changes; ++i) {
    std::this_thread::sleep_until(t0 + i * period);
    const auto s0 = bench::Clock::now();
    const unsigned code = api.patch(
        ids[static_cast<std::size_t>(i)],
        R"({"app_config": {"env": {"MODE": "production", "LOG_LEVEL": "info", "CHANGE": ")" +
            std::to_string(i) + "\"}}}");
    accepted[static_cast<std::size_t>(i)] = bench::Clock::now();
    patch_rt.add(bench::since_ns(s0));
    if (code != 200) bench::die("PATCH", "answered HTTP " + std::to_string(code));
  }
  f["changes_per_s"] = changes / (bench::since_ns(t0) / 1e9);
  Samples dispatch;
  int early = 0;
  {
    std::unique_lock lock(arrivals.mu);
    if (!arrivals.cv.wait_for(lock, 60s, [&] {
          return arrivals.deploy_at.size() >= static_cast<std::size_t>(changes);
        }))
      bench::die("dispatch", "not every change reached its agent within 60 s");
    for (int i = 0; i < changes; ++i) {
      const auto at = arrivals.deploy_at.at(ids[static_cast<std::size_t>(i)]);
      const double ns =
          std::chrono::duration<double, std::nano>(at - accepted[static_cast<std::size_t>(i)])
              .count();
      if (ns < 0) ++early;  // the task overtook the HTTP response
      dispatch.add(std::max(ns, 0.0));
    }
  }
  f["dispatch.p50"] = dispatch.p50();
  f["dispatch.p99"] = dispatch.p99();
  f["dispatch.early"] = early;
  f["patch.p50"] = patch_rt.p50();
  f["patch.p99"] = patch_rt.p99();
  // Let the redeploys finish before the last memory reading.
  wait_for([&] { return running.count() >= o.services; }, 60s, 20ms);
  f["hwm_end"] = static_cast<double>(proc_status_kib(ctl.pid(), "VmHWM:")) * 1024;
  f["rss_end"] = static_cast<double>(proc_status_kib(ctl.pid(), "VmRSS:")) * 1024;
  for (auto& a : agents) a->stop();
  ctl.stop();
  std::error_code ec;
  f["db_bytes"] = static_cast<double>(fs::file_size(data / "berth.db", ec));
  fs::remove_all(data, ec);
}

fs::path sibling(const char* name) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(name) : self.parent_path() / name;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) bench::die("usage", a + " needs a value");
      return argv[++i];
    };
    if (a == "--services")
      o.services = std::stoi(next());
    else if (a == "--agents")
      o.agents = std::stoi(next());
    else if (a == "--rate")
      o.rate = std::stod(next());
    else if (a == "--changes")
      o.changes = std::stoi(next());
    else if (a == "--dir")
      o.dir = next();
    else if (a == "--tmpfs")
      o.tmpfs = true;
    else if (a == "--controller")
      o.controller = next();
    else if (a == "--workers")
      o.workers = std::stoi(next());
    else if (a == "--controller-log-level")
      o.controller_log_level = next();
    else if (a == "--deadline")
      o.deadline = std::chrono::seconds(std::stoi(next()));
    else {
      std::fprintf(stderr,
                   "usage: berth-bench-agents [--services N] [--agents M] [--rate CHANGES/S] "
                   "[--changes K] [--dir DIR] [--tmpfs] [--controller PATH] [--workers W] "
                   "[--deadline S] [--controller-log-level L]\n");
      std::exit(2);
    }
  }
  if (o.dir.empty()) o.dir = fs::temp_directory_path();
  if (o.controller.empty()) o.controller = sibling("berth-controller");
  if (!fs::exists(o.controller)) bench::die("usage", o.controller.string() + " does not exist");
  if (o.services < 1 || o.agents < 1 || o.rate <= 0 || o.changes < 1)
    bench::die("usage", "--services, --agents, --rate and --changes must be positive");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  log::set_level(log::Level::kError);
  log::set_sink([](std::string_view) {});  // the agents' reconnect lines are not the figure
  const std::string N = bench::thousands(o.services), M = std::to_string(o.agents);

  const fs::path scratch = bench::make_temp_dir(o.dir, "agents-pki");
  const Pki pki = make_pki(scratch);
  std::atomic<std::uint64_t> heads{0};
  TlsServer registry(pki.registry, 4,
                     [&](ssl::stream<tcp::socket>& s) { serve_registry(s, heads); });
  TlsServer echo(pki.registry, 1, serve_echo);

  Figures base;
  std::size_t frame_bytes = 0;
  bench::progress("agents: protocol floor, " + N + " tasks over " + M + " agents in-process");
  protocol_floor(o, pki, frame_bytes, base);
  bench::progress("agents: empty controller with " + M + " agents");
  empty_controller(o, o.dir, pki, base);

  std::vector<std::pair<std::string, fs::path>> runs = {{"disk", o.dir}};
  if (o.tmpfs && access("/dev/shm", W_OK) == 0) runs.push_back({"tmpfs", "/dev/shm"});
  bench::Table t;
  for (const auto& [label, dir] : runs) {
    Figures f;
    const std::uint64_t heads0 = heads.load();
    const std::uint64_t conns0 = registry.connections();
    scale_run(o, dir, pki, registry.port(), f);
    Samples echo_rt = echo_round_trips(echo.port(), pki.ca.cert_pem, frame_bytes, o.echoes);
    f["registry_heads"] = static_cast<double>(heads.load() - heads0);
    f["registry_connections"] = static_cast<double>(registry.connections() - conns0);

    t.section("real protocol at scale (berth-controller serve, " + N + " services, " + M +
              " simulated agents, store on " + label + ": " + dir.string() + ")");
    t.figure("write " + N + " services to the store (before start)", f["populate_ns"], Unit::kNanos,
             "not counted below");
    t.ratio("start -> all " + N + " Running (target < 10 s)", f["running_ns"], base["floor_ns"],
            Unit::kNanos, 10, "overhead");
    t.figure("start -> last result sent by an agent", f["results_ns"], Unit::kNanos,
             bench::thousands(static_cast<int>(f["deploys_received"])) + " deploy tasks received");
    t.figure("  baseline: " + N + " tasks+results over agentlink alone", base["floor_ns"],
             Unit::kNanos, "in-process agentlink::Server, same agents");
    t.figure("registry manifest HEADs", f["registry_heads"], Unit::kCount);
    t.figure("  TLS connections the registry accepted", f["registry_connections"], Unit::kCount,
             "the controller keeps idle connections (src/registry/client.cpp)");
    t.ratio("controller peak RSS (VmHWM) at Running (target < 200 MiB)", f["hwm_running"],
            base["empty_hwm"], Unit::kBytes, 4, "overhead");
    t.figure("  baseline: VmHWM, no services, " + M + " agents connected", base["empty_hwm"],
             Unit::kBytes);
    t.figure("controller VmHWM / VmRSS after the changes", f["hwm_end"], Unit::kBytes,
             "VmRSS " + bench::format(f["rss_end"], Unit::kBytes));
    t.figure("changes/s achieved (target rate " + std::to_string(static_cast<int>(o.rate)) + ")",
             f["changes_per_s"], Unit::kPerSecond);
    t.figure("PATCH round trip p50 / p99", f["patch.p50"], Unit::kNanos,
             "p99 " + bench::format(f["patch.p99"], Unit::kNanos));
    t.ratio("dispatch latency p50 (accepted -> agent)", f["dispatch.p50"], echo_rt.p50(),
            Unit::kNanos, 20, "overhead");
    t.ratio("dispatch latency p99 (target < 10 ms)", f["dispatch.p99"], echo_rt.p99(), Unit::kNanos,
            20, "overhead");
    t.figure("  baseline: raw TLS 1.3 echo round trip p50", echo_rt.p50(), Unit::kNanos,
             std::to_string(frame_bytes) + "-byte frame; p99 " +
                 bench::format(echo_rt.p99(), Unit::kNanos));
    t.figure("tasks that reached the agent before the PATCH response", f["dispatch.early"],
             Unit::kCount, "counted as 0");
    t.figure("database file after the run", f["db_bytes"], Unit::kBytes);
  }
  std::error_code ec;
  fs::remove_all(scratch, ec);
  return 0;
}
