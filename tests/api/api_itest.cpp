// The REST API over real loopback sockets, with a real SqliteStore in a temp dir and real
// accounts and tokens. Every test also checks that the canary registry password never shows
// up in a response body or a log line.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "api/server.h"
#include "api_fixture.h"
#include "common/log.h"
#include "crypto/certs.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "support/http_client.h"
#include "support/log_capture.h"
#include "support/secret_scan.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using berth::Secret;
using berth::testing::HttpClientOptions;
using berth::testing::HttpConnection;
using berth::testing::HttpResult;
using berth::testing::LogCapture;
using nlohmann::json;

namespace {

// Unseals with the host and username the stored credential records (what a caller that checked
// the credential passes).
[[maybe_unused]] berth::Result<berth::Secret> unseal(berth::core::StateStore& store,
                                                     const std::string& id) {
  auto cred = store.get_credential(id);
  if (!cred.ok()) return cred.error();
  if (!cred->has_value()) return store.unseal_password(id, "", "");
  return store.unseal_password(id, (*cred)->registry_host, (*cred)->username);
}

const std::string kCanary = "ghp_CANARY_9f3b7c1d2e";
const std::string kOtherCanary = "ghp_SECOND_CANARY_44aa";

struct Fixture {
  LogCapture logs;
  berth::testing::ScratchDir dir{"berth-api"};
  std::unique_ptr<berth::store::SqliteStore> store;
  std::unique_ptr<berth::api::ApiServer> server;
  std::atomic<berth::core::UnixMillis> now{1'700'000'000'000};
  std::mutex changed_mu;
  std::vector<std::string> changed;
  std::string alice_id;
  std::string alice_token;
  std::vector<HttpResult> responses;  // every response, for the canary check

  explicit Fixture(berth::api::ApiOptions options = {}) {
    auto opened = berth::testing::open_api_store(dir.path);
    store = std::move(opened.store);
    alice_id = opened.alice_id;
    alice_token = opened.alice_token;

    options = berth::testing::loopback_api_options(std::move(options));
    server = std::make_unique<berth::api::ApiServer>(
        options, *store, [this] { return now.fetch_add(1000); },
        [this](const std::string& id) {
          std::lock_guard lock(changed_mu);
          changed.push_back(id);
        });
    auto started = server->start();
    if (!started.ok()) FAIL(started.error().message);
  }

  ~Fixture() {
    server->stop();
    check_canary();
  }

  HttpClientOptions client() const {
    HttpClientOptions o;
    o.port = server->port();
    return o;
  }

  HttpResult call(const std::string& method, const std::string& target, const std::string& body,
                  const std::string& user = "alice", const std::string& password = "",
                  std::map<std::string, std::string> headers = {}) {
    if (!headers.count("Authorization")) {
      headers["Authorization"] =
          berth::testing::basic_auth(user, password.empty() ? user + "-password" : password);
    }
    if (!body.empty() && !headers.count("Content-Type"))
      headers["Content-Type"] = "application/json";
    auto r = berth::testing::http_request(client(), method, target, body, headers);
    REQUIRE(r.ok());
    responses.push_back(r);
    return r;
  }

  HttpResult create(const std::string& name, const std::string& user = "alice",
                    const std::string& password = kCanary) {
    json body = {{"name", name},
                 {"plan_name", "tier-2"},
                 {"zone", "se-sto1"},
                 {"app_config",
                  {{"image_ref", "ghcr.io/acme/api:1.0.0"},
                   {"container_port", 8080},
                   {"registry_username", "acme-bot"},
                   {"registry_password", password}}}};
    return call("POST", "/app-services", body.dump(), user);
  }

  // Marks a revision succeeded and serving, as the runtime will once agents exist.
  void succeed(const std::string& service_id, const std::string& revision_id) {
    auto svc = store->load_service(service_id);
    REQUIRE(svc.ok());
    auto rev = store->get_revision(service_id, revision_id);
    REQUIRE(rev.ok());
    rev->state = berth::core::RevisionState::kSucceeded;
    rev->finished_at = now.load();
    svc->status = berth::core::ServiceStatus::kRunning;
    svc->current_deployment_id = revision_id;
    svc->agent = "agent-1";
    REQUIRE(store->record_outcome(*rev, *svc, 20).ok());
  }

