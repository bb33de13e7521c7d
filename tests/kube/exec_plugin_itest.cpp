// Exec credential plugins run for real: a /bin/sh script the test writes prints the
// ExecCredential the test chose, and counts its runs in a file.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/log.h"
#include "kube/config.h"
#include "kube/transport.h"
#include "kube_itest_support.h"
#include "support/secret_scan.h"
#include "tls_test_server.h"

extern char** environ;

using namespace berth;
using namespace berth::kube;
using namespace berth::kube::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr const char* kV1 = "client.authentication.k8s.io/v1";

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  const auto days = std::chrono::floor<std::chrono::days>(secs);
  const std::chrono::year_month_day ymd(days);
  const std::chrono::hh_mm_ss hms(secs - days);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02ldZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), long(hms.hours().count()),
                long(hms.minutes().count()), long(hms.seconds().count()));
  return buf;
}

// A plugin in a temp dir: `answer()` sets what it prints next, `runs()` counts its runs.
class Plugin {
 public:
  Plugin() : dir_(temp_.path) { script("cat '" + (dir_ / "answer.json").string() + "'"); }
  // The script body after the run counter; it runs with /bin/sh.
  void script(const std::string& body) {
    const fs::path path = dir_ / "plugin.sh";
    std::ofstream(path, std::ios::trunc)
        << "#!/bin/sh\necho run >> '" << (dir_ / "runs").string() << "'\n"
        << "printf '%s' \"$KUBERNETES_EXEC_INFO\" > '" << (dir_ / "info.json").string() << "'\n"
        << "printf '%s' \"$REGION\" > '" << (dir_ / "region").string() << "'\n"
        << body << "\n";
    fs::permissions(path, fs::perms::owner_all);
  }
  void answer(const nlohmann::json& status) {
    std::ofstream(dir_ / "answer.json", std::ios::trunc) << nlohmann::json{
        {"apiVersion", kV1},
        {"kind", "ExecCredential"},
        {"status", status}}.dump();
  }
  int runs() const {
    std::ifstream in(dir_ / "runs");
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }
  nlohmann::json info() const { return nlohmann::json::parse(read(dir_ / "info.json")); }
  std::string region() const { return read(dir_ / "region"); }

  ExecConfig config() const {
    ExecConfig e;
    e.command = (dir_ / "plugin.sh").string();
    e.api_version = kV1;
    e.interactive_mode = "Never";
    e.env = {{"REGION", "eu-1"}};
    return e;
  }

 private:
  TempDir temp_;
  const fs::path& dir_;
};

ClusterConfig config_for(const TlsTestServer& server, const Plugin& plugin) {
  ClusterConfig c;
  c.server = server.server();
  c.ca_pem = server.pki().ca.cert_pem;
  c.origin = "test";
  c.exec = plugin.config();
  return c;
}

std::unique_ptr<Transport> transport(ClusterConfig config) {
  TransportOptions options;
  options.qps = 0;
  auto t = make_transport(std::move(config), options);
  REQUIRE(t.ok());
  return std::move(*t);
}

Request get(std::chrono::milliseconds timeout = 10s) {
  Request r;
  r.target = "/api";
  r.timeout = timeout;
  return r;
}

// Answers 200 to the accepted token, 401 to anything else.
struct Gate {
  std::mutex mu;
  std::string accepted;
  void accept(const std::string& token) {
    std::lock_guard lock(mu);
    accepted = "Bearer " + token;
  }
  TlsTestServer::Handler handler() {
    return [this](const http::request<http::string_body>& req, Exchange& ex) {
      std::lock_guard lock(mu);
      ex.respond(req[http::field::authorization] == accepted ? 200 : 401, "{}");
    };
  }
};

}  // namespace

TEST_CASE("an exec plugin's token is sent and cached until it expires", "[kube][exec]") {
  Gate gate;
  gate.accept("exec-token-1");
  TlsTestServer server(gate.handler());
  Plugin plugin;
  plugin.answer({{"token", "exec-token-1"},
                 {"expirationTimestamp", rfc3339(std::chrono::system_clock::now() + 1h)}});
  auto t = transport(config_for(server, plugin));
  for (int i = 0; i < 3; ++i) REQUIRE(t->send(get())->status == 200);
  CHECK(plugin.runs() == 1);
  CHECK(server.seen().back().authorization == "Bearer exec-token-1");
}

