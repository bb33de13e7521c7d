// A new registry password is checked against the real registry (Docker Distribution with
// htpasswd, hack/testenv) before it replaces the stored one, and a rollback deploys the digest
// its target ran. The handler is driven directly (no sockets of its own) over a real
// SqliteStore and the real registry client.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/handler.h"
#include "common/base64.h"
#include "common/log.h"
#include "core/revision.h"
#include "crypto/password.h"
#include "registry/digest_resolver.h"
#include "store/sqlite_store.h"
#include "support/testenv.h"

namespace fs = std::filesystem;
using namespace berth;
using nlohmann::json;

namespace {

// berth_credential_checks_total{result} in the process registry the handler counts in by default.
double checks(const char* result) {
  return metrics::process_registry()
      .counter("berth_credential_checks_total", "", {"result"})
      .with({result})
      .value();
}

const std::string kWrongPassword = "berth-wrong-canary-7d41c0";

struct LogCapture {
  std::mutex mu;
  std::vector<std::string> lines;
  LogCapture() {
    log::set_sink([this](std::string_view line) {
      std::lock_guard lock(mu);
      lines.emplace_back(line);
    });
  }
  ~LogCapture() { log::set_sink({}); }
  std::string all() {
    std::lock_guard lock(mu);
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  }
};

// A port with nothing listening: connecting to it is refused at once.
std::string closed_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return std::to_string(ntohs(addr.sin_port));
}

struct Fixture {
  LogCapture logs;
  testenv::Registry& reg = testenv::Registry::shared(testenv::Mode::kHtpasswd);
  std::string dir = testenv::make_temp_dir("credcheck");
  std::unique_ptr<store::SqliteStore> store;
  std::unique_ptr<registry::RegistryDigestResolver> resolver;
  std::unique_ptr<api::Handler> handler;
  std::atomic<core::UnixMillis> now{1'700'000'000'000};
  std::string account;
  std::vector<std::string> changed;
  std::vector<api::HttpResponse> responses;

  Fixture() {
    auto opened = store::SqliteStore::open(dir + "/data");
    REQUIRE(opened.ok());
    store = std::move(opened).value();
    auto alice = store->add_account("alice", Secret("alice-password"));
    REQUIRE(alice.ok());
    account = *alice;
    registry::RegistryOptions options;
    options.ca_files[reg.host()] = reg.ca_file();
    options.timeout = std::chrono::seconds(10);
    resolver = std::make_unique<registry::RegistryDigestResolver>(options);
    api::HandlerOptions handler_options;
    handler_options.new_id = [] { return crypto::random_uuid(); };
    handler_options.credential_check = resolver.get();
    handler = std::make_unique<api::Handler>(
        handler_options, *store, [this] { return now.fetch_add(1000); },
        [this](const std::string& id) { changed.push_back(id); });
  }

  ~Fixture() {
    for (const auto& r : responses) {
      CHECK(r.body.find(reg.password()) == std::string::npos);
      CHECK(r.body.find(kWrongPassword) == std::string::npos);
    }
    const std::string lines = logs.all();
    CHECK(lines.find(reg.password()) == std::string::npos);
    CHECK(lines.find(kWrongPassword) == std::string::npos);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  api::HttpResponse call(const std::string& method, const std::string& target, const json& body) {
    api::HttpRequest req;
    req.method = method;
    req.target = target;
    req.headers["authorization"] = "Basic " + base64::encode("alice:alice-password");
    if (!body.is_null()) {
      req.headers["content-type"] = "application/json";
      req.body = body.dump();
    }
    responses.push_back(handler->handle(req));
    return responses.back();
  }

  api::HttpResponse create(const std::string& image, const std::string& password) {
    return call("POST", "/app-services",
                {{"name", "web"},
                 {"plan_name", "tier-2"},
                 {"app_config",
                  {{"image_ref", image},
                   {"container_port", 8080},
                   {"registry_username", reg.username()},
                   {"registry_password", password}}}});
  }

  api::HttpResponse patch(const std::string& id, const json& app_config) {
    return call("PATCH", "/app-services/" + id, {{"app_config", app_config}});
  }

  std::vector<core::Revision> revisions(const std::string& id) {
    auto revs = store->list_revisions(id, true);
    REQUIRE(revs.ok());
    return *revs;
  }

  core::Revision desired(const std::string& id) {
    auto svc = store->load_service(id);
    REQUIRE(svc.ok());
    auto rev = store->get_revision(id, svc->desired_deployment_id);
    REQUIRE(rev.ok());
    return *rev;
  }

  // Marks the desired revision succeeded and serving, as an agent's report would.
  core::Revision succeed(const std::string& id) {
    auto svc = store->load_service(id);
    REQUIRE(svc.ok());
    core::Revision rev = desired(id);
    rev.state = core::RevisionState::kSucceeded;
    rev.finished_at = now.load();
    svc->status = core::ServiceStatus::kRunning;
    svc->current_deployment_id = rev.id;
    svc->agent = "agent-1";
    REQUIRE(store->record_outcome(rev, *svc, 20).ok());
    return rev;
  }

  std::string unsealed(const std::string& id) {
    auto cred = store->get_credential(id);
    REQUIRE(cred.ok());
    REQUIRE(cred->has_value());
    auto pw = store->unseal_password(id, (*cred)->registry_host, (*cred)->username);
    REQUIRE(pw.ok());
    return std::string(pw->reveal());
  }
};

std::string id_of(const api::HttpResponse& r) {
  return json::parse(r.body).at("id").get<std::string>();
}

}  // namespace

