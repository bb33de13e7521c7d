// /healthz and /readyz over real loopback sockets: the readiness verdict the composition root
// supplies (not_ready), and the health-only server Kubernetes mode runs on --health-listen,
// where nothing but the two health routes exists and nobody is authenticated.
#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "api/server.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "support/http_client.h"
#include "support/testenv.h"

namespace fs = std::filesystem;
using berth::Secret;
using berth::testing::HttpClientOptions;
using berth::testing::HttpResult;

namespace {

struct Fixture {
  std::string dir = berth::testenv::make_temp_dir("api-health");
  std::unique_ptr<berth::store::SqliteStore> store;
  std::unique_ptr<berth::api::ApiServer> server;
  std::string alice_token;
  std::atomic<int> basic_verifications{0};
  std::atomic<int> changes{0};

  explicit Fixture(berth::api::ApiOptions options) {
    auto opened = berth::store::SqliteStore::open(dir + "/data");
    REQUIRE(opened.ok());
    store = std::move(opened).value();
    REQUIRE(store->add_account("alice", Secret("alice-password")).ok());
    auto token = store->create_token("alice", "tests");
    REQUIRE(token.ok());
    alice_token = std::string(token->reveal());

    options.listen_host = "127.0.0.1";
    options.listen_port = 0;
    options.new_id = [] { return berth::crypto::random_uuid(); };
    // Counts every Basic verification the server attempts, and lets each fail.
    options.auth.verify_basic =
        [this](const berth::api::Credentials&) -> berth::Result<std::string> {
      ++basic_verifications;
      return berth::make_error(berth::ErrorCode::kUnauthenticated, "wrong password");
    };
    server = std::make_unique<berth::api::ApiServer>(
        options, *store, [] { return berth::core::UnixMillis{1'700'000'000'000}; },
        [this](const std::string&) { ++changes; });
    auto started = server->start();
    if (!started.ok()) FAIL(started.error().message);
  }

