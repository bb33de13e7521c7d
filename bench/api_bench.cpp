// berth-bench-api: API reads against what the machine can do. A real ApiServer (2 I/O threads,
// default authentication options) over a real SqliteStore in /dev/shm, loaded by wrk over
// loopback, measuring in the same run and alternately (same wrk threads, connections, duration):
//   - nginx (Debian nginx-light, 2 workers, started here unprivileged in the foreground with its
//     own config on a loopback port) serving a static file exactly as large as the JSON body of
//     GET /app-services/{id}: the baseline for reads (target: berth >= 0.7x its requests/s),
//   - GET /healthz (no authentication),
//   - GET /app-services/{id} with HTTP Basic (scrypt once, then the verified-header cache),
//   - GET /app-services/{id} with a Bearer token (SHA-256 and one indexed lookup).
// Prints requests/s and p99 latency, the ratios against nginx, and /healthz against each
// authenticated read (what authentication and the store read cost; at most 2 expected).
//
// Usage: berth-bench-api [reads|writes] [--seconds N] [--rounds N] [--connections N]
//                        [--disk-dir DIR] [--smoke]
// --smoke: 1 round of 1 s with 2 connections (the ctest that keeps this building and running);
// exits 77 when wrk or nginx is missing. The credentials reach wrk through a Lua script in the
// temp dir, not its argv.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "api/server.h"
#include "bench_util.h"
#include "common/base64.h"
#include "common/log.h"
#include "core/app_service.h"
#include "core/revision.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"

namespace fs = std::filesystem;
using namespace berth;

namespace {

struct Options {
  int seconds = 4;
  int rounds = 3;
  int connections = 16;
  int threads = 2;  // wrk threads
  bool smoke = false;
  bool reads = true;
  bool writes = true;
  std::string disk_dir = "/var/tmp";  // writes: a directory on a real disk
};

// One wrk run: requests/s and the 99th percentile latency (wrk --latency).
struct Load {
  double per_second = 0;
  double p99_ns = 0;
  double requests = 0;
  Load& operator+=(const Load& o) {
    per_second += o.per_second;
    p99_ns += o.p99_ns;
    requests += o.requests;
    return *this;
  }
  Load mean(int n) const { return {per_second / n, p99_ns / n, requests / n}; }
};

template <class T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) bench::die(what, r.error().message);
  return std::move(r).value();
}

fs::path shm_or_tmp() {
  return fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
}

