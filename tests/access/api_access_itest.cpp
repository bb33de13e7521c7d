// Who reaches what through the REST API, over real loopback sockets with a real SqliteStore:
// every route as the wrong account, wrong Bearer tokens slowed as wrong passwords are, and the
// TLS versions and cipher suites the API accepts, probed with openssl s_client (a TLS client
// berth did not write).
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "api/server.h"
#include "common/base64.h"
#include "common/log.h"
#include "crypto/certs.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "support/secret_scan.h"
#include "support/skip.h"

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using berth::Secret;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string kAccessCanary = "ghp_ACCESS_CANARY_\"7e1\\b";

struct AccessTempDir {
  fs::path path;
  AccessTempDir() {
    std::string tmpl = (fs::temp_directory_path() / "berth-access-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~AccessTempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct AccessLogs {
  std::mutex mu;
  std::vector<std::string> lines;
  AccessLogs() {
    berth::log::set_sink([this](std::string_view line) {
      std::lock_guard lock(mu);
      lines.emplace_back(line);
    });
  }
  ~AccessLogs() { berth::log::set_sink({}); }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mu);
    return lines;
  }
};

struct AccessReply {
  int status = 0;
  std::string retry_after;
  std::string body;
  std::string headers;  // every header line, for the leak checks
  std::string error;
};

std::string access_basic(const std::string& user, const std::string& password) {
  return "Basic " + berth::base64::encode(user + ":" + password);
}