  std::size_t revision_count(const std::string& id) {
    auto revs = store->list_revisions(id, true);
    REQUIRE(revs.ok());
    return revs->size();
  }

  void check_canary() {
    // Every encoded form too: JSON-escaped, URL-encoded, base64 (support/secret_scan.h).
    berth::testing::SecretScan scan;
    scan.add(kCanary, "acme-bot");
    scan.add(kOtherCanary, "acme-bot");
    for (const auto& r : responses) {
      CHECK(scan.find_in(r.body).empty());
      for (const auto& [k, v] : r.headers) CHECK(scan.find_in(v).empty());
    }
    for (const auto& line : logs.snapshot()) CHECK(scan.find_in(line).empty());
  }
};

}  // namespace

TEST_CASE(
    "Creating an app service from the reference example returns 201 Pending without the password",
    "[api]") {
  Fixture f;
  auto r = f.create("my-api");
  REQUIRE(r.status == 201);
  auto j = r.json();
  CHECK(j["status"] == "Pending");
  CHECK(j["name"] == "my-api");
  CHECK(j["zone"] == "se-sto1");
  CHECK(j["registry_host"] == "ghcr.io");
  CHECK(j["app_config"]["registry_username"] == "acme-bot");
  CHECK_FALSE(j["app_config"].contains("registry_password"));
  REQUIRE(j["conditions"].size() == 1);
  CHECK(j["conditions"][0]["type"] == "Progressing");
  CHECK(j["conditions"][0]["status"] == "Unknown");
  CHECK(j["conditions"][0]["reason"] == "AwaitingAgent");
  CHECK(r.header("content-type") == "application/json");

  const std::string id = j["id"];
  auto cred = f.store->get_credential(id);
  REQUIRE(cred.ok());
  REQUIRE(cred->has_value());
  CHECK((*cred)->registry_host == "ghcr.io");
  CHECK((*cred)->username == "acme-bot");
  auto pw = unseal(*f.store, id);
  REQUIRE(pw.ok());
  CHECK(pw->reveal() == kCanary);
  auto tasks = f.store->pending_tasks(id);
  REQUIRE(tasks.ok());
  REQUIRE(tasks->size() == 1);
  CHECK((*tasks)[0].kind == berth::core::TaskKind::kDeploy);
  CHECK(f.changed == std::vector<std::string>{id});

  auto got = f.call("GET", "/app-services/" + id, "");
  CHECK(got.status == 200);
  CHECK(got.json()["id"] == id);
  auto list = f.call("GET", "/app-services", "");
  CHECK(list.status == 200);
  REQUIRE(list.json()["app_services"].size() == 1);
}

TEST_CASE("An app service without a zone gets the controller's default zone", "[api]") {
  berth::api::ApiOptions o;
  o.default_zone = "zone-x";
  Fixture f(o);
  json body = {{"name", "public-app"},
               {"plan_name", "tier-1"},
               {"app_config", {{"image_ref", "nginx:1.25"}, {"container_port", 80}}}};
  auto r = f.call("POST", "/app-services", body.dump());
  REQUIRE(r.status == 201);
  CHECK(r.json()["zone"] == "zone-x");
  CHECK(r.json()["registry_host"] == "docker.io");
  auto cred = f.store->get_credential(r.json()["id"].get<std::string>());
  REQUIRE(cred.ok());
  CHECK_FALSE(cred->has_value());
}