fs::path make_temp_dir(const fs::path& base = shm_or_tmp()) {
  std::string tmpl = (base / "berth-bench-api-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) bench::die("mkdtemp", "cannot create a temp dir");
  return tmpl;
}

// The service the authenticated requests read.
std::string add_service(store::SqliteStore& st, const std::string& account_id,
                        const std::string& name = "bench-app") {
  const core::UnixMillis now = 1'700'000'000'000;
  core::AppService s;
  s.id = crypto::random_uuid();
  s.account_id = account_id;
  s.name = name;
  s.plan_name = "tier-1";
  s.zone = "local";
  s.status = core::ServiceStatus::kPending;
  s.config.image_ref = "127.0.0.1:5000/acme/bench:1.0.0";
  s.config.container_port = 8080;
  s.config.env = {{"MODE", "production"}};
  s.config.health.path = "/healthz";
  s.registry_host = "127.0.0.1:5000";
  s.created_at = s.updated_at = now;
  core::Revision rev =
      must(core::make_revision(crypto::random_uuid(), s.id, 1, s.config, core::kReasonInitial, now),
           "make_revision");
  s.desired_deployment_id = rev.id;
  core::Task t;
  t.id = crypto::random_uuid();
  t.service_id = s.id;
  t.revision_id = rev.id;
  t.kind = core::TaskKind::kDeploy;
  t.state = core::TaskState::kQueued;
  t.created_at = t.updated_at = now;
  core::Change c;
  c.service = s;
  c.revision = std::move(rev);
  c.task = std::move(t);
  if (auto created = st.create_service(c); !created.ok()) {
    bench::die("create_service", created.error().message);
  }
  return s.id;
}

// A wrk script that sets one header (so the credential is not on wrk's command line).
fs::path header_script(const fs::path& dir, const std::string& name, const std::string& value) {
  const fs::path p = dir / (name + ".lua");
  std::ofstream out(p);
  out << "wrk.headers[\"Authorization\"] = \"" << value << "\"\n";
  return p;
}

// wrk's latency figures: "1.23ms", "850.00us", "2.01s".
double wrk_duration_ns(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  const std::string unit(end);
  if (unit.rfind("us", 0) == 0) return v * 1e3;
  if (unit.rfind("ms", 0) == 0) return v * 1e6;
  if (unit.rfind("s", 0) == 0) return v * 1e9;
  if (unit.rfind("m", 0) == 0) return v * 60e9;
  return v;
}

// Runs wrk and returns its Requests/sec and p99; dies when wrk fails or an answer was not 2xx.
Load run_wrk(const Options& o, const std::string& url, const fs::path& script) {
  std::string cmd = "wrk --latency -t" + std::to_string(o.threads) + " -c" +
                    std::to_string(o.connections) + " -d" + std::to_string(o.seconds) + "s";
  if (!script.empty()) cmd += " -s '" + script.string() + "'";
  cmd += " '" + url + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) bench::die("wrk", "cannot run wrk");
  std::string output;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) output += buf;
  const int rc = pclose(p);
  if (rc != 0) bench::die("wrk", output);
  if (output.find("Non-2xx") != std::string::npos) bench::die("wrk: non-2xx answers", output);
  Load l;
  const auto at = output.find("Requests/sec:");
  if (at == std::string::npos) bench::die("wrk: no Requests/sec", output);
  l.per_second = std::strtod(output.c_str() + at + 13, nullptr);
  const auto p99 = output.find(" 99%");
  if (p99 == std::string::npos) bench::die("wrk: no 99% latency", output);
  std::size_t v = output.find_first_not_of(' ', p99 + 4);
  l.p99_ns = wrk_duration_ns(output.substr(v, output.find('\n', v) - v));
  // "  1234 requests in 4.00s, ..."
  const auto req = output.find(" requests in ");
  if (req == std::string::npos) bench::die("wrk: no request count", output);
  const auto start = output.find_last_of('\n', req);
  l.requests = std::strtod(output.c_str() + (start == std::string::npos ? 0 : start + 1), nullptr);
  return l;
}
// The API under test over a fresh SqliteStore in `dir`/data: account "bench" with a random
// password, one service, and the ApiServer (2 threads on loopback, a fixed clock) started. The
// server is declared after the store, so it stops first.
struct ApiUnderTest {
  std::unique_ptr<store::SqliteStore> store;
  std::string password;
  std::string account;
  std::string id;  // the service
  std::unique_ptr<api::ApiServer> server;
  std::string base;  // http://127.0.0.1:PORT

  std::string basic() const { return "Basic " + base64::encode("bench:" + password); }
};

ApiUnderTest start_api(const fs::path& dir) {
  ApiUnderTest a;
  a.store = must(store::SqliteStore::open(dir / "data"), "SqliteStore::open");
  a.password = "bench-password-" + crypto::random_hex(8);
  a.account = must(a.store->add_account("bench", Secret(a.password)), "add_account");
  a.id = add_service(*a.store, a.account);
  api::ApiOptions opts;
  opts.listen_host = "127.0.0.1";
  opts.threads = 2;
  opts.new_id = [] { return crypto::random_uuid(); };
  a.server = std::make_unique<api::ApiServer>(
      opts, *a.store, [] { return core::UnixMillis{1'700'000'000'000}; },
      [](const std::string&) {});
  if (auto s = a.server->start(); !s.ok()) bench::die("ApiServer::start", s.error().message);
  a.base = "http://" + a.server->bound_address();
  return a;
}

// A run of one second, not counted: the first Basic request pays scrypt once (then the
// verified-header cache answers), and the server faults its pages in.
void warm_up(Options o, const std::string& url, const fs::path& script) {
  o.seconds = 1;
  run_wrk(o, url, script);
}

