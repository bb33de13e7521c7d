// The intake and the Kubernetes state store against the test API server: the credential rules of
// SPEC section 4 in Kubernetes terms (docs/kubernetes.md), what each accepted change leaves in
// the cluster (ControllerRevision, sealed Secret, status), and what a new leader derives from it.
// The registry is a fake here (it knows one password); tests/e2e/kube_* run the real one.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>

#include "common/base64.h"
#include "core/revision.h"
#include "crypto/sealer.h"
#include "kube/app_intake.h"
#include "kube/informer.h"
#include "kube/state_store.h"
#include "kube/types.h"
#include "kube_itest.h"
#include "support/wait.h"

namespace berth::kube {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kNs = "apps";
constexpr const char* kPassword = "intake-canary-7f3a\"\\9c";
constexpr const char* kNewPassword = "intake-canary-rotated-51d0";

std::string digest_of(char c) { return "sha256:" + std::string(64, c); }

// A registry that knows the passwords of "berth" and "robot" at registry.example.
class FakeRegistry final : public core::DigestResolver {
 public:
  Result<std::string> resolve(const std::string& image_ref,
                              const core::RegistryLogin* login) override {
    std::lock_guard lock(mu_);
    ++calls;
    if (login != nullptr) {
      last_password = std::string(login->password.reveal());
      auto it = passwords.find(login->username);
      if (it == passwords.end() || it->second != login->password.reveal())
        return make_error(ErrorCode::kPermissionDenied, "401 Unauthorized");
    }
    if (image_ref.find(":v2") != std::string::npos) return digest_of('b');
    return digest_of('a');
  }
  std::mutex mu_;
  int calls = 0;
  std::string last_password;
  std::map<std::string, std::string> passwords{{"berth", kPassword}, {"robot", kNewPassword}};
};

struct Fixture {
  explicit Fixture(itest::Cluster& c) : cluster(c) {
    itest::make_namespace(*cluster.transport, kNs);
    KubeStateStoreOptions so;
    so.now = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
    so.on_event = [this](const StoreEvent& e) {
      std::lock_guard lock(mu);
      events.push_back(e.reason);
    };
    store = std::make_unique<KubeStateStore>(*cluster.transport, so);
    store->set_keyring(std::move(crypto::Keyring::from_key(Secret(std::string(32, 'k'))).value()));
    IntakeOptions io;
    io.now = so.now;
    io.new_id = [this] { return "id-" + std::to_string(++ids); };
    // As the controller's Secret informer sees it: it lists and watches only opted-in Secrets.
    io.secret_version = [this](const std::string& ns, const std::string& name) {
      auto s = secrets.get(ns, name);
      if (!s) return std::string();
      auto label = s->metadata.labels.find(kRegistryCredentialLabel);
      const bool opted_in = label != s->metadata.labels.end() && label->second == "true";
      return opted_in ? s->metadata.resource_version : std::string();
    };
    intake = std::make_unique<AppIntake>(*store, *cluster.transport, registry, io);
  }

  // An opted-in Secret unless `opted_in` is false (then it carries no labels at all).
  void put_secret(const std::string& name, const std::string& password, bool opted_in = true) {
    json object = {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", {{"name", name}, {"namespace", kNs}}},
                   {"data", {{"password", base64::encode(password)}}}};
    if (opted_in) object["metadata"]["labels"] = {{kRegistryCredentialLabel, "true"}};
    auto created = secrets.raw().create(object);
    if (!created) {
      REQUIRE(created.error().code == ErrorCode::kConflict);
      REQUIRE(secrets.raw()
                  .merge_patch(kNs, name, {{"data", {{"password", base64::encode(password)}}}})
                  .ok());
    }
  }

  // Adds or removes the opt-in label of an existing Secret.
  void set_opt_in(const std::string& name, bool opted_in) {
    const json value = opted_in ? json("true") : json(nullptr);
    REQUIRE(secrets.raw()
                .merge_patch(kNs, name,
                             {{"metadata", {{"labels", {{kRegistryCredentialLabel, value}}}}}})
                .ok());
  }

