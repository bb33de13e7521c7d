// The live progress of a rollout through the REST API (ApiOptions::progress, docs/api.md
// "progress"): GET /app-services/{id} carries a `progress` object while the source has one, and
// the deployments list shows its entries as the deploy_logs of the pending revision until the
// outcome is recorded. Real loopback sockets and a real SqliteStore; the progress source is a
// fake standing in for runtime::Reconciler::progress.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "api/server.h"
#include "api_fixture.h"
#include "common/log.h"
#include "core/progress.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "support/http_client.h"
#include "support/log_capture.h"
#include "support/secret_scan.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using berth::Secret;
using berth::testing::HttpClientOptions;
using berth::testing::HttpResult;
using berth::testing::LogCapture;
using nlohmann::json;

namespace {

const std::string kCanary = "ghp_PROGRESS_CANARY_71c2";

// What runtime::Reconciler::progress answers, set by the test (the server asks from its threads).
class FakeProgress {
 public:
  void set(const std::string& id, berth::core::RolloutProgress p) {
    std::lock_guard lock(mu_);
    by_service_[id] = std::move(p);
  }
  void clear(const std::string& id) {
    std::lock_guard lock(mu_);
    by_service_.erase(id);
  }
  std::optional<berth::core::RolloutProgress> get(const std::string& id) const {
    std::lock_guard lock(mu_);
    auto it = by_service_.find(id);
    if (it == by_service_.end()) return std::nullopt;
    return it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, berth::core::RolloutProgress> by_service_;
};

struct Fixture {
  LogCapture logs;
  berth::testing::ScratchDir dir{"berth-api-progress"};
  FakeProgress progress;
  std::unique_ptr<berth::store::SqliteStore> store;
  std::unique_ptr<berth::api::ApiServer> server;
  std::atomic<berth::core::UnixMillis> now{1'700'000'000'000};
  std::vector<HttpResult> responses;

  Fixture() {
    store = berth::testing::open_api_store(dir.path).store;
    auto options = berth::testing::loopback_api_options();
    options.progress = [this](const std::string& id) { return progress.get(id); };
    server = std::make_unique<berth::api::ApiServer>(
        options, *store, [this] { return now.fetch_add(1000); }, [](const std::string&) {});
    auto started = server->start();
    if (!started.ok()) FAIL(started.error().message);
  }

  ~Fixture() {
    server->stop();
    berth::testing::SecretScan scan;
    scan.add(kCanary, "acme-bot");
    for (const auto& r : responses) CHECK(scan.find_in(r.body).empty());
    for (const auto& line : logs.snapshot()) CHECK(scan.find_in(line).empty());
  }

  HttpResult call(const std::string& method, const std::string& target,
                  const std::string& body = "", const std::string& user = "alice") {
    HttpClientOptions o;
    o.port = server->port();
    std::map<std::string, std::string> headers;
    headers["Authorization"] = berth::testing::basic_auth(user, user + "-password");
    if (!body.empty()) headers["Content-Type"] = "application/json";
    auto r = berth::testing::http_request(o, method, target, body, headers);
    REQUIRE(r.ok());
    responses.push_back(r);
    return r;
  }

  // A new app service (Pending, its first revision pending): {service id, revision id}.
  std::pair<std::string, std::string> create() {
    json body = {{"name", "my-api"},
                 {"plan_name", "tier-2"},
                 {"zone", "se-sto1"},
                 {"app_config",
                  {{"image_ref", "ghcr.io/acme/api:1.0.0"},
                   {"container_port", 8080},
                   {"registry_username", "acme-bot"},
                   {"registry_password", kCanary}}}};
    auto r = call("POST", "/app-services", body.dump());
    REQUIRE(r.status == 201);
    const std::string id = r.json()["id"];
    auto revs = store->list_revisions(id, true);
    REQUIRE(revs.ok());
    REQUIRE(revs->size() == 1);
    return {id, revs->front().id};
  }

  // Records the revision's outcome with the agent's full log, as the runtime does at the end.
  void succeed(const std::string& service_id, const std::string& revision_id) {
    auto svc = store->load_service(service_id);
    REQUIRE(svc.ok());
    auto rev = store->get_revision(service_id, revision_id);
    REQUIRE(rev.ok());
    rev->state = berth::core::RevisionState::kSucceeded;
    rev->finished_at = now.load();
    rev->deploy_logs = {
        berth::core::DeployLogEntry{"pull", "ok", "pulled: 5/5 layers", "", now.load(), 900},
        berth::core::DeployLogEntry{"start", "ok", "started", "", now.load(), 40}};
    svc->status = berth::core::ServiceStatus::kRunning;
    svc->current_deployment_id = revision_id;
    svc->agent = "agent-1";
    REQUIRE(store->record_outcome(*rev, *svc, 20).ok());
  }

