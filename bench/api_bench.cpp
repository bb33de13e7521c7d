// berth-bench-api: what authentication costs per request. A real ApiServer (2 I/O threads,
// default authentication options) over a real SqliteStore in /dev/shm, loaded by wrk over
// loopback, measuring in the same run and alternately:
//   - GET /healthz (no authentication: the baseline),
//   - GET /app-services/{id} with HTTP Basic (scrypt once, then the verified-header cache),
//   - GET /app-services/{id} with a Bearer token (SHA-256 and one indexed lookup).
// Prints requests/s and the ratio of /healthz to each (target: at most 2).
//
// Usage: berth-bench-api [--seconds N] [--rounds N] [--connections N]
// The credentials reach wrk through a Lua script in the temp dir, not its argv.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "api/server.h"
#include "bench_util.h"
#include "common/base64.h"
#include "common/log.h"
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
};

template <class T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) bench::die(what, r.error().message);
  return std::move(r).value();
}

fs::path make_temp_dir() {
  const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  std::string tmpl = (base / "berth-bench-api-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) bench::die("mkdtemp", "cannot create a temp dir");
  return tmpl;
}

// The service the authenticated requests read.
std::string add_service(store::SqliteStore& st, const std::string& account_id) {
  const core::UnixMillis now = 1'700'000'000'000;
  core::AppService s;
  s.id = crypto::random_uuid();
  s.account_id = account_id;
  s.name = "bench-app";
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

// Runs wrk and returns its Requests/sec; dies when wrk fails or a response was not 2xx.
double run_wrk(const Options& o, const std::string& url, const fs::path& script) {
  std::string cmd =
      "wrk -t2 -c" + std::to_string(o.connections) + " -d" + std::to_string(o.seconds) + "s";
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
  const auto at = output.find("Requests/sec:");
  if (at == std::string::npos) bench::die("wrk: no Requests/sec", output);
  return std::strtod(output.c_str() + at + 13, nullptr);
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
    else
      bench::die("arguments", "unknown argument " + a);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (std::system("command -v wrk >/dev/null 2>&1") != 0) {
    bench::die("wrk", "wrk is not installed (hack/install-deps.sh installs it)");
  }
  // Per-request info lines would measure the terminal; both sides skip them alike.
  log::set_level(log::Level::kWarn);
  const fs::path dir = make_temp_dir();
  double healthz = 0, basic = 0, bearer = 0;
  {
    auto st = must(store::SqliteStore::open(dir / "data"), "SqliteStore::open");
    const std::string password = "bench-password-" + crypto::random_hex(8);
    const std::string account = must(st->add_account("bench", Secret(password)), "add_account");
    const Secret token = must(st->create_token("bench", "bench"), "create_token");
    const std::string id = add_service(*st, account);

    api::ApiOptions opts;
    opts.listen_host = "127.0.0.1";
    opts.threads = 2;
    opts.new_id = [] { return crypto::random_uuid(); };
    api::ApiServer server(
        opts, *st, [] { return core::UnixMillis{1'700'000'000'000}; }, [](const std::string&) {});
    if (auto s = server.start(); !s.ok()) bench::die("ApiServer::start", s.error().message);
    const std::string base = "http://" + server.bound_address();
    const fs::path basic_lua =
        header_script(dir, "basic", "Basic " + base64::encode("bench:" + password));
    const fs::path bearer_lua =
        header_script(dir, "bearer", "Bearer " + std::string(token.reveal()));

    bench::progress("wrk: " + std::to_string(o.rounds) + " rounds of 3 x " +
                    std::to_string(o.seconds) + " s, " + std::to_string(o.connections) +
                    " connections");
    for (int r = 0; r < o.rounds; ++r) {
      healthz += run_wrk(o, base + "/healthz", {});
      basic += run_wrk(o, base + "/app-services/" + id, basic_lua);
      bearer += run_wrk(o, base + "/app-services/" + id, bearer_lua);
    }
    server.stop();
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  healthz /= o.rounds;
  basic /= o.rounds;
  bearer /= o.rounds;

  bench::Table t{"API authentication (requests/s, mean of alternating wrk runs)"};
  t.section("GET over loopback, 2 API threads, wrk on the same cores");
  t.figure("GET /healthz (no authentication)", healthz, bench::Unit::kPerSecond);
  t.figure("GET /app-services/{id}, Basic", basic, bench::Unit::kPerSecond);
  t.figure("GET /app-services/{id}, Bearer", bearer, bench::Unit::kPerSecond);
  // healthz / authenticated: how many times slower an authenticated read is (target <= 2).
  t.ratio("/healthz vs Basic GET (slowdown)", healthz, basic, bench::Unit::kPerSecond, 2.0, "good");
  t.ratio("/healthz vs Bearer GET (slowdown)", healthz, bearer, bench::Unit::kPerSecond, 2.0,
          "good");
  return 0;
}