TEST_CASE("an expired exec credential runs the plugin again", "[kube][exec]") {
  Gate gate;
  gate.accept("short-lived");
  TlsTestServer server(gate.handler());
  Plugin plugin;
  plugin.answer({{"token", "short-lived"},
                 {"expirationTimestamp", rfc3339(std::chrono::system_clock::now() - 1s)}});
  auto t = transport(config_for(server, plugin));
  for (int i = 0; i < 3; ++i) REQUIRE(t->send(get())->status == 200);
  CHECK(plugin.runs() == 3);
}

TEST_CASE("a 401 runs the plugin again once and retries with its new token", "[kube][exec]") {
  Gate gate;
  gate.accept("t1");
  TlsTestServer server(gate.handler());
  Plugin plugin;
  plugin.answer({{"token", "t1"}});  // no expiry: cached until the server refuses it
  auto t = transport(config_for(server, plugin));
  REQUIRE(t->send(get())->status == 200);
  REQUIRE(t->send(get())->status == 200);
  CHECK(plugin.runs() == 1);

  gate.accept("t2");
  plugin.answer({{"token", "t2"}});
  REQUIRE(t->send(get())->status == 200);
  CHECK(plugin.runs() == 2);
  auto seen = server.seen();
  REQUIRE(seen.size() == 4);
  CHECK(seen[2].authorization == "Bearer t1");
  CHECK(seen[3].authorization == "Bearer t2");

  // A plugin that keeps returning a refused token: one re-run, one retry, then the 401.
  gate.accept("t3");
  auto refused = t->send(get());
  REQUIRE(refused.ok());
  CHECK(refused->status == 401);
  CHECK(plugin.runs() == 3);
}

TEST_CASE("the plugin gets KUBERNETES_EXEC_INFO and its env, cluster info only when asked",
          "[kube][exec]") {
  Gate gate;
  gate.accept("t");
  TlsTestServer server(gate.handler());
  Plugin plugin;
  plugin.answer({{"token", "t"}});
  ClusterConfig config = config_for(server, plugin);
  REQUIRE(transport(config)->send(get())->status == 200);
  CHECK(plugin.info() == nlohmann::json{{"apiVersion", kV1},
                                        {"kind", "ExecCredential"},
                                        {"spec", {{"interactive", false}}}});
  CHECK(plugin.region() == "eu-1");
  // Nothing of the plugin's environment leaked into ours.
  CHECK(::getenv("KUBERNETES_EXEC_INFO") == nullptr);
  CHECK(::getenv("REGION") == nullptr);

  config.exec->provide_cluster_info = true;
  REQUIRE(transport(config)->send(get())->status == 200);
  const auto info = plugin.info();
  CHECK(info["spec"]["interactive"] == false);
  CHECK(info["spec"]["cluster"]["server"] == server.server());
  CHECK(info["spec"]["cluster"].contains("certificate-authority-data"));
}

TEST_CASE("a plugin's client certificate is presented to the server", "[kube][exec]") {
  TlsTestServer server(
      [](const http::request<http::string_body>&, Exchange& ex) { ex.respond(200, "{}"); },
      /*require_client_cert=*/true);
  Plugin plugin;
  plugin.answer({{"clientCertificateData", server.pki().client.cert_pem},
                 {"clientKeyData", std::string(server.pki().client.key_pem.reveal())}});
  auto r = transport(config_for(server, plugin))->send(get());
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(server.seen().back().client_cn == "berth-client");
  CHECK(server.seen().back().authorization.empty());
}

TEST_CASE("a failing plugin is kUnauthenticated and its stderr reaches the log trimmed",
          "[kube][exec]") {
  TlsTestServer server(
      [](const http::request<http::string_body>&, Exchange& ex) { ex.respond(200, "{}"); });
  Plugin plugin;
  plugin.script("echo '  please run login first  ' >&2\nexit 3");
  LogCapture logs;
  auto r = transport(config_for(server, plugin))->send(get());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kUnauthenticated);
  CHECK_THAT(r.error().message, Catch::EndsWith("plugin.sh failed with exit code 3"));
  CHECK_THAT(logs.all(), Catch::Contains("\"stderr\":\"please run login first\""));
  CHECK(server.seen().empty());
}