  ~Fixture() {
    server->stop();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  HttpResult call(const std::string& method, const std::string& target,
                  const std::string& authorization = "", const std::string& body = "") {
    HttpClientOptions o;
    o.port = server->port();
    std::map<std::string, std::string> headers;
    if (!authorization.empty()) headers["Authorization"] = authorization;
    if (!body.empty()) headers["Content-Type"] = "application/json";
    auto r = berth::testing::http_request(o, method, target, body, headers);
    REQUIRE(r.ok());
    return r;
  }
};

// A readiness verdict the test flips, as the controller's cache sync would.
struct Readiness {
  std::mutex mu;
  std::optional<std::string> reason;
  void set(std::optional<std::string> r) {
    std::lock_guard lock(mu);
    reason = std::move(r);
  }
  std::optional<std::string> get() {
    std::lock_guard lock(mu);
    return reason;
  }
};

void check_ok(const HttpResult& r) {
  CHECK(r.status == 200);
  CHECK(r.json() == nlohmann::json{{"status", "ok"}});
}

void check_no_endpoint(const HttpResult& r) {
  CHECK(r.status == 404);
  CHECK(r.json() == nlohmann::json{{"error", "no such endpoint"}});
}

}  // namespace

TEST_CASE("/readyz is 200 when nobody supplies a readiness verdict", "[api][health]") {
  Fixture f{berth::api::ApiOptions{}};
  check_ok(f.call("GET", "/readyz"));
  check_ok(f.call("GET", "/healthz"));
}

TEST_CASE("/readyz is 503 with the reason until the process is ready, /healthz is 200 throughout",
          "[api][health]") {
  auto readiness = std::make_shared<Readiness>();
  readiness->set("the AppService cache has not synced");
  berth::api::ApiOptions o;
  o.not_ready = [readiness] { return readiness->get(); };
  Fixture f(o);

  auto r = f.call("GET", "/readyz");
  CHECK(r.status == 503);
  CHECK(r.json() ==
        nlohmann::json{{"status", "not ready"}, {"reason", "the AppService cache has not synced"}});
  check_ok(f.call("GET", "/healthz"));

  readiness->set(std::nullopt);
  check_ok(f.call("GET", "/readyz"));
  check_ok(f.call("GET", "/healthz"));

  // Readiness can be lost again (a cache that must relist).
  readiness->set("relisting");
  auto again = f.call("GET", "/readyz");
  CHECK(again.status == 503);
  CHECK(again.json()["reason"] == "relisting");
}

TEST_CASE("A health-only server answers /healthz, /readyz and /metrics and nothing else",
          "[api][health]") {
  auto readiness = std::make_shared<Readiness>();
  readiness->set("waiting for the caches");
  berth::api::ApiOptions o;
  o.health_only = true;
  o.not_ready = [readiness] { return readiness->get(); };
  Fixture f(o);

  check_ok(f.call("GET", "/healthz"));
  CHECK(f.call("GET", "/readyz").status == 503);
  readiness->set(std::nullopt);
  check_ok(f.call("GET", "/readyz"));

  // The REST API is not there, whatever the method or credentials.
  check_no_endpoint(f.call("GET", "/app-services"));
  check_no_endpoint(f.call("GET", "/app-services", "Bearer " + f.alice_token));
  check_no_endpoint(f.call("POST", "/app-services", "Bearer " + f.alice_token,
                           R"({"name":"web","plan_name":"tier-2","app_config":)"
                           R"({"image_ref":"ghcr.io/acme/web:v1","container_port":8080}})"));
  check_no_endpoint(f.call("DELETE", "/app-services/some-id", "Bearer " + f.alice_token));
  check_no_endpoint(f.call("GET", "/app-services/some-id/deployments"));
  check_no_endpoint(f.call("GET", "/debug/vars"));
  CHECK(f.call("GET", "/metrics").status == 200);
  CHECK(f.changes == 0);
  auto listed = f.store->list_service_ids();
  REQUIRE(listed.ok());
  CHECK(listed->empty());

  // The health routes keep their methods.
  CHECK(f.call("POST", "/healthz").status == 405);
}

TEST_CASE(
    "A health-only server never authenticates, so wrong credentials are neither checked nor "
    "rate-limited",
    "[api][health][auth]") {
  berth::api::ApiOptions o;
  o.health_only = true;
  o.auth.per_address = {2, std::chrono::milliseconds(60'000)};
  Fixture f(o);

  // More wrong Basic attempts than the limiter allows: each is a plain 404, never 401 or 429.
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    auto r = f.call("GET", "/app-services", berth::testing::basic_auth("alice", "wrong-password"));
    check_no_endpoint(r);
    CHECK(r.header("www-authenticate").empty());
  }
  check_no_endpoint(f.call("GET", "/app-services", "Bearer not-a-token"));
  check_no_endpoint(f.call("GET", "/app-services", "Garbage"));
  CHECK(f.basic_verifications == 0);
  check_ok(f.call("GET", "/healthz", berth::testing::basic_auth("alice", "wrong-password")));
}

TEST_CASE("Without health_only the same server authenticates /app-services requests",
          "[api][health][auth]") {
  // The control for the test above: the counting verifier is reached when the API is served.
  Fixture f{berth::api::ApiOptions{}};
  auto r = f.call("GET", "/app-services", berth::testing::basic_auth("alice", "wrong-password"));
  CHECK(r.status == 401);
  CHECK(f.basic_verifications == 1);
  CHECK(f.call("GET", "/app-services", "Bearer " + f.alice_token).status == 200);
}

TEST_CASE("/metrics needs no credentials and counts requests by route template and code",
          "[api][health][metrics]") {
  // Both servers: the REST API (standalone mode) and the health-only one (Kubernetes mode).
  for (const bool health_only : {false, true}) {
    CAPTURE(health_only);
    berth::metrics::Registry registry;
    berth::api::ApiOptions o;
    o.health_only = health_only;
    o.metrics = &registry;
    Fixture f(o);
    (void)f.call("GET", "/app-services/0b7e2a51-raw-id/deployments");
    (void)f.call("GET", "/app-services/0b7e2a51-raw-id/deployments");
    check_ok(f.call("GET", "/healthz"));
    (void)f.call("GET", "/some/raw/path/0b7e2a51");

    auto r = f.call("GET", "/metrics");
    REQUIRE(r.status == 200);
    CHECK(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
    const std::string code = health_only ? "404" : "401";
    CHECK_THAT(r.body, Catch::Contains("berth_api_requests_total{route=\"/app-services/{id}/"
                                       "deployments\",code=\"" +
                                       code + "\"} 2\n"));
    CHECK_THAT(r.body,
               Catch::Contains("berth_api_requests_total{route=\"/healthz\",code=\"200\"} 1\n"));
    CHECK_THAT(r.body,
               Catch::Contains("berth_api_requests_total{route=\"other\",code=\"404\"} 1\n"));
    CHECK_THAT(r.body,
               Catch::Contains("berth_api_request_duration_seconds_count{route=\"/healthz\"} 1\n"));
    // The raw path (an id) never becomes a label value.
    CHECK_THAT(r.body, !Catch::Contains("0b7e2a51"));
    CHECK(f.call("POST", "/metrics").status == 405);
  }
}

TEST_CASE("requests refused before routing count under route unparsed", "[api][health][metrics]") {
  berth::metrics::Registry registry;
  berth::api::ApiOptions o;
  o.metrics = &registry;
  Fixture f(o);
  auto raw = berth::testing::raw_exchange("127.0.0.1", f.server->port(), "NOT HTTP AT ALL\r\n\r\n",
                                          std::chrono::seconds(5));
  CHECK_THAT(raw.received, Catch::StartsWith("HTTP/1.1 400"));
  auto r = f.call("GET", "/metrics");
  REQUIRE(r.status == 200);
  CHECK_THAT(r.body,
             Catch::Contains("berth_api_requests_total{route=\"unparsed\",code=\"400\"} 1\n"));
}
