// Input the agent cannot carry out, and what error bodies say about it, through the real API:
// loopback sockets, a real SqliteStore in a temp dir. A rejected request stores nothing and
// queues nothing, and no error body repeats a submitted value.
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "api/server.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "support/http_client.h"

namespace fs = std::filesystem;
using berth::Secret;
using berth::testing::HttpResult;
using nlohmann::json;

namespace {

const std::string kCanary = "CANARY_7e1f0c_s3cret";

struct Fixture {
  fs::path dir;
  std::unique_ptr<berth::store::SqliteStore> store;
  std::unique_ptr<berth::api::ApiServer> server;
  std::string alice_id;
  std::mutex mu;
  std::vector<std::string> changed;

  Fixture() {
    std::string tmpl = (fs::temp_directory_path() / "berth-input-XXXXXX").string();
    dir = mkdtemp(tmpl.data());
    auto opened = berth::store::SqliteStore::open(dir / "data");
    REQUIRE(opened.ok());
    store = std::move(opened).value();
    auto alice = store->add_account("alice", Secret("alice-password"));
    REQUIRE(alice.ok());
    alice_id = *alice;
    berth::api::ApiOptions options;
    options.listen_host = "127.0.0.1";
    options.listen_port = 0;
    options.new_id = [] { return berth::crypto::random_uuid(); };
    server = std::make_unique<berth::api::ApiServer>(
        options, *store, [] { return berth::core::UnixMillis{1'700'000'000'000}; },
        [this](const std::string& id) {
          std::lock_guard lock(mu);
          changed.push_back(id);
        });
    auto started = server->start();
    if (!started.ok()) FAIL(started.error().message);
  }
  ~Fixture() {
    server->stop();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  HttpResult call(const std::string& method, const std::string& target, const std::string& body) {
    berth::testing::HttpClientOptions o;
    o.port = server->port();
    std::map<std::string, std::string> headers = {
        {"Authorization", berth::testing::basic_auth("alice", "alice-password")},
        {"Content-Type", "application/json"}};
    auto r = berth::testing::http_request(o, method, target, body, headers);
    REQUIRE(r.ok());
    return r;
  }

  static json create_body() {
    return {{"name", "my-api"},
            {"plan_name", "tier-2"},
            {"app_config", {{"image_ref", "ghcr.io/acme/api:1.0.0"}, {"container_port", 8080}}}};
  }

  std::size_t service_count() {
    auto all = store->list_services(alice_id);
    REQUIRE(all.ok());
    return all->size();
  }
  std::size_t changes() {
    std::lock_guard lock(mu);
    return changed.size();
  }
};

void check_422(const HttpResult& r, const std::string& field, const std::string& message) {
  INFO(r.body);
  REQUIRE(r.status == 422);
  CHECK(r.json()["field"] == field);
  CHECK(r.json()["error"] == message);
}

}  // namespace

TEST_CASE("Env values an env file cannot carry are 422 at the API and nothing is stored",
          "[api][input]") {
  Fixture f;
  struct Case {
    std::string value;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"a\nB=injected", "the value contains a newline"},
      {"crlf\r", "the value contains a carriage return"},
      {std::string("nul\0byte", 8), "the value contains a NUL byte"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    json body = Fixture::create_body();
    body["app_config"]["env"] = {{"FOO", c.value}, {"OK", "fine"}};
    check_422(f.call("POST", "/app-services", body.dump()), "app_config.env.FOO",
              "app_config.env.FOO: " + c.what);
  }
  CHECK(f.service_count() == 0);
  CHECK(f.changes() == 0);

  // The same on PATCH: the running config and the revision history stay as they were.
  auto created = f.call("POST", "/app-services", Fixture::create_body().dump());
  REQUIRE(created.status == 201);
  const std::string id = created.json()["id"];
  const std::size_t changes_after_create = f.changes();
  for (const auto& c : cases) {
    CAPTURE(c.what);
    json patch = {{"app_config", {{"env", {{"FOO", c.value}}}}}};
    check_422(f.call("PATCH", "/app-services/" + id, patch.dump()), "app_config.env.FOO",
              "app_config.env.FOO: " + c.what);
  }
  auto revisions = f.store->list_revisions(id, true);
  REQUIRE(revisions.ok());
  CHECK(revisions->size() == 1);
  CHECK(f.changes() == changes_after_create);
  auto svc = f.call("GET", "/app-services/" + id, "");
  CHECK(svc.json()["app_config"]["env"] == json::object());
}

TEST_CASE("container_port 0 on create is out of range, not missing", "[api][input]") {
  Fixture f;
  json body = Fixture::create_body();
  body["app_config"]["container_port"] = 0;
  check_422(f.call("POST", "/app-services", body.dump()), "app_config.container_port",
            "app_config.container_port: is out of range (1-65535)");
  body["app_config"].erase("container_port");
  check_422(f.call("POST", "/app-services", body.dump()), "app_config.container_port",
            "app_config.container_port: is required");
}

TEST_CASE("An invalid image reference says which part is wrong and where", "[api][input]") {
  Fixture f;
  json body = Fixture::create_body();
  body["app_config"]["image_ref"] = "ghcr.io/Acme/api:1";
  check_422(f.call("POST", "/app-services", body.dump()), "app_config.image_ref",
            "app_config.image_ref: repository path must be lowercase (uppercase letter at "
            "position 9)");
  body["app_config"]["image_ref"] = "ghcr.io/acme/api :1";
  check_422(f.call("POST", "/app-services", body.dump()), "app_config.image_ref",
            "app_config.image_ref: contains a space at position 17");
}

TEST_CASE("Error bodies never repeat a submitted value", "[api][input]") {
  Fixture f;
  struct Case {
    const char* pointer;
    json value;
  };
  const std::vector<Case> cases = {
      {"/app_config/image_ref", "https://bot:" + kCanary + "@ghcr.io/acme/api"},
      {"/app_config/image_ref", "ghcr.io/acme/" + kCanary},
      {"/app_config/env", {{"TOKEN", kCanary + "\n"}}},
      {"/app_config/registry_username", "bot:" + kCanary},
      {"/app_config/custom_domains", {kCanary + ".."}},
      {"/app_config/health_check_path", kCanary},
      {"/name", kCanary},
      {"/plan_name", kCanary},
      {"/zone", kCanary},
      {"/storage_tier", kCanary},
      {"/app_config/registry_pasword", kCanary},
  };
  for (const auto& c : cases) {
    CAPTURE(c.pointer);
    json body = Fixture::create_body();
    body[json::json_pointer(c.pointer)] = c.value;
    auto r = f.call("POST", "/app-services", body.dump());
    INFO(r.body);
    CHECK(r.status == 422);
    CHECK(r.body.find("CANARY") == std::string::npos);
    CHECK(r.body.find("s3cret") == std::string::npos);
  }
  // Malformed JSON and a non-object body are 400 without quoting the text either.
  for (const std::string& text : {"{\"name\": \"" + kCanary + "\",", "[\"" + kCanary + "\"]"}) {
    auto r = f.call("POST", "/app-services", text);
    INFO(r.body);
    CHECK(r.status == 400);
    CHECK(r.body.find("CANARY") == std::string::npos);
  }
  CHECK(f.service_count() == 0);
}