TEST_CASE("PATCH without a password reuses the stored one when the username is unchanged",
          "[api][credentials]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  json patch = {{"app_config",
                 {{"image_ref", "ghcr.io/acme/api:1.1.0"},
                  {"container_port", 8080},
                  {"registry_username", "acme-bot"}}}};
  auto r = f.call("PATCH", "/app-services/" + id, patch.dump());
  REQUIRE(r.status == 200);
  CHECK(r.json()["status"] == "PendingModification");
  CHECK(r.json()["app_config"]["image_ref"] == "ghcr.io/acme/api:1.1.0");
  auto pw = unseal(*f.store, id);
  REQUIRE(pw.ok());
  CHECK(pw->reveal() == kCanary);
  CHECK(f.revision_count(id) == 2);
  auto all = f.call("GET", "/app-services/" + id + "/deployments?all=true", "");
  REQUIRE(all.json()["deployments"].size() == 2);
  CHECK(all.json()["deployments"][0]["revision"] == 2);
  CHECK(all.json()["deployments"][0]["reason"] == "configuration update");
}

TEST_CASE("PATCH that changes the username without a password is 422 and deploys nothing",
          "[api][credentials]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  auto before = f.call("GET", "/app-services/" + id, "").json();
  json patch = {{"app_config",
                 {{"image_ref", "ghcr.io/acme/api:1.1.0"}, {"registry_username", "other-bot"}}}};
  auto r = f.call("PATCH", "/app-services/" + id, patch.dump());
  REQUIRE(r.status == 422);
  CHECK(r.json()["field"] == "app_config.registry_password");
  CHECK(f.revision_count(id) == 1);
  CHECK(f.call("GET", "/app-services/" + id, "").json() == before);
  auto tasks = f.store->pending_tasks(id);
  REQUIRE(tasks.ok());
  CHECK(tasks->size() == 1);
}

TEST_CASE("PATCH with a new username and password replaces the stored credential",
          "[api][credentials]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  json patch = {
      {"app_config", {{"registry_username", "other-bot"}, {"registry_password", kOtherCanary}}}};
  auto r = f.call("PATCH", "/app-services/" + id, patch.dump());
  REQUIRE(r.status == 200);
  auto cred = f.store->get_credential(id);
  REQUIRE(cred.ok());
  REQUIRE(cred->has_value());
  CHECK((*cred)->username == "other-bot");
  CHECK(unseal(*f.store, id)->reveal() == kOtherCanary);
}

TEST_CASE("PATCH with the Go SDK's zero values leaves image_ref and container_port unchanged",
          "[api][sdk]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  json patch = {{"app_config",
                 {{"image_ref", ""}, {"container_port", 0}, {"env", {{"LOG_LEVEL", "debug"}}}}}};
  auto r = f.call("PATCH", "/app-services/" + id, patch.dump());
  REQUIRE(r.status == 200);
  auto j = r.json();
  CHECK(j["app_config"]["image_ref"] == "ghcr.io/acme/api:1.0.0");
  CHECK(j["app_config"]["container_port"] == 8080);
  CHECK(j["app_config"]["env"]["LOG_LEVEL"] == "debug");
}

TEST_CASE("PATCH that changes container_port is 422", "[api]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  auto r = f.call("PATCH", "/app-services/" + id, R"({"app_config": {"container_port": 9090}})");
  CHECK(r.status == 422);
  CHECK(r.json()["field"] == "app_config.container_port");
  CHECK(f.revision_count(id) == 1);
}

TEST_CASE("Rollback to a succeeded deployment reuses the stored password and records the reason",
          "[api][credentials]") {
  Fixture f;
  auto created = f.create("my-api").json();
  const std::string id = created["id"];
  auto first = f.call("GET", "/app-services/" + id + "/deployments?all=true", "")
                   .json()["deployments"][0]["id"]
                   .get<std::string>();
  f.succeed(id, first);
  json patch = {{"app_config", {{"image_ref", "ghcr.io/acme/api:1.1.0"}}}};
  REQUIRE(f.call("PATCH", "/app-services/" + id, patch.dump()).status == 200);

  auto r =
      f.call("POST", "/app-services/" + id + "/rollback", json{{"deployment_id", first}}.dump());
  REQUIRE(r.status == 200);
  CHECK(r.json()["status"] == "PendingModification");
  CHECK(r.json()["app_config"]["image_ref"] == "ghcr.io/acme/api:1.0.0");
  auto all = f.call("GET", "/app-services/" + id + "/deployments?all=true", "").json();
  REQUIRE(all["deployments"].size() == 3);
  CHECK(all["deployments"][0]["reason"] == "rollback to " + first);
  CHECK(unseal(*f.store, id)->reveal() == kCanary);
}