// One request on a fresh connection from `source` (a loopback address) to 127.0.0.1:port.
AccessReply access_request(std::uint16_t port, const std::string& method, const std::string& target,
                           const std::string& authorization, const std::string& body = {},
                           const std::string& source = "127.0.0.1") {
  AccessReply out;
  try {
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    auto& sock = stream.socket();
    sock.open(asio::ip::tcp::v4());
    sock.bind(asio::ip::tcp::endpoint(asio::ip::make_address(source), 0));
    stream.expires_after(30s);
    stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!authorization.empty()) req.set(http::field::authorization, authorization);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    req.keep_alive(false);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    out.status = res.result_int();
    out.retry_after = std::string(res[http::field::retry_after]);
    out.body = res.body();
    for (const auto& h : res) {
      out.headers += std::string(h.name_string()) + ": " + std::string(h.value()) + "\n";
    }
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

struct AccessFixture {
  AccessLogs logs;
  AccessTempDir dir;
  std::unique_ptr<berth::store::SqliteStore> store;
  std::unique_ptr<berth::api::ApiServer> server;
  std::atomic<berth::core::UnixMillis> now{1'700'000'000'000};
  std::string alice_token;
  std::string bob_token;
  std::mutex progress_mu;
  std::set<std::string> progress_for;  // service ids that report a live rollout

  explicit AccessFixture(berth::api::ApiOptions options = {}) {
    auto opened = berth::store::SqliteStore::open(dir.path / "data");
    REQUIRE(opened.ok());
    store = std::move(opened).value();
    REQUIRE(store->add_account("alice", Secret("alice-password")).ok());
    REQUIRE(store->add_account("bob", Secret("bob-password")).ok());
    auto token = store->create_token("alice", "tests");
    REQUIRE(token.ok());
    alice_token = std::string(token->reveal());
    token = store->create_token("bob", "tests");
    REQUIRE(token.ok());
    bob_token = std::string(token->reveal());
    options.listen_host = "127.0.0.1";
    options.listen_port = 0;
    options.new_id = [] { return berth::crypto::random_uuid(); };
    options.progress =
        [this](const std::string& id) -> std::optional<berth::core::RolloutProgress> {
      std::lock_guard lock(progress_mu);
      if (!progress_for.count(id)) return std::nullopt;
      berth::core::RolloutProgress p;
      p.task_id = "task-of-" + id;
      p.step = "pull";
      p.layers_total = 3;
      berth::core::DeployLogEntry entry;
      entry.step = "pull";
      entry.status = "info";
      entry.message = "pulling secret-layer-of-alice";
      p.entries.push_back(entry);
      return p;
    };
    server = std::make_unique<berth::api::ApiServer>(
        options, *store, [this] { return now.fetch_add(1000); }, [](const std::string&) {});
    auto started = server->start();
    if (!started.ok()) FAIL(started.error().message);
  }
  ~AccessFixture() { server->stop(); }

  AccessReply call(const std::string& method, const std::string& target,
                   const std::string& authorization, const std::string& body = {}) {
    return access_request(server->port(), method, target, authorization, body);
  }
};

// The openssl binary, or empty.
std::string access_openssl() {
  for (const char* p : {"/usr/bin/openssl", "/usr/local/bin/openssl"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

// Runs `openssl s_client` against 127.0.0.1:port with `args`; true when the handshake
// completed (exit 0 and a negotiated cipher). stdin is /dev/null, so it leaves at once.
bool access_handshake(const std::string& openssl, std::uint16_t port, const std::string& args,
                      std::string* negotiated = nullptr) {
  const std::string cmd = openssl + " s_client -connect 127.0.0.1:" + std::to_string(port) +
                          " -servername 127.0.0.1 " + args + " </dev/null 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return false;
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  const auto at = out.find("Cipher is ");
  const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && at != std::string::npos &&
                  out.find("Cipher is (NONE)") == std::string::npos;
  if (ok && negotiated != nullptr) *negotiated = out.substr(at + 10, out.find('\n', at) - at - 10);
  return ok;
}

// `openssl ciphers` for a cipher string: the names, one per element.
std::vector<std::string> access_cipher_names(const std::string& openssl, const std::string& spec) {
  FILE* p = ::popen((openssl + " ciphers '" + spec + "' 2>/dev/null").c_str(), "r");
  std::vector<std::string> names;
  if (p == nullptr) return names;
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n')) out.pop_back();
  std::size_t pos = 0;
  while (pos <= out.size()) {
    const auto colon = out.find(':', pos);
    names.push_back(out.substr(pos, colon - pos));
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  return names;
}

}  // namespace

TEST_CASE("Every API route answers another account's app service 404 and leaks nothing of it",
          "[access][api]") {
  AccessFixture f;
  const std::string alice = access_basic("alice", "alice-password");
  json body = {{"name", "alice-private-api"},
               {"plan_name", "tier-2"},
               {"zone", "se-sto1"},
               {"app_config",
                {{"image_ref", "ghcr.io/alice-corp/secret-api:1.0.0"},
                 {"container_port", 8080},
                 {"env", {{"ALICE_ONLY", "alice-env-value"}}},
                 {"registry_username", "alice-bot"},
                 {"registry_password", kAccessCanary}}}};
  auto created = f.call("POST", "/app-services", alice, body.dump());
  REQUIRE(created.status == 201);
  const std::string id = json::parse(created.body)["id"];
  // A succeeded revision (something to roll back to and restart) and a pending one with a live
  // rollout (progress and live deploy logs), so every route has something to leak.
  auto revs = f.store->list_revisions(id, true);
  REQUIRE(revs.ok());
  REQUIRE(revs->size() == 1);
  const std::string first = revs->front().id;
  {
    auto svc = f.store->load_service(id);
    REQUIRE(svc.ok());
    auto rev = f.store->get_revision(id, first);
    REQUIRE(rev.ok());
    rev->state = berth::core::RevisionState::kSucceeded;
    rev->finished_at = f.now.load();
    svc->status = berth::core::ServiceStatus::kRunning;
    svc->current_deployment_id = first;
    svc->agent = "alice-agent-7";
    REQUIRE(f.store->record_outcome(*rev, *svc, 20).ok());
  }
  json patch = {{"app_config", {{"image_ref", "ghcr.io/alice-corp/secret-api:2.0.0"}}}};
  REQUIRE(f.call("PATCH", "/app-services/" + id, alice, patch.dump()).status == 200);
  {
    std::lock_guard lock(f.progress_mu);
    f.progress_for.insert(id);
  }
  // Alice sees all of it: the same requests below are refused for Bob, not broken.
  CHECK(f.call("GET", "/app-services/" + id, alice).status == 200);
  CHECK(f.call("GET", "/app-services/" + id, alice).body.find("progress") != std::string::npos);
  const std::size_t revisions_before = f.store->list_revisions(id, true)->size();
  REQUIRE(revisions_before == 2);
  auto tasks_before = f.store->pending_tasks(id);
  REQUIRE(tasks_before.ok());

  // Everything of Alice's app that must not reach Bob, in every encoded form.
  berth::testing::SecretScan leak;
  leak.add(kAccessCanary, "alice-bot");
  for (const std::string& s :
       {id, first, std::string("alice-private-api"), std::string("alice-corp"),
        std::string("alice-env-value"), std::string("alice-agent-7"), std::string("alice-bot"),
        std::string("secret-layer-of-alice"), std::string("task-of-")})
    leak.add(s);

  const std::string rollback = json({{"deployment_id", first}, {"reason", "bob"}}).dump();
  const std::string bob_patch = json({{"app_config", {{"image_ref", "bob/x:1"}}}}).dump();
  struct Call {
    std::string method, target, body;
  };
  const std::string base = "/app-services/" + id;
  const std::vector<Call> calls = {
      {"GET", base, ""},
      {"GET", base + "/", ""},
      {"PATCH", base, bob_patch},
      {"DELETE", base, ""},
      {"GET", base + "/deployments", ""},
      {"GET", base + "/deployments?all=true", ""},
      {"POST", base + "/rollback", rollback},
      {"POST", base + "/rollback", json({{"deployment_id", "not-there"}}).dump()},
      {"POST", base + "/restart", ""},
  };
  for (const std::string& who : {access_basic("bob", "bob-password"), "Bearer " + f.bob_token}) {
    for (const auto& c : calls) {
      INFO(c.method << " " << c.target << " as " << who.substr(0, 6));
      auto r = f.call(c.method, c.target, who, c.body);
      REQUIRE(r.error.empty());
      CHECK((r.status == 404 || r.status == 403));
      CHECK(leak.find_in(r.body).empty());
      CHECK(leak.find_in(r.headers).empty());
    }
    // The list and the status page: 200, but nothing of Alice's.
    auto list = f.call("GET", "/app-services", who);
    CHECK(list.status == 200);
    CHECK(json::parse(list.body)["app_services"].empty());
    CHECK(leak.find_in(list.body).empty());
    for (const std::string& page :
         {std::string("/ui/"), std::string("/ui/app.js"), "/ui/?id=" + id}) {
      INFO(page);
      auto ui = f.call("GET", page, who);
      CHECK((ui.status == 200 || ui.status == 404));
      CHECK(leak.find_in(ui.body).empty());
    }
  }
  // Nothing changed: no revision, no task, not deleted, still Alice's.
  CHECK(f.store->list_revisions(id, true)->size() == revisions_before);
  auto tasks_after = f.store->pending_tasks(id);
  REQUIRE(tasks_after.ok());
  CHECK(tasks_after->size() == tasks_before->size());
  auto still = f.call("GET", "/app-services/" + id, alice);
  CHECK(still.status == 200);
  CHECK(json::parse(still.body)["status"] != "Deleting");

  // Without credentials, or with wrong ones: 401 everywhere, nothing of the app either.
  for (const auto& c : calls) {
    for (const std::string& who : {std::string(), access_basic("alice", "wrong")}) {
      INFO(c.method << " " << c.target);
      auto r = f.call(c.method, c.target, who, c.body);
      CHECK(r.status == 401);
      CHECK(leak.find_in(r.body).empty());
    }
  }
  // The log names no password and no part of the refused requests' bodies beyond ids.
  berth::testing::SecretScan canary(kAccessCanary, "alice-bot");
  for (const auto& line : f.logs.snapshot()) CHECK(canary.find_in(line).empty());
}

TEST_CASE("Repeated wrong Bearer tokens are answered 429 per address and per token id",
          "[access][api][limit]") {
  berth::api::ApiOptions o;
  // Long refill intervals: no failure is forgiven while the test runs.
  o.auth.per_address = {3, std::chrono::hours(1), 1000};
  o.auth.per_account = {5, std::chrono::hours(1), 1000};
  AccessFixture f(o);
  const std::uint16_t port = f.server->port();
  // Alice's token id with guessed secrets.
  const std::string id = f.alice_token.substr(6, 16);
  auto guess = [&](int n) {
    return "Bearer berth_" + id + "_" + std::string(43 - std::to_string(n).size(), 'A') +
           std::to_string(n);
  };

  for (int i = 0; i < 3; ++i)
    CHECK(access_request(port, "GET", "/app-services", guess(i), {}, "127.0.0.1").status == 401);
  auto limited = access_request(port, "GET", "/app-services", guess(3), {}, "127.0.0.1");
  CHECK(limited.status == 429);
  CHECK(std::stoi(limited.retry_after.empty() ? "0" : limited.retry_after) >= 1);
  // Refused before verification: the right token from that address waits too.
  CHECK(access_request(port, "GET", "/app-services", "Bearer " + f.bob_token).status == 429);
  // Bearer failures do not spend the address's Basic budget (nor the reverse).
  CHECK(access_request(port, "GET", "/app-services", access_basic("bob", "bob-password")).status ==
        200);

  // The token id's own budget: guesses from other addresses add up (5 failures in all; the
  // refused fourth one was not verified, so it did not count), then even the right secret for
  // that id waits, while another token still works from a fresh address.
  CHECK(access_request(port, "GET", "/app-services", guess(4), {}, "127.0.0.2").status == 401);
  CHECK(access_request(port, "GET", "/app-services", guess(5), {}, "127.0.0.3").status == 401);
  CHECK(access_request(port, "GET", "/app-services", "Bearer " + f.alice_token, {}, "127.0.0.4")
            .status == 429);
  CHECK(access_request(port, "GET", "/app-services", "Bearer " + f.bob_token, {}, "127.0.0.4")
            .status == 200);
  // Malformed tokens share one budget.
  for (int i = 0; i < 3; ++i)
    CHECK(access_request(port, "GET", "/app-services", "Bearer junk" + std::to_string(i), {},
                         "127.0.0." + std::to_string(10 + i))
              .status == 401);
  CHECK(access_request(port, "GET", "/app-services", "Bearer junk", {}, "127.0.0.20").status ==
        401);
  CHECK(access_request(port, "GET", "/app-services", "Bearer junk", {}, "127.0.0.21").status ==
        401);
  CHECK(access_request(port, "GET", "/app-services", "Bearer junk", {}, "127.0.0.22").status ==
        429);

  // Logged as rate-limited, never with the token.
  bool rate_limited_logged = false;
  for (const auto& line : f.logs.snapshot()) {
    rate_limited_logged |= line.find("api authentication rate-limited") != std::string::npos;
    CHECK(line.find(f.alice_token.substr(23)) == std::string::npos);
  }
  CHECK(rate_limited_logged);
}

TEST_CASE("The API's TLS accepts TLS 1.2 only with ECDHE AEAD suites, and TLS 1.3",
          "[access][api][tls]") {
  const std::string openssl = access_openssl();
  if (openssl.empty()) berth::testing::skip_test("the openssl command is not installed");
  AccessTempDir tls_dir;
  auto ca = berth::crypto::create_ca("berth-access-ca", 3600);
  REQUIRE(ca.ok());
  berth::crypto::CertRequest req;
  req.common_name = "berth-controller";
  req.ip_addresses = {"127.0.0.1"};
  req.server = true;
  auto leaf = berth::crypto::issue_certificate(*ca, req);
  REQUIRE(leaf.ok());
  REQUIRE(berth::crypto::write_pem_files(tls_dir.path, "api", *leaf).ok());
  berth::api::ApiOptions o;
  o.tls_cert_file = (tls_dir.path / "api.crt").string();
  o.tls_key_file = (tls_dir.path / "api.key").string();
  AccessFixture f(o);
  const std::uint16_t port = f.server->port();

  std::string cipher;
  // TLS 1.3 and a modern TLS 1.2 suite complete.
  CHECK(access_handshake(openssl, port, "-tls1_3", &cipher));
  CHECK(access_handshake(openssl, port, "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256", &cipher));
  CHECK(cipher == "ECDHE-ECDSA-AES128-GCM-SHA256");
  // Old protocol versions fail, even with a client that would accept anything.
  CHECK_FALSE(access_handshake(openssl, port, "-tls1_1 -cipher 'ALL:@SECLEVEL=0'"));
  CHECK_FALSE(access_handshake(openssl, port, "-tls1 -cipher 'ALL:@SECLEVEL=0'"));
  // Every TLS 1.2 suite this OpenSSL knows, one at a time: exactly the ECDHE + AEAD ones
  // complete (CBC, SHA-1 MACs, static RSA, DHE, PSK, anonymous: refused).
  const auto suites = access_cipher_names(openssl, "ALL:COMPLEMENTOFALL:@SECLEVEL=0");
  REQUIRE(suites.size() > 20);
  std::vector<std::string> accepted;
  int tried = 0;
  for (const auto& suite : suites) {
    if (suite.rfind("TLS_", 0) == 0) continue;  // TLS 1.3 names: not selectable with -cipher
    ++tried;
    if (access_handshake(openssl, port, "-tls1_2 -cipher '" + suite + ":@SECLEVEL=0'"))
      accepted.push_back(suite);
  }
  INFO("tried " << tried << " TLS 1.2 suites");
  REQUIRE_FALSE(accepted.empty());
  for (const auto& suite : accepted) {
    INFO(suite);
    CHECK(suite.rfind("ECDHE-", 0) == 0);
    CHECK(
        (suite.find("-GCM-") != std::string::npos || suite.find("CHACHA20") != std::string::npos));
    CHECK(suite.find("CBC") == std::string::npos);
    const bool sha1_mac = suite.size() > 4 && suite.compare(suite.size() - 4, 4, "-SHA") == 0;
    CHECK_FALSE(sha1_mac);
  }
  // The specific suites issue 12 names.
  for (const char* weak : {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
                           "ECDHE-ECDSA-AES128-SHA256", "AES128-SHA", "AES128-GCM-SHA256"}) {
    INFO(weak);
    CHECK_FALSE(
        access_handshake(openssl, port, "-tls1_2 -cipher '" + std::string(weak) + ":@SECLEVEL=0'"));
  }
}