  json deployments(const std::string& id) {
    auto r = call("GET", "/app-services/" + id + "/deployments?all=true");
    REQUIRE(r.status == 200);
    return r.json()["deployments"];
  }
};

berth::core::RolloutProgress pulling(const std::string& task_id) {
  berth::core::RolloutProgress p;
  p.task_id = task_id;
  p.step = "pull";
  p.layers_done = 3;
  p.layers_total = 5;
  p.bytes_done = 41'200'000;
  p.bytes_total = 80'000'000;
  p.updated_at = 1'700'000'123'456;
  p.entries = {
      berth::core::DeployLogEntry{"pull", "info", "pulling: 1/5 layers, 8.0 MB of 80.0 MB", "",
                                  1'700'000'100'000, 0},
      berth::core::DeployLogEntry{"pull", "info", "pulling: 3/5 layers, 41.2 MB of 80.0 MB", "",
                                  1'700'000'123'456, 0}};
  return p;
}

}  // namespace

TEST_CASE("An app's status carries the live progress of its rollout while there is one",
          "[api][progress]") {
  Fixture f;
  auto [id, rev] = f.create();

  auto before = f.call("GET", "/app-services/" + id);
  REQUIRE(before.status == 200);
  CHECK_FALSE(before.json().contains("progress"));

  f.progress.set(id, pulling("t-1"));
  auto during = f.call("GET", "/app-services/" + id);
  REQUIRE(during.status == 200);
  const json j = during.json();
  REQUIRE(j.contains("progress"));
  const json& p = j["progress"];
  CHECK(p["step"] == "pull");
  CHECK(p["layersDone"] == 3);
  CHECK(p["layersTotal"] == 5);
  CHECK(p["bytesDone"] == 41'200'000);
  CHECK(p["bytesTotal"] == 80'000'000);
  CHECK(p["updatedAt"] == berth::core::format_rfc3339(1'700'000'123'456));
  CHECK(p.size() == 6);  // exactly these names: no task id, no log entries
  CHECK(j["status"] == "Pending");

  // The list of services is not where progress is shown.
  auto list = f.call("GET", "/app-services");
  REQUIRE(list.status == 200);
  const json listed = list.json();  // a named copy: the loop must not outlive a temporary
  for (const auto& s : listed["app_services"]) CHECK_FALSE(s.contains("progress"));

  // Another account does not see the service, progress or not.
  CHECK(f.call("GET", "/app-services/" + id, "", "bob").status == 404);

  // The rollout ends: the source forgets it, and so does the status.
  f.succeed(id, rev);
  f.progress.clear(id);
  auto after = f.call("GET", "/app-services/" + id);
  REQUIRE(after.status == 200);
  CHECK(after.json()["status"] == "Running");
  CHECK_FALSE(after.json().contains("progress"));
}

TEST_CASE("The pending revision's deploy logs are the live entries until its outcome is recorded",
          "[api][progress]") {
  Fixture f;
  auto [id, rev] = f.create();

  auto quiet = f.deployments(id);
  REQUIRE(quiet.size() == 1);
  CHECK(quiet[0]["deploy_logs"].empty());

  f.progress.set(id, pulling("t-1"));
  auto live = f.deployments(id);
  REQUIRE(live.size() == 1);
  CHECK(live[0]["id"] == rev);
  CHECK(live[0]["state"] == "pending");
  const json& logs = live[0]["deploy_logs"];
  REQUIRE(logs.size() == 2);
  CHECK(logs[0]["step"] == "pull");
  CHECK(logs[0]["message"] == "pulling: 1/5 layers, 8.0 MB of 80.0 MB");
  CHECK(logs[1]["message"] == "pulling: 3/5 layers, 41.2 MB of 80.0 MB");
  CHECK(logs[1]["started_at"] == berth::core::format_rfc3339(1'700'000'123'456));

  // Once the outcome is stored, the stored log wins, even while the source still has entries
  // (the result and the end of progress are not one atomic step).
  f.succeed(id, rev);
  auto recorded = f.deployments(id);
  REQUIRE(recorded.size() == 1);
  CHECK(recorded[0]["state"] == "succeeded");
  REQUIRE(recorded[0]["deploy_logs"].size() == 2);
  CHECK(recorded[0]["deploy_logs"][0]["message"] == "pulled: 5/5 layers");
  CHECK(recorded[0]["deploy_logs"][1]["message"] == "started");

  f.progress.clear(id);
  auto after = f.deployments(id);
  REQUIRE(after[0]["deploy_logs"].size() == 2);
  CHECK(after[0]["deploy_logs"][0]["message"] == "pulled: 5/5 layers");
}

TEST_CASE("Progress of a new revision shows on that revision only, not the serving one",
          "[api][progress]") {
  Fixture f;
  auto [id, first] = f.create();
  f.succeed(id, first);
  // A configuration change: a second, pending revision.
  auto patch = f.call("PATCH", "/app-services/" + id,
                      json{{"app_config", {{"image_ref", "ghcr.io/acme/api:2.0.0"}}}}.dump());
  REQUIRE(patch.status == 200);
  auto revs = f.deployments(id);
  REQUIRE(revs.size() == 2);
  CHECK(revs[0]["state"] == "pending");

  f.progress.set(id, pulling("t-2"));
  revs = f.deployments(id);
  REQUIRE(revs.size() == 2);
  CHECK(revs[0]["state"] == "pending");
  REQUIRE(revs[0]["deploy_logs"].size() == 2);
  CHECK(revs[0]["deploy_logs"][1]["message"] == "pulling: 3/5 layers, 41.2 MB of 80.0 MB");
  // The serving revision keeps its own stored log.
  CHECK(revs[1]["id"] == first);
  REQUIRE(revs[1]["deploy_logs"].size() == 2);
  CHECK(revs[1]["deploy_logs"][0]["message"] == "pulled: 5/5 layers");
  CHECK(f.call("GET", "/app-services/" + id).json()["progress"]["step"] == "pull");
}