TEST_CASE("Rollback to an unknown deployment is 422 and changes nothing", "[api]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  auto r = f.call("POST", "/app-services/" + id + "/rollback",
                  json{{"deployment_id", berth::crypto::random_uuid()}}.dump());
  CHECK(r.status == 422);
  CHECK(r.json()["field"] == "deployment_id");
  CHECK(f.revision_count(id) == 1);
}

TEST_CASE("Deployments are listed newest first and only succeeded ones unless all=true", "[api]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  auto pending = f.call("GET", "/app-services/" + id + "/deployments", "");
  REQUIRE(pending.status == 200);
  CHECK(pending.json()["deployments"].empty());
  const std::string first = f.call("GET", "/app-services/" + id + "/deployments?all=true", "")
                                .json()["deployments"][0]["id"];
  f.succeed(id, first);
  REQUIRE(f.call("PATCH", "/app-services/" + id,
                 R"({"app_config": {"image_ref": "ghcr.io/acme/api:2.0.0"}})")
              .status == 200);
  auto ok_only = f.call("GET", "/app-services/" + id + "/deployments", "").json();
  REQUIRE(ok_only["deployments"].size() == 1);
  CHECK(ok_only["deployments"][0]["id"] == first);
  auto all = f.call("GET", "/app-services/" + id + "/deployments?all=true", "").json();
  REQUIRE(all["deployments"].size() == 2);
  CHECK(all["deployments"][0]["revision"] == 2);
  CHECK(all["deployments"][1]["revision"] == 1);
}

TEST_CASE("Restart queues a restart task for the running deployment", "[api]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  auto early = f.call("POST", "/app-services/" + id + "/restart", "");
  CHECK(early.status == 409);
  const std::string first = f.call("GET", "/app-services/" + id + "/deployments?all=true", "")
                                .json()["deployments"][0]["id"];
  f.succeed(id, first);
  // The Python SDK sends a JSON content type even without a body.
  auto r = f.call("POST", "/app-services/" + id + "/restart", "", "alice", "",
                  {{"Content-Type", "application/json"}});
  REQUIRE(r.status == 202);
  auto tasks = f.store->pending_tasks(id);
  REQUIRE(tasks.ok());
  bool restart = false;
  for (const auto& t : *tasks)
    restart |= t.kind == berth::core::TaskKind::kRestart && t.revision_id == first;
  CHECK(restart);
  CHECK(f.revision_count(id) == 1);
}

TEST_CASE("Body-less GET and DELETE with a JSON content type are accepted", "[api][sdk]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  std::map<std::string, std::string> h = {{"Content-Type", "application/json"}};
  CHECK(f.call("GET", "/app-services", "", "alice", "", h).status == 200);
  CHECK(f.call("GET", "/app-services/" + id, "", "alice", "", h).status == 200);
  CHECK(f.call("DELETE", "/app-services/" + id, "", "alice", "", h).status == 200);
}

TEST_CASE("DELETE of a never-deployed service forgets it at once", "[api]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  auto r = f.call("DELETE", "/app-services/" + id, "");
  REQUIRE(r.status == 200);
  CHECK(r.json()["status"] == "Deleting");
  CHECK(f.call("GET", "/app-services/" + id, "").status == 404);
  CHECK(f.call("GET", "/app-services", "").json()["app_services"].empty());
  auto cred = f.store->get_credential(id);
  CHECK((!cred.ok() || !cred->has_value()));
  // The name is free again.
  CHECK(f.create("my-api").status == 201);
}