  json private_app(const std::string& name, const std::string& tag = "v1",
                   const std::string& user = "berth", const std::string& secret = "pw") {
    return {{"apiVersion", "berth.dev/v1alpha1"},
            {"kind", "AppService"},
            {"metadata", {{"name", name}, {"namespace", kNs}}},
            {"spec",
             {{"imageRef", "registry.example/team/web:" + tag},
              {"containerPort", 8080},
              {"registryUsername", user},
              {"registryPasswordSecretRef", {{"name", secret}}}}}};
  }

  // Creates the AppService and feeds it to the store, as the informer would. Returns its uid.
  std::string create(const json& object) {
    auto created = apps.raw().create(object);
    REQUIRE(created.ok());
    return observe(object["metadata"]["name"]);
  }
  std::string observe(const std::string& name) {
    auto got = apps.get(kNs, name);
    REQUIRE(got.ok());
    store->observe(*got);
    return got->metadata.uid;
  }
  void patch_spec(const std::string& name, const json& spec) {
    REQUIRE(apps.raw().merge_patch(kNs, name, {{"spec", spec}}).ok());
    observe(name);
  }
  IntakeResult run(const std::string& id) {
    auto r = intake->run(id);
    REQUIRE(r.ok());
    return *r;
  }
  AppService get(const std::string& name) {
    auto got = apps.get(kNs, name);
    REQUIRE(got.ok());
    return *got;
  }
  std::vector<json> revisions(const std::string& name) {
    ResourceClient crs(*cluster.transport,
                       {"apps", "v1", "controllerrevisions", "ControllerRevision", true});
    auto page = crs.list_all(kNs, ListOptions{revision_label_selector(name)});
    REQUIRE(page.ok());
    return page->items;
  }
  std::optional<Condition> condition(const std::string& name, const std::string& type) {
    for (const auto& c : get(name).status.conditions)
      if (c.type == type) return c;
    return std::nullopt;
  }
  bool has_event(const std::string& reason) {
    std::lock_guard lock(mu);
    return std::find(events.begin(), events.end(), reason) != events.end();
  }
  // Marks the desired revision succeeded and serving, as a finished rollout would.
  void succeed(const std::string& id) {
    auto svc = store->load_service(id);
    REQUIRE(svc.ok());
    auto rev = store->get_revision(id, svc->desired_deployment_id);
    REQUIRE(rev.ok());
    core::Revision r = *rev;
    REQUIRE(core::finish_revision(r, core::RevisionState::kSucceeded, 1000).ok());
    core::AppService s = *svc;
    s.current_deployment_id = r.id;
    s.status = core::ServiceStatus::kRunning;
    s.agent = "local";
    REQUIRE(store->record_outcome(r, s, 20).ok());
    auto pending = store->pending_tasks(id);
    REQUIRE(pending.ok());
    const std::vector<core::Task> tasks = *pending;
    for (const auto& t : tasks) {
      core::Task done = t;
      done.state = core::TaskState::kDone;
      REQUIRE(store->update_task(done).ok());
    }
  }