TEST_CASE("a plugin whose output is not an ExecCredential is kUnauthenticated", "[kube][exec]") {
  TlsTestServer server(
      [](const http::request<http::string_body>&, Exchange& ex) { ex.respond(200, "{}"); });
  Plugin plugin;
  plugin.script("echo 'hello'");
  auto r = transport(config_for(server, plugin))->send(get());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kUnauthenticated);
  CHECK_THAT(r.error().message, Catch::EndsWith("plugin.sh: its output is not JSON"));
}

TEST_CASE("a plugin that hangs is killed at the request's deadline", "[kube][exec]") {
  TlsTestServer server(
      [](const http::request<http::string_body>&, Exchange& ex) { ex.respond(200, "{}"); });
  Plugin plugin;
  plugin.script("exec sleep 600");
  auto r = transport(config_for(server, plugin))->send(get(500ms));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kDeadlineExceeded);
  CHECK_THAT(r.error().message, Catch::Contains("did not finish in time"));
}

TEST_CASE("a plugin's token appears in no log line and not in our environment", "[kube][exec]") {
  const std::string token = "canary-\"tok\\en-7f3a9c";
  Gate gate;
  gate.accept("other");  // every request is refused: the 401 path logs too
  TlsTestServer server(gate.handler());
  Plugin plugin;
  plugin.answer({{"token", token}});
  LogCapture logs;
  auto r = transport(config_for(server, plugin))->send(get());
  REQUIRE(r.ok());
  CHECK(r->status == 401);
  berth::testing::SecretScan scan(token);
  CHECK(scan.lines_in(logs.all()).empty());
  for (char** e = environ; *e != nullptr; ++e) CHECK(scan.find_in(*e).empty());
}

TEST_CASE("an exec plugin from a kubeconfig runs end to end", "[kube][exec]") {
  Gate gate;
  gate.accept("from-kubeconfig");
  TlsTestServer server(gate.handler());
  Plugin plugin;
  plugin.answer({{"token", "from-kubeconfig"}});
  TempDir temp;
  const fs::path& dir = temp.path;
  std::ofstream(dir / "ca.crt") << server.pki().ca.cert_pem;
  std::ofstream(dir / "config")
      << "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
         "clusters:\n- name: c\n  cluster:\n    server: "
      << server.server()
      << "\n    certificate-authority: ca.crt\n"
         "users:\n- name: u\n  user:\n    exec:\n"
         "      apiVersion: client.authentication.k8s.io/v1\n"
         "      command: "
      << plugin.config().command
      << "\n      interactiveMode: Never\n"
         "      env:\n      - name: REGION\n        value: eu-1\n"
         "contexts:\n- name: t\n  context:\n    cluster: c\n    user: u\n";
  LoadOptions options;
  options.kubeconfig = (dir / "config").string();
  auto config = load_config(options);
  REQUIRE(config.ok());
  auto r = transport(*config)->send(get());
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(plugin.region() == "eu-1");
}

TEST_CASE("the test API server: an exec plugin's token authenticates, expiry and 401 re-run it",
          "[kube][exec][apiserver]") {
  BERTH_START_KUBE_API_SERVER(api);
  api.set_token("exec-user", "exec-1");
  Plugin plugin;
  plugin.answer({{"token", "exec-1"},
                 {"expirationTimestamp", rfc3339(std::chrono::system_clock::now() - 1s)}});
  ClusterConfig config;
  config.server = api.server();
  config.ca_pem = read(api.ca_file());
  config.origin = "test API server";
  config.exec = plugin.config();
  auto t = transport(config);
  REQUIRE(t->send(get())->status == 200);
  REQUIRE(t->send(get())->status == 200);
  CHECK(plugin.runs() == 2);  // expired at once: every request runs it

  plugin.answer({{"token", "exec-1"}});  // no expiry: cached
  REQUIRE(t->send(get())->status == 200);
  REQUIRE(t->send(get())->status == 200);
  CHECK(plugin.runs() == 3);

  api.set_token("exec-user", "exec-2");
  api.remove_token("exec-1");
  plugin.answer({{"token", "exec-2"}});
  auto r = t->send(get());
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(plugin.runs() == 4);
}
