#pragma once
// A running ApiServer over a real SqliteStore in a temp dir, with two accounts (alice with a
// Bearer token, bob) and a way to put app services, revisions and deploy logs straight into
// the store, as the runtime would write them: for the status page's tests
// (tests/api/ui_itest.cpp, tests/api/ui_browser_itest.cpp). Use from the test thread.
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "api/server.h"
#include "core/change.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "support/http_client.h"

namespace berth::testing::ui {

struct UiFixture {
  std::filesystem::path dir;
  std::unique_ptr<store::SqliteStore> store;
  std::unique_ptr<api::ApiServer> server;
  std::atomic<core::UnixMillis> now{1'700'000'000'000};
  std::string alice_id;
  std::string bob_id;
  std::string alice_token;

  explicit UiFixture(api::ApiOptions options = {}) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "berth-ui-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    auto opened = store::SqliteStore::open(dir / "data");
    REQUIRE(opened.ok());
    store = std::move(opened).value();
    auto alice = store->add_account("alice", Secret("alice-password"));
    REQUIRE(alice.ok());
    alice_id = *alice;
    auto bob = store->add_account("bob", Secret("bob-password"));
    REQUIRE(bob.ok());
    bob_id = *bob;
    auto token = store->create_token("alice", "ui tests");
    REQUIRE(token.ok());
    alice_token = std::string(token->reveal());

    options.listen_host = "127.0.0.1";
    options.listen_port = 0;
    options.new_id = [] { return crypto::random_uuid(); };
    server = std::make_unique<api::ApiServer>(
        options, *store, [this] { return now.fetch_add(1000); }, [](const std::string&) {});
    auto started = server->start();
    if (!started.ok()) FAIL(started.error().message);
  }

  ~UiFixture() {
    server->stop();
    server.reset();
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(server->port()); }

  // GET `target` with `authorization` as the Authorization value (empty: none).
  HttpResult get(const std::string& target, const std::string& authorization,
                 std::map<std::string, std::string> headers = {}) {
    if (!authorization.empty()) headers["Authorization"] = authorization;
    HttpClientOptions o;
    o.port = server->port();
    auto r = http_request(o, "GET", target, "", headers);
    REQUIRE(r.ok());
    return r;
  }
  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& authorization) {
    HttpClientOptions o;
    o.port = server->port();
    auto r = http_request(o, method, target, "", {{"Authorization", authorization}});
    REQUIRE(r.ok());
    return r;
  }
  std::string alice_basic() const { return basic_auth("alice", "alice-password"); }
  std::string bob_basic() const { return basic_auth("bob", "bob-password"); }
  std::string alice_bearer() const { return "Bearer " + alice_token; }

  // An app service of `account_id` put straight into the store (no API validation: the page
  // must cope with whatever the store holds). Returns the change (service and revision 1).
  core::Change add_service(const std::string& account_id, const std::string& name,
                           const std::string& image = "registry.example/acme/api:1.0") {
    core::AppService s;
    s.id = crypto::random_uuid();
    s.account_id = account_id;
    s.name = name;
    s.plan_name = "tier-2";
    s.zone = "local";
    s.config.image_ref = image;
    s.config.container_port = 8080;
    s.registry_host = "registry.example";
    core::Change change = core::create_change(std::move(s), "", core::CredentialWrite{},
                                              {[] { return crypto::random_uuid(); }, now.load()});
    REQUIRE(store->create_service(change).ok());
    return change;
  }

  // Records revision `revision`'s outcome with `logs` and the service's runtime fields, as the
  // runtime does when a rollout ends.
  void finish(core::Change& change, core::RevisionState state,
              std::vector<core::DeployLogEntry> logs, const std::string& digest,
              const std::string& last_error, const std::string& url = {}) {
    auto service = store->load_service(change.service.id);
    REQUIRE(service.ok());
    core::Revision rev = *change.revision;
    rev.state = state;
    rev.image_digest = digest;
    rev.deploy_logs = std::move(logs);
    rev.finished_at = now.load();
    if (state == core::RevisionState::kSucceeded) {
      service->status = core::ServiceStatus::kRunning;
      service->current_deployment_id = rev.id;
      service->url = url;
    } else {
      service->status = core::ServiceStatus::kFailed;
    }
    service->agent = "agent-1";
    service->last_error = last_error;
    REQUIRE(store->record_outcome(rev, *service, 20).ok());
  }
};

}  // namespace berth::testing::ui