TEST_CASE("DELETE of a placed service is 202 Deleting and queues a removal", "[api]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  const std::string first = f.call("GET", "/app-services/" + id + "/deployments?all=true", "")
                                .json()["deployments"][0]["id"];
  f.succeed(id, first);
  auto r = f.call("DELETE", "/app-services/" + id, "");
  REQUIRE(r.status == 202);
  CHECK(r.json()["status"] == "Deleting");
  CHECK(f.call("GET", "/app-services/" + id, "").json()["status"] == "Deleting");
  auto tasks = f.store->pending_tasks(id);
  REQUIRE(tasks.ok());
  bool removal = false;
  for (const auto& t : *tasks) removal |= t.kind == berth::core::TaskKind::kRemove;
  CHECK(removal);
  CHECK(f.call("PATCH", "/app-services/" + id, R"({"app_config": {"env": {}}})").status == 409);
  CHECK(f.call("DELETE", "/app-services/" + id, "").status == 202);
}

TEST_CASE("Two accounts see only their own app services", "[api][auth]") {
  Fixture f;
  const std::string alice_app = f.create("alice-app").json()["id"];
  auto bob = f.create("bob-app", "bob");
  REQUIRE(bob.status == 201);
  const std::string bob_app = bob.json()["id"];
  // Same name in another account is fine.
  CHECK(f.create("alice-app", "bob").status == 201);

  CHECK(f.call("GET", "/app-services/" + alice_app, "", "bob").status == 404);
  CHECK(f.call("GET", "/app-services/" + alice_app + "/deployments", "", "bob").status == 404);
  CHECK(f.call("PATCH", "/app-services/" + alice_app, R"({"app_config": {"env": {}}})", "bob")
            .status == 404);
  CHECK(f.call("POST", "/app-services/" + alice_app + "/restart", "", "bob").status == 404);
  CHECK(f.call("DELETE", "/app-services/" + alice_app, "", "bob").status == 404);
  CHECK(f.call("GET", "/app-services/" + alice_app, "").status == 200);

  auto alice_list = f.call("GET", "/app-services", "").json()["app_services"];
  REQUIRE(alice_list.size() == 1);
  CHECK(alice_list[0]["id"] == alice_app);
  auto bob_list = f.call("GET", "/app-services", "", "bob").json()["app_services"];
  CHECK(bob_list.size() == 2);
  for (const auto& s : bob_list) CHECK(s["id"] != alice_app);
  (void)bob_app;
}

TEST_CASE("Requests without valid credentials get 401 with Basic and Bearer challenges",
          "[api][auth]") {
  Fixture f;
  auto none = berth::testing::http_request(f.client(), "GET", "/app-services");
  REQUIRE(none.ok());
  f.responses.push_back(none);
  CHECK(none.status == 401);
  CHECK(none.header("www-authenticate").find("Basic realm=\"berth\"") != std::string::npos);
  CHECK(none.header("www-authenticate").find("Bearer") != std::string::npos);
  CHECK(none.json().contains("error"));

  CHECK(f.call("GET", "/app-services", "", "alice", "wrong-password").status == 401);
  CHECK(f.call("GET", "/app-services", "", "nobody", "x").status == 401);
  CHECK(f.call("GET", "/app-services", "", "alice", "", {{"Authorization", "Basic !!!"}}).status ==
        401);
  CHECK(f.call("GET", "/app-services", "", "alice", "",
               {{"Authorization", "Bearer berth_0000000000000000_nope"}})
            .status == 401);
  // A rejected create changes nothing.
  json body = {{"name", "x-app"},
               {"plan_name", "tier-1"},
               {"app_config", {{"image_ref", "nginx"}, {"container_port", 80}}}};
  CHECK(f.call("POST", "/app-services", body.dump(), "alice", "wrong").status == 401);
  CHECK(f.store->list_services(f.alice_id)->empty());
}

TEST_CASE("A Bearer token authenticates as its account", "[api][auth]") {
  Fixture f;
  REQUIRE(f.create("my-api").status == 201);
  auto r =
      f.call("GET", "/app-services", "", "", "", {{"Authorization", "Bearer " + f.alice_token}});
  REQUIRE(r.status == 200);
  CHECK(r.json()["app_services"].size() == 1);
}