  itest::Cluster& cluster;
  Typed<AppService> apps{*cluster.transport};
  Typed<KubeSecret> secrets{*cluster.transport};
  FakeRegistry registry;
  std::unique_ptr<KubeStateStore> store;
  std::unique_ptr<AppIntake> intake;
  int ids = 0;
  std::mutex mu;
  std::vector<std::string> events;
};

bool mentions_password(const json& object) {
  const std::string text = object.dump();
  return text.find("intake-canary") != std::string::npos ||
         text.find(base64::encode(kPassword)) != std::string::npos;
}

TEST_CASE(
    "a new private app is accepted: finalizer, revision 1 pinned to its digest, a sealed "
    "Secret and status",
    "[kube][intake][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  Fixture f(cluster);
  f.put_secret("pw", kPassword);
  const std::string id = f.create(f.private_app("web"));
  CHECK(f.run(id) == IntakeResult::kReconcile);

  const AppService app = f.get("web");
  CHECK(std::find(app.metadata.finalizers.begin(), app.metadata.finalizers.end(),
                  kCleanupFinalizer) != app.metadata.finalizers.end());
  CHECK(app.status.observed_generation == app.metadata.generation);
  CHECK(app.status.phase == "Pending");
  const auto revs = f.revisions("web");
  REQUIRE(revs.size() == 1);
  auto record = parse_revision(revs[0]);
  REQUIRE(record.ok());
  CHECK(record->number == 1);
  CHECK(record->image_digest == digest_of('a'));
  CHECK(record->registry_host == "registry.example");
  CHECK(record->registry_username == "berth");
  CHECK(record->state == core::RevisionState::kPending);
  CHECK_FALSE(mentions_password(revs[0]));

  auto sealed = f.secrets.raw().get(kNs, credential_secret_name("web"));
  REQUIRE(sealed.ok());
  CHECK_FALSE(mentions_password(*sealed));
  CHECK((*sealed)["metadata"]["ownerReferences"][0]["uid"] == id);
  CHECK((*sealed)["metadata"]["annotations"]["berth.dev/registry-host"] == "registry.example");
  CHECK(f.has_event("RevisionCreated"));

  // The deploy task the reconciler will send, and the password it will send with it.
  auto tasks = f.store->pending_tasks(id);
  REQUIRE(tasks.ok());
  REQUIRE(tasks->size() == 1);
  CHECK((*tasks)[0].revision_id == "web-1");
  auto pw = f.store->unseal_password(id, "registry.example", "berth");
  REQUIRE(pw.ok());
  CHECK(pw->reveal() == kPassword);

  SECTION("the same spec again changes nothing and asks the registry nothing") {
    const int calls = f.registry.calls;
    CHECK(f.run(id) == IntakeResult::kReconcile);
    CHECK(f.revisions("web").size() == 1);
    CHECK(f.registry.calls == calls);
  }
  SECTION("a new leader derives the same deploy task from the objects") {
    KubeStateStoreOptions so;
    so.now = [] { return core::UnixMillis{5}; };
    KubeStateStore fresh(*cluster.transport, so);
    fresh.observe(f.get("web"));
    const int lists = itest::count_requests(cluster.server, "list", "controllerrevisions");
    REQUIRE(fresh.preload({kNs}).ok());
    CHECK(itest::count_requests(cluster.server, "list", "controllerrevisions") == lists + 1);
    auto again = fresh.pending_tasks(id);
    REQUIRE(again.ok());
    REQUIRE(again->size() == 1);
    CHECK((*again)[0].id == (*tasks)[0].id);
    auto svc = fresh.load_service(id);
    REQUIRE(svc.ok());
    CHECK(svc->desired_deployment_id == "web-1");
    CHECK(svc->config.registry_username == "berth");
    // Everything came from the preload: no per-app request.
    CHECK(itest::count_requests(cluster.server, "list", "controllerrevisions") == lists + 1);
    auto pw = fresh.unseal_password(id, "registry.example", "berth");
    CHECK(pw.error().code == ErrorCode::kUnavailable);  // no key loaded in this one
  }
  SECTION("a sealed Secret whose fields have other types is read as no credential, never thrown") {
    json damaged = *sealed;
    damaged["data"]["sealed"] = base64::encode(R"({"keyId":5,"nonce":["x"],"ciphertext":{"a":1}})");
    damaged["metadata"]["annotations"]["berth.dev/source"] =
        R"({"name":7,"key":[],"resourceVersion":null})";
    REQUIRE(f.secrets.raw().update(damaged).ok());
    KubeStateStoreOptions so;
    so.now = [] { return core::UnixMillis{5}; };
    KubeStateStore fresh(*cluster.transport, so);
    fresh.observe(f.get("web"));
    REQUIRE(fresh.preload({kNs}).ok());
    auto svc = fresh.load_service(id);
    REQUIRE(svc.ok());
    CHECK_FALSE(fresh.unseal_password(id, "registry.example", "berth").ok());
  }
}

TEST_CASE("the credential rules in Kubernetes terms", "[kube][intake][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  Fixture f(cluster);
  f.put_secret("pw", kPassword);
  const std::string id = f.create(f.private_app("web"));
  f.run(id);
  f.succeed(id);

  SECTION("an image change with the same user reuses the sealed password") {
    f.patch_spec("web", {{"imageRef", "registry.example/team/web:v2"}});
    f.run(id);
    REQUIRE(f.revisions("web").size() == 2);
    auto svc = f.store->load_service(id);
    CHECK(svc->desired_deployment_id == "web-2");
    CHECK(f.registry.last_password == kPassword);
  }
  SECTION("a username change while the Secret is unchanged is refused: PasswordRequired") {
    f.patch_spec("web", {{"registryUsername", "robot"}});
    f.run(id);
    CHECK(f.revisions("web").size() == 1);
    auto c = f.condition("web", "CredentialsResolved");
    REQUIRE(c);
    CHECK(c->status == "False");
    CHECK(c->reason == "PasswordRequired");
    CHECK(c->message.find("registryPasswordSecretRef") != std::string::npos);
    const AppService app = f.get("web");
    CHECK(app.status.observed_generation == app.metadata.generation);
    CHECK(app.status.phase == "Running");  // what runs keeps running
    CHECK(f.has_event("CredentialRefused"));
    CHECK(f.store->load_service(id)->desired_deployment_id == "web-1");

    SECTION("pointing the ref at the new user's password accepts it") {
      f.put_secret("robot-pw", kNewPassword);
      f.patch_spec("web", {{"registryPasswordSecretRef", {{"name", "robot-pw"}}}});
      f.run(id);
      CHECK(f.revisions("web").size() == 2);
      auto c2 = f.condition("web", "CredentialsResolved");
      CHECK((!c2 || c2->status != "False"));
      auto pw = f.store->unseal_password(id, "registry.example", "robot");
      REQUIRE(pw.ok());
      CHECK(pw->reveal() == kNewPassword);
    }
  }
  SECTION("a registry host change with the Secret unchanged is refused: RegistryHostChanged") {
    f.patch_spec("web", {{"imageRef", "other.example/team/web:v1"}});
    f.run(id);
    CHECK(f.revisions("web").size() == 1);
    auto c = f.condition("web", "CredentialsResolved");
    REQUIRE(c);
    CHECK(c->reason == "RegistryHostChanged");
  }
  SECTION("a new password in the same Secret is checked, sealed and deployed") {
    f.registry.passwords["berth"] = kNewPassword;
    f.put_secret("pw", kNewPassword);
    f.run(id);
    CHECK(f.revisions("web").size() == 2);
    auto pw = f.store->unseal_password(id, "registry.example", "berth");
    REQUIRE(pw.ok());
    CHECK(pw->reveal() == kNewPassword);
  }
  SECTION("a wrong new password is refused: CredentialRejected, the sealed one stays") {
    f.put_secret("pw", "not-the-password");
    f.patch_spec("web", {{"imageRef", "registry.example/team/web:v2"}});
    f.run(id);
    CHECK(f.revisions("web").size() == 1);
    auto c = f.condition("web", "CredentialsResolved");
    REQUIRE(c);
    CHECK(c->reason == "CredentialRejected");
    CHECK(f.store->unseal_password(id, "registry.example", "berth")->reveal() == kPassword);
    SECTION("the refusal is not re-checked until the spec or the Secret changes") {
      const int calls = f.registry.calls;
      f.run(id);
      CHECK(f.registry.calls == calls);
    }
  }
  SECTION("the user's Secret deleted after sealing: later deploys use the sealed copy") {
    REQUIRE(f.secrets.remove(kNs, "pw").ok());
    f.patch_spec("web", {{"imageRef", "registry.example/team/web:v2"}});
    f.run(id);
    CHECK(f.revisions("web").size() == 2);
    CHECK(f.registry.last_password == kPassword);
  }
  SECTION("reverting the spec to a succeeded revision rolls back to its recorded digest") {
    f.patch_spec("web", {{"imageRef", "registry.example/team/web:v2"}});
    f.run(id);
    f.succeed(id);
    f.patch_spec("web", {{"imageRef", "registry.example/team/web:v1"}});
    f.run(id);
    const auto revs = f.revisions("web");
    REQUIRE(revs.size() == 3);
    auto svc = f.store->load_service(id);
    REQUIRE(svc->desired_deployment_id == "web-3");
    auto rev = f.store->get_revision(id, "web-3");
    REQUIRE(rev.ok());
    CHECK(rev->image_digest == digest_of('a'));
    CHECK(rev->reason == core::rollback_reason("web-1"));
  }
}

TEST_CASE("refusals that need the user: a wrong first password, a missing Secret",
          "[kube][intake][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  Fixture f(cluster);
  SECTION("a wrong password on a new app: CredentialRejected, nothing created") {
    f.put_secret("pw", "wrong");
    const std::string id = f.create(f.private_app("web"));
    f.run(id);
    CHECK(f.revisions("web").empty());
    CHECK(f.condition("web", "CredentialsResolved")->reason == "CredentialRejected");
    CHECK_FALSE(f.secrets.raw().get(kNs, credential_secret_name("web")).ok());
    CHECK(f.store->pending_tasks(id)->empty());
  }
  SECTION("a missing Secret: SecretNotUsable; creating it lets the app in") {
    const std::string id = f.create(f.private_app("web"));
    f.run(id);
    CHECK(f.revisions("web").empty());
    CHECK(f.condition("web", "CredentialsResolved")->reason == "SecretNotUsable");
    f.put_secret("pw", kPassword);
    f.run(id);
    CHECK(f.revisions("web").size() == 1);
  }
  SECTION("a public app needs no Secret") {
    json object = f.private_app("pub");
    object["spec"].erase("registryUsername");
    object["spec"].erase("registryPasswordSecretRef");
    const std::string id = f.create(object);
    f.run(id);
    CHECK(f.revisions("pub").size() == 1);
    CHECK_FALSE(f.store->get_credential(id).value().has_value());
  }
}

TEST_CASE(
    "a Secret serves as a registry password only with the opt-in label, and a missing Secret, a "
    "missing key and an unlabelled Secret are refused alike",
    "[kube][intake][secretref][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  Fixture f(cluster);
  const auto message = [&](const std::string& app) {
    auto c = f.condition(app, "CredentialsResolved");
    REQUIRE(c);
    CHECK(c->status == "False");
    CHECK(c->reason == "SecretNotUsable");
    CHECK(f.revisions(app).empty());
    return c->message;
  };

  SECTION("the three refusals say the same, and the registry is never asked") {
    // Same Secret name and key, user and host in all three: only the cause differs.
    f.run(f.create(f.private_app("a")));
    const std::string missing = message("a");
    f.put_secret("pw", kPassword, false);
    f.run(f.create(f.private_app("b")));
    const std::string unlabelled = message("b");
    f.set_opt_in("pw", true);
    REQUIRE(
        f.secrets.raw()
            .merge_patch(kNs, "pw",
                         {{"data", {{"password", nullptr}, {"token", base64::encode(kPassword)}}}})
            .ok());
    f.run(f.create(f.private_app("c")));
    const std::string no_key = message("c");
    CHECK(unlabelled == missing);
    CHECK(no_key == missing);
    CHECK(missing.find(kRegistryCredentialLabel) != std::string::npos);
    CHECK(f.registry.calls == 0);
    CHECK(f.registry.last_password.empty());
    CHECK(f.has_event("CredentialRefused"));
    CHECK_FALSE(mentions_password(f.get("b").raw));
  }
  SECTION("the label added later lets the app in") {
    f.put_secret("pw", kPassword, false);
    const std::string id = f.create(f.private_app("web"));
    f.run(id);
    message("web");
    f.run(id);  // the refusal stands while nothing the controller watches changed
    CHECK(f.registry.calls == 0);
    f.set_opt_in("pw", true);
    f.run(id);
    CHECK(f.revisions("web").size() == 1);
    CHECK(f.registry.last_password == kPassword);
    auto c = f.condition("web", "CredentialsResolved");
    CHECK((!c || c->status != "False"));
  }
  SECTION("the label removed after sealing counts as a deleted Secret: the sealed copy serves") {
    f.put_secret("pw", kPassword);
    const std::string id = f.create(f.private_app("web"));
    f.run(id);
    f.succeed(id);
    f.set_opt_in("pw", false);
    f.run(id);  // the informer reports the Secret deleted: the app is looked at again
    CHECK(f.revisions("web").size() == 1);
    auto c = f.condition("web", "CredentialsResolved");
    CHECK((!c || c->status != "False"));
    // A new password in the Secret that no longer opted in is never read, let alone sent.
    // (Had it been read, the fake registry, which knows only kPassword, would refuse it.)
    f.put_secret("pw", kNewPassword, false);
    f.patch_spec("web", {{"imageRef", "registry.example/team/web:v2"}});
    f.run(id);
    CHECK(f.revisions("web").size() == 2);
    CHECK(f.registry.last_password == kPassword);
    CHECK(f.store->unseal_password(id, "registry.example", "berth")->reveal() == kPassword);
  }
}

TEST_CASE(
    "the Secret informer of the controller caches only opted-in Secrets and reports a removed "
    "label as a delete",
    "[kube][informer][secretref][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  Fixture f(cluster);
  std::mutex mu;
  std::vector<std::string> seen;
  auto record = [&](const std::string& what, const json& o) {
    std::lock_guard lock(mu);
    seen.push_back(what + " " + o["metadata"]["name"].get<std::string>());
  };
  auto saw = [&](const std::string& event) {
    std::lock_guard lock(mu);
    return std::find(seen.begin(), seen.end(), event) != seen.end();
  };
  InformerHandlers handlers;
  handlers.on_add = [&](const json& o) { record("add", o); };
  handlers.on_update = [&](const json&, const json& o) { record("update", o); };
  handlers.on_delete = [&](const json& o) { record("delete", o); };
  ResourceClient client(*cluster.transport, KubeSecret::kType);
  InformerOptions io;  // as controller/cmd_serve_kube.cpp builds it
  io.namespace_ = kNs;
  io.label_selector = kRegistryCredentialSelector;
  io.watch_timeout_seconds = 60;
  f.put_secret("listed", kPassword);
  f.put_secret("plain-listed", kPassword, false);
  Informer informer(client, io, handlers);
  informer.start();
  REQUIRE(berth::testing::wait_until([&] { return informer.has_synced(); }, 20s));
  CHECK(informer.get(kNs, "listed"));
  CHECK_FALSE(informer.get(kNs, "plain-listed"));

  f.put_secret("plain", kPassword, false);
  f.put_secret("pw", kPassword);
  REQUIRE(berth::testing::wait_until([&] { return saw("add pw"); }, 20s));
  f.set_opt_in("pw", false);
  REQUIRE(berth::testing::wait_until([&] { return saw("delete pw"); }, 20s));
  CHECK_FALSE(informer.get(kNs, "pw"));
  f.set_opt_in("plain", true);
  REQUIRE(berth::testing::wait_until([&] { return saw("add plain"); }, 20s));
  informer.stop();
  CHECK_FALSE(saw("add plain-listed"));
  // Everything the cache ever held opted in.
  for (const auto& o : informer.list(kNs))
    CHECK(o["metadata"]["labels"].value(kRegistryCredentialLabel, "") == "true");
}

TEST_CASE("deleting an AppService goes through the agent, or is released",
          "[kube][intake][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  Fixture f(cluster);
  f.put_secret("pw", kPassword);
  const std::string id = f.create(f.private_app("web"));
  f.run(id);
  SECTION("never placed: the finalizer is released at once") {
    REQUIRE(f.apps.remove(kNs, "web").ok());
    f.observe("web");
    CHECK(f.run(id) == IntakeResult::kDone);
    CHECK_FALSE(f.apps.get(kNs, "web").ok());
  }
  SECTION("placed: a removal is queued and the phase is Deleting") {
    f.succeed(id);
    REQUIRE(f.apps.remove(kNs, "web").ok());
    f.observe("web");
    CHECK(f.run(id) == IntakeResult::kReconcile);
    auto tasks = f.store->pending_tasks(id);
    REQUIRE(tasks->size() == 1);
    CHECK((*tasks)[0].kind == core::TaskKind::kRemove);
    CHECK(f.get("web").status.phase == "Deleting");
    SECTION("the skip-cleanup annotation releases it with a Warning event") {
      REQUIRE(
          f.apps.raw()
              .merge_patch(kNs, "web",
                           {{"metadata", {{"annotations", {{kSkipCleanupAnnotation, "true"}}}}}})
              .ok());
      f.observe("web");
      CHECK(f.run(id) == IntakeResult::kDone);
      CHECK(f.has_event("CleanupSkipped"));
      CHECK_FALSE(f.apps.get(kNs, "web").ok());
    }
  }
}

}  // namespace
}  // namespace berth::kube