TEST_CASE("Create with a password the registry refuses is 422 and stores nothing",
          "[api][credentials]") {
  Fixture f;
  const double refused = checks("refused");
  auto r = f.create(f.reg.image("v1"), kWrongPassword);
  CHECK(r.status == 422);
  CHECK(checks("refused") == refused + 1);
  auto body = json::parse(r.body);
  CHECK(body.at("field") == "app_config.registry_password");
  CHECK_THAT(body.at("error").get<std::string>(), Catch::Contains("refused the credentials") &&
                                                      Catch::Contains(f.reg.username()) &&
                                                      Catch::Contains("401"));
  auto services = f.store->list_services(f.account);
  REQUIRE(services.ok());
  CHECK(services->empty());
  CHECK(f.changed.empty());
}

TEST_CASE("Create with a working password records the digest the check resolved",
          "[api][credentials]") {
  Fixture f;
  const double accepted = checks("accepted");
  auto r = f.create(f.reg.image("v1"), f.reg.password());
  REQUIRE(r.status == 201);
  CHECK(checks("accepted") == accepted + 1);
  const std::string id = id_of(r);
  // The reconciler skips its resolve step for a revision that already has a digest.
  CHECK(f.desired(id).image_digest == f.reg.digest("v1"));
}

TEST_CASE("PATCH with a password the registry refuses is 422 and keeps the working credential",
          "[api][credentials]") {
  Fixture f;
  auto created = f.create(f.reg.image("v1"), f.reg.password());
  REQUIRE(created.status == 201);
  const std::string id = id_of(created);
  f.succeed(id);
  auto before = f.store->load_service(id);
  REQUIRE(before.ok());
  auto stored_before = f.store->get_credential(id);
  REQUIRE(stored_before.ok());
  REQUIRE(stored_before->has_value());
  const auto revisions_before = f.revisions(id).size();
  f.changed.clear();

  auto r = f.patch(id, {{"image_ref", f.reg.image("v2")},
                        {"registry_username", f.reg.username()},
                        {"registry_password", kWrongPassword}});
  CHECK(r.status == 422);
  CHECK(json::parse(r.body).at("field") == "app_config.registry_password");
  CHECK_THAT(json::parse(r.body).at("error").get<std::string>(),
             Catch::Contains("refused the credentials"));

  // Nothing moved: same credential (and the old password still unseals), same revision, no
  // new revision, no reconcile queued.
  auto stored_after = f.store->get_credential(id);
  REQUIRE(stored_after.ok());
  REQUIRE(stored_after->has_value());
  CHECK((*stored_after)->set_at == (*stored_before)->set_at);
  CHECK((*stored_after)->username == (*stored_before)->username);
  CHECK(f.unsealed(id) == f.reg.password());
  auto after = f.store->load_service(id);
  REQUIRE(after.ok());
  CHECK(after->generation == before->generation);
  CHECK(after->desired_deployment_id == before->desired_deployment_id);
  CHECK(after->config.image_ref == f.reg.image("v1"));
  CHECK(f.revisions(id).size() == revisions_before);
  CHECK(f.changed.empty());

  SECTION("and the right password is then accepted, pinned to the digest it resolved") {
    auto ok = f.patch(id, {{"image_ref", f.reg.image("v2")},
                           {"registry_username", f.reg.username()},
                           {"registry_password", f.reg.password()}});
    REQUIRE(ok.status == 200);
    CHECK(f.revisions(id).size() == revisions_before + 1);
    CHECK(f.desired(id).image_digest == f.reg.digest("v2"));
    CHECK(f.unsealed(id) == f.reg.password());
    CHECK(f.changed == std::vector<std::string>{id});
  }
}