TEST_CASE("Bad requests get the documented 4xx and change nothing", "[api][errors]") {
  Fixture f;
  const std::string id = f.create("my-api").json()["id"];
  const auto services_before = f.store->list_services(f.alice_id)->size();

  SECTION("malformed JSON is 400 and does not echo the body") {
    auto r =
        f.call("POST", "/app-services", "{\"app_config\": {\"registry_password\": \"" + kCanary);
    CHECK(r.status == 400);
    CHECK(r.json().contains("error"));
  }
  SECTION("a body that is not an object is 400") {
    CHECK(f.call("POST", "/app-services", "[1,2]").status == 400);
  }
  SECTION("a non-JSON content type is 415") {
    auto r = f.call("POST", "/app-services", R"({"name": "x"})", "alice", "",
                    {{"Content-Type", "text/plain"}});
    CHECK(r.status == 415);
    CHECK(f.call("PATCH", "/app-services/" + id, R"({"app_config": {}})", "alice", "",
                 {{"Content-Type", "application/x-www-form-urlencoded"}})
              .status == 415);
  }
  SECTION("an unsupported method is 405 with Allow") {
    auto r = f.call("PUT", "/app-services/" + id, "{}");
    CHECK(r.status == 405);
    CHECK(r.header("allow") == "GET, PATCH, DELETE");
    auto r2 = f.call("DELETE", "/app-services", "");
    CHECK(r2.status == 405);
    CHECK(r2.header("allow") == "GET, POST");
  }
  SECTION("a taken name is 409") {
    auto r = f.create("my-api");
    CHECK(r.status == 409);
    CHECK(r.json()["field"] == "name");
  }
  SECTION("a misspelled registry_password is 422 and creates nothing") {
    json body = {{"name", "typo-app"},
                 {"plan_name", "tier-2"},
                 {"app_config",
                  {{"image_ref", "ghcr.io/acme/api:1.0.0"},
                   {"container_port", 8080},
                   {"registry_username", "acme-bot"},
                   {"registry_pasword", kCanary}}}};
    auto r = f.call("POST", "/app-services", body.dump());
    CHECK(r.status == 422);
    CHECK(r.json()["field"].get<std::string>().find("registry_pasword") != std::string::npos);
  }
  SECTION("validation errors name the field") {
    json body = {{"name", "ok-name"},
                 {"plan_name", "tier-99"},
                 {"app_config", {{"image_ref", "nginx"}, {"container_port", 80}}}};
    auto r = f.call("POST", "/app-services", body.dump());
    CHECK(r.status == 422);
    CHECK(r.json()["field"] == "plan_name");
  }
  SECTION("unknown ids and paths are 404") {
    CHECK(f.call("GET", "/app-services/" + berth::crypto::random_uuid(), "").status == 404);
    CHECK(f.call("GET", "/nowhere", "").status == 404);
    CHECK(f.call("GET", "/app-services/" + id + "/nothing", "").status == 404);
  }
  CHECK(f.store->list_services(f.alice_id)->size() == services_before);
  CHECK(f.revision_count(id) == 1);
}

TEST_CASE("A 2 MiB body is refused with 413 before it is read", "[api][limits]") {
  Fixture f;
  std::string big(2 * 1024 * 1024, 'a');
  auto r = f.call("POST", "/app-services", "{\"name\": \"" + big + "\"}");
  CHECK(r.status == 413);
  CHECK(f.store->list_services(f.alice_id)->empty());
}

TEST_CASE("A chunked body over 1 MiB is refused with 413", "[api][limits]") {
  Fixture f;
  std::string chunk(512 * 1024, 'a');
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
  std::string req =
      "POST /app-services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Authorization: " +
      berth::testing::basic_auth("alice", "alice-password") +
      "\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) req += size_line + chunk + "\r\n";
  req += "0\r\n\r\n";
  auto r =
      berth::testing::raw_exchange("127.0.0.1", f.server->port(), req, std::chrono::seconds(5));
  CHECK(r.received.rfind("HTTP/1.1 413", 0) == 0);
}

TEST_CASE("An oversized header block is refused with 431", "[api][limits]") {
  Fixture f;
  auto r =
      f.call("GET", "/app-services", "", "alice", "", {{"X-Padding", std::string(32 * 1024, 'p')}});
  CHECK(r.status == 431);
}