std::string find_nginx() {
  if (bench::on_path("nginx")) return "nginx";
  for (const char* p : {"/usr/sbin/nginx", "/sbin/nginx"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

// nginx in the foreground (daemon off, master + 2 workers like the API's 2 threads), with its
// config, pid, logs and temp paths in `dir`, serving `dir`/www on 127.0.0.1:`port`. Stopped
// (SIGQUIT, then SIGKILL) when destroyed.
class Nginx {
 public:
  Nginx(const std::string& binary, const fs::path& dir, int port) {
    const fs::path www = dir / "www";
    fs::create_directories(www);
    std::ofstream conf(dir / "nginx.conf");
    conf << "worker_processes 2;\n"
         << "pid " << (dir / "nginx.pid").string() << ";\n"
         << "error_log " << (dir / "error.log").string() << " warn;\n"
         << "events { worker_connections 1024; }\n"
         << "http {\n"
         << "  access_log off;\n"
         << "  default_type application/json;\n"
         << "  keepalive_requests 1000000;\n"
         << "  client_body_temp_path " << (dir / "tmp").string() << ";\n"
         << "  proxy_temp_path " << (dir / "tmp").string() << ";\n"
         << "  fastcgi_temp_path " << (dir / "tmp").string() << ";\n"
         << "  uwsgi_temp_path " << (dir / "tmp").string() << ";\n"
         << "  scgi_temp_path " << (dir / "tmp").string() << ";\n"
         << "  server {\n"
         << "    listen 127.0.0.1:" << port << ";\n"
         << "    root " << www.string() << ";\n"
         << "  }\n"
         << "}\n";
    conf.close();
    fs::create_directories(dir / "tmp");
    const std::string conf_path = (dir / "nginx.conf").string();
    const std::string err_path = (dir / "error.log").string();
    const std::string prefix = dir.string() + "/";
    pid_ = fork();
    if (pid_ < 0) bench::die("nginx", "fork failed");
    if (pid_ == 0) {
      execlp(binary.c_str(), binary.c_str(), "-p", prefix.c_str(), "-e", err_path.c_str(), "-c",
             conf_path.c_str(), "-g", "daemon off;", static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;
  ~Nginx() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGQUIT);
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      usleep(10'000);
    }
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  // Whether nginx still runs (it exits at once on a bad config or a taken port).
  bool running() { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    bench::die("port", "cannot bind a loopback port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// Waits until something accepts connections on 127.0.0.1:port (nginx binds after it forks).
bool wait_listening(int port, Nginx& nginx) {
  for (int i = 0; i < 500; ++i) {
    if (!nginx.running()) return false;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return true;
    usleep(10'000);
  }
  return false;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> int {
      if (i + 1 >= argc) bench::die("arguments", a + " needs a value");
      return std::atoi(argv[++i]);
    };
    if (a == "--seconds")
      o.seconds = next();
    else if (a == "--rounds")
      o.rounds = next();
    else if (a == "--connections")
      o.connections = next();
    else if (a == "--smoke")
      o.smoke = true;
    else if (a == "--disk-dir" && i + 1 < argc)
      o.disk_dir = argv[++i];
    else if (a == "reads")
      o.writes = false;
    else if (a == "writes")
      o.reads = false;
    else
      bench::die("arguments", "unknown argument " + a);
  }
  if (o.smoke) {
    o.seconds = 1;
    o.rounds = 1;
    o.connections = 2;
  }
  return o;
}

}  // namespace

int reads(const Options& o) {
  const std::string nginx_bin = find_nginx();
  if (!bench::on_path("wrk") || nginx_bin.empty()) {
    const std::string why =
        "wrk and nginx are needed (hack/install-deps.sh installs wrk and nginx-light)";
    if (o.smoke) {
      std::fprintf(stderr, "bench: skipped: %s\n", why.c_str());
      return bench::kSkipped;
    }
    bench::die("wrk/nginx", why);
  }
  // Per-request info lines would measure the terminal; nginx runs with access_log off alike.
  log::set_level(log::Level::kWarn);
  const fs::path dir = make_temp_dir();
  Load nginx, healthz, basic, bearer;
  std::size_t body_size = 0;
  {
    ApiUnderTest served = start_api(dir);
    const Secret token = must(served.store->create_token("bench", "bench"), "create_token");

    // The static file: exactly the bytes GET /app-services/{id} answers (the handler's encoding).
    const core::AppService stored =
        must(served.store->get_service(served.account, served.id), "get_service");
    const std::string body =
        core::to_json(stored).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    body_size = body.size();
    const fs::path nginx_dir = dir / "nginx";
    fs::create_directories(nginx_dir / "www");
    std::ofstream(nginx_dir / "www" / "app.json", std::ios::binary) << body;
    // Workers of an nginx started by root run as nobody: they must reach the file.
    ::chmod(dir.c_str(), 0755);
    for (const auto& p : {nginx_dir, nginx_dir / "www"}) ::chmod(p.c_str(), 0755);
    ::chmod((nginx_dir / "www" / "app.json").c_str(), 0644);
    const int nginx_port = free_loopback_port();
    Nginx server_nginx(nginx_bin, nginx_dir, nginx_port);
    if (!wait_listening(nginx_port, server_nginx)) {
      std::ifstream err(nginx_dir / "error.log");
      std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
      bench::die("nginx did not start", text);
    }
    const std::string nginx_url = "http://127.0.0.1:" + std::to_string(nginx_port) + "/app.json";

    const std::string app_url = served.base + "/app-services/" + served.id;
    const fs::path basic_lua = header_script(dir, "basic", served.basic());
    const fs::path bearer_lua =
        header_script(dir, "bearer", "Bearer " + std::string(token.reveal()));

    bench::progress("wrk: " + std::to_string(o.rounds) + " rounds of 4 x " +
                    std::to_string(o.seconds) + " s, 2 threads, " + std::to_string(o.connections) +
                    " connections");
    if (!o.smoke) {
      warm_up(o, nginx_url, {});
      warm_up(o, app_url, basic_lua);
      warm_up(o, app_url, bearer_lua);
    }
    for (int r = 0; r < o.rounds; ++r) {
      nginx += run_wrk(o, nginx_url, {});
      healthz += run_wrk(o, served.base + "/healthz", {});
      basic += run_wrk(o, app_url, basic_lua);
      bearer += run_wrk(o, app_url, bearer_lua);
    }
    served.server->stop();
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  nginx = nginx.mean(o.rounds);
  healthz = healthz.mean(o.rounds);
  basic = basic.mean(o.rounds);
  bearer = bearer.mean(o.rounds);

  using bench::Unit;
  bench::Table t{"API reads (mean of alternating wrk runs)"};
  t.section("GET over loopback, 2 API threads / 2 nginx workers, wrk -t2 -c" +
            std::to_string(o.connections) + " -d" + std::to_string(o.seconds) +
            "s on the same cores");
  t.figure("nginx static file of the same size (" + std::to_string(body_size) + " B)",
           nginx.per_second, Unit::kPerSecond);
  t.figure("GET /healthz (no authentication)", healthz.per_second, Unit::kPerSecond);
  t.ratio_at_least("GET /app-services/{id} Basic vs nginx", basic.per_second, nginx.per_second,
                   Unit::kPerSecond, 0.7);
  t.ratio_at_least("GET /app-services/{id} Bearer vs nginx", bearer.per_second, nginx.per_second,
                   Unit::kPerSecond, 0.7);
  // A p99 more than 1/0.7 of nginx's is the latency side of missing the throughput target.
  t.ratio("p99 Basic vs nginx", basic.p99_ns, nginx.p99_ns, Unit::kNanos, 1.0 / 0.7, "good");
  t.ratio("p99 Bearer vs nginx", bearer.p99_ns, nginx.p99_ns, Unit::kNanos, 1.0 / 0.7, "good");
  // healthz / authenticated: how many times slower an authenticated read is (<= 2 expected).
  t.ratio("/healthz vs Basic GET (slowdown)", healthz.per_second, basic.per_second,
          Unit::kPerSecond, 2.0, "good");
  t.ratio("/healthz vs Bearer GET (slowdown)", healthz.per_second, bearer.per_second,
          Unit::kPerSecond, 2.0, "good");
  return 0;
}

// A wrk script that sends PATCH requests, each with a new env value (every one a redeploy: a
// new revision and deploy task in one transaction), with the credential in a header.
fs::path patch_script(const fs::path& dir, const std::string& authorization) {
  const fs::path p = dir / "patch.lua";
  std::ofstream out(p);
  out << "local n = 0\n"
      << "wrk.method = \"PATCH\"\n"
      << "wrk.headers[\"Authorization\"] = \"" << authorization << "\"\n"
      << "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
      << "request = function()\n"
      << "  n = n + 1\n"
      << "  return wrk.format(nil, nil, nil, '{\"app_config\":{\"env\":{\"BENCH_N\":\"' .. n .. "
         "'\"}}}')\n"
      << "end\n";
  return p;
}

// berth-bench-sqlite's transactions per second for `transactions` single-row commits in `dir`.
double raw_sqlite_per_second(const fs::path& dir, double transactions);

struct WriteFigures {
  double patches_per_second = 0;
  double p99_ns = 0;
  double raw_per_second = 0;
  double transactions = 0;
  double commits_per_patch = 0;   // store commits (SqliteStore::stats) per counted PATCH
  double compiles_per_patch = 0;  // SQL statements compiled per counted PATCH
};

// PATCH redeploys over HTTP (wrk, 1 connection: sequential, so each is its own transaction and
// none is refused as concurrent) against the store in `base`, then berth-bench-sqlite doing as
// many single-row transactions in the same directory.
WriteFigures writes_on(const Options& o, const fs::path& base) {
  const fs::path dir = make_temp_dir(base);
  WriteFigures f;
  {
    ApiUnderTest served = start_api(dir);
    const std::string app_url = served.base + "/app-services/" + served.id;
    const fs::path lua = patch_script(dir, served.basic());
    Options w = o;
    w.threads = 1;
    w.connections = 1;
    warm_up(w, app_url, header_script(dir, "warm", served.basic()));
    const store::StoreStats before = served.store->stats();
    const Load l = run_wrk(w, app_url, lua);
    served.server->stop();
    const store::StoreStats after = served.store->stats();
    if (l.requests > 0) {
      f.commits_per_patch = static_cast<double>(after.commits - before.commits) / l.requests;
      f.compiles_per_patch =
          static_cast<double>(after.statements_prepared - before.statements_prepared) / l.requests;
    }
    // Every counted answer was a committed redeploy (a response can be cut off at the end, so
    // one more revision than counted is fine).
    const auto revisions = must(served.store->list_revisions(served.id, true), "list_revisions");
    const double made = static_cast<double>(revisions.size()) - 1;
    if (made < l.requests || made > l.requests + 2) {
      bench::die("writes", "wrk counted " + std::to_string(l.requests) +
                               " PATCHes, the store has " + std::to_string(made) +
                               " new revisions");
    }
    f.patches_per_second = l.per_second;
    f.p99_ns = l.p99_ns;
    f.transactions = l.requests;
  }
  f.raw_per_second = raw_sqlite_per_second(dir, f.transactions);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return f;
}

// Group commit: kThreads writers on their own services, each writing the runtime-owned fields
// (update_observed: one UPDATE per write, like the raw program's one INSERT) as fast as the
// store acknowledges, for `seconds`; against raw single-row transactions, one at a time.
struct ConcurrentFigures {
  double writes_per_second = 0;
  double writes_per_commit = 0;
  double raw_per_second = 0;
  double writes = 0;
};

ConcurrentFigures concurrent_on(const Options& o, const fs::path& base) {
  constexpr int kThreads = 8;
  const fs::path dir = make_temp_dir(base);
  ConcurrentFigures f;
  {
    auto st = must(store::SqliteStore::open(dir / "data"), "SqliteStore::open");
    const std::string account = must(
        st->add_account("bench", Secret("bench-password-" + crypto::random_hex(8))), "add_account");
    std::vector<core::AppService> services;
    for (int i = 0; i < kThreads; ++i) {
      const std::string id = add_service(*st, account, "bench-app-" + std::to_string(i));
      services.push_back(must(st->get_service(account, id), "get_service"));
    }
    const store::StoreStats before = st->stats();
    std::atomic<bool> stop{false};
    std::atomic<long> done{0};
    std::vector<std::thread> threads;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        core::AppService s = services[i];
        for (long n = 0; !stop.load(std::memory_order_relaxed); ++n) {
          s.conditions = {{"Ready", "False", "Progressing", "write " + std::to_string(n), n}};
          s.updated_at = n;
          if (!st->update_observed(s).ok()) bench::die("update_observed", "a write failed");
          done.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(o.seconds));
    stop = true;
    for (auto& t : threads) t.join();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const store::StoreStats after = st->stats();
    f.writes = static_cast<double>(done.load());
    f.writes_per_second = f.writes / secs;
    const auto commits = static_cast<double>(after.commits - before.commits);
    f.writes_per_commit = commits > 0 ? f.writes / commits : 0;
  }
  // A rate: 1,000 raw transactions measure it as well as the tens of thousands the group wrote
  // (each costs an fsync on disk).
  f.raw_per_second = raw_sqlite_per_second(dir, std::min(f.writes, 1000.0));
  std::error_code ec;
  fs::remove_all(dir, ec);
  return f;
}

double raw_sqlite_per_second(const fs::path& dir, double transactions) {
  // The plain program next to this one, same directory, same number of transactions.
  const fs::path raw = fs::read_symlink("/proc/self/exe").parent_path() / "berth-bench-sqlite";
  const std::string cmd = "'" + raw.string() + "' --dir '" + dir.string() + "' --count " +
                          std::to_string(static_cast<long>(transactions));
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) bench::die("berth-bench-sqlite", "cannot run " + raw.string());
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) output += buf;
  if (pclose(p) != 0) bench::die("berth-bench-sqlite", output);
  const auto at = output.find("per_second ");
  if (at == std::string::npos) bench::die("berth-bench-sqlite: no figure", output);
  return std::strtod(output.c_str() + at + 11, nullptr);
}

int writes(const Options& o) {
  if (!bench::on_path("wrk")) {
    if (o.smoke) return bench::kSkipped;
    bench::die("wrk", "wrk is not installed (hack/install-deps.sh installs it)");
  }
  log::set_level(log::Level::kWarn);
  std::vector<std::pair<std::string, fs::path>> places{{"disk " + o.disk_dir, o.disk_dir}};
  if (!o.smoke) places.emplace_back("tmpfs /dev/shm", shm_or_tmp());
  bench::Table t{"Durable writes"};
  t.section("PATCH redeploys over HTTP (wrk -t1 -c1 -d" + std::to_string(o.seconds) +
            "s) vs as many raw single-row SQLite transactions");
  for (const auto& [name, base] : places) {
    bench::progress("writes: " + name);
    const WriteFigures f = writes_on(o, base);
    t.ratio_at_least("PATCH/s vs raw sqlite3 tx/s, " + name, f.patches_per_second, f.raw_per_second,
                     bench::Unit::kPerSecond, 0.5);
    t.figure("  PATCH p99, " + name, f.p99_ns, bench::Unit::kNanos,
             std::to_string(static_cast<long>(f.transactions)) + " PATCHes");
    // What the store did per PATCH: one commit each, and no SQL compiled once warm.
    char per[96];
    std::snprintf(per, sizeof per, "%.2f commits, %.3f SQL compiles per PATCH", f.commits_per_patch,
                  f.compiles_per_patch);
    t.figure("  store work per PATCH, " + name, f.commits_per_patch, bench::Unit::kCount, per);
  }
  t.section("8 threads writing their own services through one store (group commit), " +
            std::to_string(o.seconds) + " s, vs raw single-row transactions");
  for (const auto& [name, base] : places) {
    bench::progress("concurrent writes: " + name);
    const ConcurrentFigures f = concurrent_on(o, base);
    t.ratio_at_least("store writes/s vs raw sqlite3 tx/s, " + name, f.writes_per_second,
                     f.raw_per_second, bench::Unit::kPerSecond, 0.5);
    char per[64];
    std::snprintf(per, sizeof per, "%.1f writes per commit", f.writes_per_commit);
    t.figure("  writes per commit, " + name, f.writes_per_commit, bench::Unit::kCount, per);
  }
  return 0;
}

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  int rc = 0;
  if (o.reads) rc = reads(o);
  if (o.writes && (rc == 0 || rc == bench::kSkipped)) {
    const int w = writes(o);
    if (w != 0) rc = w;
  }
  return rc;
}