TEST_CASE("A new password for a registry that cannot be reached is accepted unchecked",
          "[api][credentials]") {
  Fixture f;
  auto created = f.create(f.reg.image("v1"), f.reg.password());
  REQUIRE(created.status == 201);
  const std::string id = id_of(created);
  f.succeed(id);

  const std::string down = "127.0.0.1:" + closed_loopback_port() + "/berth/sample:v1";
  const double unchecked = checks("unchecked");
  auto r = f.patch(id, {{"image_ref", down},
                        {"registry_username", "someone"},
                        {"registry_password", kWrongPassword}});
  CHECK(r.status == 200);
  CHECK(checks("unchecked") == unchecked + 1);
  // Stored as sent, and left for the rollout to resolve (and report) once the registry is up.
  auto stored = f.store->get_credential(id);
  REQUIRE(stored.ok());
  REQUIRE(stored->has_value());
  CHECK((*stored)->username == "someone");
  CHECK(f.unsealed(id) == kWrongPassword);
  CHECK(f.desired(id).image_digest.empty());
  CHECK(f.desired(id).config.image_ref == down);
  CHECK_THAT(f.logs.all(), Catch::Contains("could not be checked"));
}

TEST_CASE("A rollback deploys the digest its target ran, not what the tag names now",
          "[api][rollback]") {
  Fixture f;
  auto& reg = f.reg;
  // A repository of this test's own, so moving its tag disturbs no other test.
  const std::string repo = "berth/rollback-" + crypto::random_uuid().substr(0, 8);
  const std::string authfile = f.dir + "/auth.json";
  reg.write_authfile(authfile);
  auto move_tag = [&](const std::string& from_tag) {
    std::string out;
    int rc = testenv::run_command(
        {"skopeo", "copy", "--authfile", authfile, "--src-cert-dir", reg.ca_dir(),
         "--dest-cert-dir", reg.ca_dir(), "docker://" + reg.image(from_tag),
         "docker://" + reg.host() + "/" + repo + ":stable"},
        &out);
    INFO(out);
    REQUIRE(rc == 0);
  };
  move_tag("v1");
  const std::string image = reg.host() + "/" + repo + ":stable";

  auto created = f.create(image, reg.password());
  REQUIRE(created.status == 201);
  const std::string id = id_of(created);
  const core::Revision first = f.succeed(id);
  REQUIRE(first.image_digest == reg.digest("v1"));

  // The tag moves to other bits, and something else is deployed meanwhile.
  move_tag("v2");
  REQUIRE(f.patch(id, {{"image_ref", reg.image("v2")}}).status == 200);
  f.succeed(id);

  SECTION("with the stored credential") {
    auto r = f.call("POST", "/app-services/" + id + "/rollback", {{"deployment_id", first.id}});
    REQUIRE(r.status == 200);
    const core::Revision rolled = f.desired(id);
    CHECK(rolled.id != first.id);
    CHECK(rolled.config.image_ref == image);
    CHECK(rolled.image_digest == reg.digest("v1"));
    CHECK(rolled.reason == core::rollback_reason(first.id));
  }
  SECTION("with a new password, checked against the pinned digest") {
    auto r = f.call("POST", "/app-services/" + id + "/rollback",
                    {{"deployment_id", first.id}, {"registry_password", reg.password()}});
    REQUIRE(r.status == 200);
    CHECK(f.desired(id).image_digest == reg.digest("v1"));
  }
  SECTION("with a password the registry refuses: 422, nothing deployed") {
    const auto count = f.revisions(id).size();
    auto r = f.call("POST", "/app-services/" + id + "/rollback",
                    {{"deployment_id", first.id}, {"registry_password", kWrongPassword}});
    CHECK(r.status == 422);
    CHECK(json::parse(r.body).at("field") == "registry_password");
    CHECK(f.revisions(id).size() == count);
    CHECK(f.unsealed(id) == reg.password());
  }
}