TEST_CASE("A client that trickles its request is cut off at the read deadline", "[api][limits]") {
  berth::api::ApiOptions o;
  o.read_timeout = std::chrono::milliseconds(300);
  Fixture f(o);
  const auto start = std::chrono::steady_clock::now();
  auto r = berth::testing::raw_exchange("127.0.0.1", f.server->port(),
                                        "GET /app-services HTTP/1.1\r\nHost: x\r\n",
                                        std::chrono::seconds(5));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(r.closed_by_peer);
  CHECK(elapsed < std::chrono::seconds(3));
  CHECK(r.received.empty());
}

TEST_CASE("Keep-alive connections serve several requests", "[api]") {
  Fixture f;
  HttpConnection c(f.client());
  std::map<std::string, std::string> h = {
      {"Authorization", berth::testing::basic_auth("alice", "alice-password")}};
  auto a = c.request("GET", "/app-services", "", h);
  REQUIRE(a.status == 200);
  CHECK(c.connected());
  auto b = c.request("GET", "/healthz", "", h);
  CHECK(b.status == 200);
  CHECK(c.connected());
}

TEST_CASE("Connections over the limit are closed at once", "[api][limits]") {
  berth::api::ApiOptions o;
  o.max_connections = 1;
  Fixture f(o);
  HttpConnection first(f.client());
  std::map<std::string, std::string> h = {
      {"Authorization", berth::testing::basic_auth("alice", "alice-password")}};
  REQUIRE(first.request("GET", "/app-services", "", h).status == 200);
  REQUIRE(first.connected());
  auto second = berth::testing::http_request(f.client(), "GET", "/healthz");
  CHECK_FALSE(second.ok());
  // The first connection still works.
  CHECK(first.request("GET", "/healthz", "", h).status == 200);
}

TEST_CASE("Malformed HTTP is answered with 400", "[api][errors]") {
  Fixture f;
  auto r = berth::testing::raw_exchange("127.0.0.1", f.server->port(), "NOT HTTP AT ALL\r\n\r\n",
                                        std::chrono::seconds(5));
  CHECK(r.received.rfind("HTTP/1.1 400", 0) == 0);
}

TEST_CASE("Plain HTTP on a non-loopback address is refused unless allowed", "[api]") {
  berth::testing::ScratchDir dir{"berth-api"};
  auto store = berth::store::SqliteStore::open(dir.path / "data");
  REQUIRE(store.ok());
  berth::api::ApiOptions o;
  o.listen_host = "0.0.0.0";
  o.new_id = [] { return berth::crypto::random_uuid(); };
  berth::api::ApiServer server(
      o, **store, [] { return 0; }, [](const std::string&) {});
  auto s = server.start();
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == berth::ErrorCode::kInvalidArgument);
}

TEST_CASE("HTTPS with a certificate from the berth CA is verified by the client", "[api][tls]") {
  berth::testing::ScratchDir tls_dir{"berth-api"};
  auto ca = berth::crypto::create_ca("berth-test-ca", 3600);
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
  Fixture f(o);

  HttpClientOptions c = f.client();
  c.tls = true;
  c.ca_pem = ca->cert_pem;
  auto r = berth::testing::http_request(
      c, "GET", "/app-services", "",
      {{"Authorization", berth::testing::basic_auth("alice", "alice-password")}});
  REQUIRE(r.ok());
  CHECK(r.status == 200);

  // A client that does not trust the CA fails the handshake.
  auto other_ca = berth::crypto::create_ca("someone-else", 3600);
  REQUIRE(other_ca.ok());
  c.ca_pem = other_ca->cert_pem;
  auto refused = berth::testing::http_request(c, "GET", "/healthz");
  CHECK_FALSE(refused.ok());
  // Nor does plain HTTP get an answer from the TLS port.
  auto plain = berth::testing::http_request(f.client(), "GET", "/healthz");
  CHECK((!plain.ok() || plain.status == 0 || plain.status >= 400));
}
