// Kubernetes mode end to end: the user story of issue 10 told with kubectl against the test API
// server, with the real registry and podman, and `berth-controller serve --kubernetes` running
// as the manifests' service account (manifests/rbac.yaml). Every assertion is on what the user
// sees: the AppService's status and conditions, ControllerRevisions, Secrets, Events, the app's
// page, and what podman runs.
#include <atomic>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "common/base64.h"
#include "e2e/kube_stack.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
using e2e::KubeStack;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// GETs the app's endpoint every 20 ms on a thread of its own until stopped, counting answers
// that are not a 200 with a page the app serves ("v1\n" or "v2\n").
class Poller {
 public:
  explicit Poller(const std::string& url) {
    const std::string prefix = "http://127.0.0.1:";
    REQUIRE(url.rfind(prefix, 0) == 0);
    port_ = static_cast<std::uint16_t>(std::stoi(url.substr(prefix.size())));
    thread_ = std::thread([this] { loop(); });
  }
  ~Poller() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int failures() const { return failures_; }
  int answers() const { return answers_; }
  std::string first_failure() {
    std::lock_guard lock(mu_);
    return first_failure_;
  }
  bool saw(const std::string& body) {
    std::lock_guard lock(mu_);
    return seen_.count(body) > 0;
  }

 private:
  void loop() {
    berth::testing::HttpClientOptions o;
    o.port = port_;
    o.timeout = 5000ms;
    while (!stop_) {
      auto r = berth::testing::http_request(o, "GET", "/");
      const bool good = r.ok() && r.status == 200 && (r.body == "v1\n" || r.body == "v2\n");
      {
        std::lock_guard lock(mu_);
        if (good) {
          seen_.insert(r.body);
        } else if (first_failure_.empty()) {
          first_failure_ = r.ok() ? std::to_string(r.status) + " " + r.body : r.error;
        }
      }
      ++(good ? answers_ : failures_);
      std::this_thread::sleep_for(20ms);
    }
  }
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> failures_{0};
  std::atomic<int> answers_{0};
  std::mutex mu_;
  std::string first_failure_;
  std::set<std::string> seen_;
  std::thread thread_;
};

bool has_finalizer(const json& app, const std::string& finalizer) {
  for (const auto& f : app["metadata"].value("finalizers", json::array())) {
    if (f == finalizer) return true;
  }
  return false;
}

bool owned_by(const json& object, const json& app) {
  for (const auto& ref : object["metadata"].value("ownerReferences", json::array())) {
    if (ref.value("uid", "") == app["metadata"].value("uid", "") &&
        ref.value("kind", "") == "AppService" && ref.value("name", "") == app["metadata"]["name"] &&
        ref.value("controller", false)) {
      return true;
    }
  }
  return false;
}

std::string annotation(const json& object, const std::string& key) {
  return object["metadata"].value("annotations", json::object()).value(key, "");
}

// Events with `reason` (events.k8s.io/v1), and how many occurrences they stand for.
json with_reason(const json& events, const std::string& reason) {
  json out = json::array();
  for (const auto& e : events) {
    if (e.value("reason", "") == reason) out.push_back(e);
  }
  return out;
}
int occurrences(const json& event) {
  if (event.contains("series") && event["series"].is_object()) {
    return event["series"].value("count", 1);
  }
  return std::max(1, event.value("deprecatedCount", 1));
}

void check_event(const json& events, const std::string& reason, const std::string& type,
                 const json& app) {
  const json found = with_reason(events, reason);
  INFO("events: " << events.dump(2));
  REQUIRE_FALSE(found.empty());
  for (const auto& e : found) {
    CHECK(e.value("type", "") == type);
    CHECK(e.value("reportingController", "") == "berth.dev/controller");
    CHECK(e["regarding"].value("uid", "") == app["metadata"].value("uid", ""));
    CHECK(e["regarding"].value("namespace", "") == app["metadata"].value("namespace", ""));
    CHECK_FALSE(e.value("note", "").empty());
  }
}

// The canary: no encoded form of any password in any object the server holds (the user's own
// Secrets, named in `user_secrets`, hold it by design), any event, the controller and agent
// logs, the test server's log and request log.
void check_canary(KubeStack& stack, const berth::testing::SecretScan& scan,
                  const std::vector<std::string>& user_secrets) {
  std::vector<std::string> except;
  for (const auto& s : user_secrets) except.push_back("secrets/" + stack.ns() + "/" + s);
  for (const auto& dump : stack.dump_everything(except)) {
    INFO(dump.substr(0, dump.find(':')));
    CHECK(scan.find_in(dump).empty());
  }
  const std::string log = stack.replica_log(0);  // with --local-agent, the agent's lines too
  REQUIRE_FALSE(log.empty());                    // the log is really captured
  CHECK(scan.lines_in(log).empty());
  CHECK(scan.lines_in(stack.agent_log()).empty());
  CHECK(scan.lines_in(e2e::read_file(stack.server().dir() + "/server.log")).empty());
  CHECK(scan.find_in(stack.server().requests().dump()).empty());
}

void wait_ready(KubeStack& stack, int replica) {
  berth::testing::HttpResult r;
  if (berth::testing::wait_until(
          [&] { return (r = stack.health(replica, "/readyz")).status == 200; }, 60s, 200ms)) {
    return;
  }
  FAIL("/readyz never answered 200: " << r.status << " " << r.body << " " << r.error << "\n"
                                      << stack.all_logs());
}

}  // namespace

TEST_CASE(
    "Kubernetes mode: kubectl apply runs a private app at v1, v2 rolls out without a dropped "
    "request, a new username without a new password is refused while v2 serves, reverting deploys "
    "v1's recorded digest, and no password shows anywhere",
    "[e2e][kube][story]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  KubeStack stack;
  stack.start();
  auto& registry = stack.registry();

  // Health: alive at once, ready once the caches synced.
  CHECK(stack.health(0, "/healthz").status == 200);
  wait_ready(stack, 0);

  const std::string name = "web";
  stack.apply_password_secret("registry-creds", registry.password());
  stack.apply(stack.app_yaml(name, "v1", "registry-creds"));
  json app = stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1");
  INFO(app.dump(2));
  const json status = app["status"];
  CHECK(status["imageDigest"] == registry.digest("v1"));
  CHECK(KubeStack::condition_status(app, "CredentialsResolved") == "True");
  CHECK(KubeStack::condition_status(app, "Degraded") != "True");
  CHECK(has_finalizer(app, "berth.dev/cleanup"));
  const std::string url = status.value("endpoint", "");
  REQUIRE(url.rfind("http://127.0.0.1:", 0) == 0);
  CHECK(KubeStack::page(url) == "v1\n");
  CHECK(stack.containers().size() == 1);

  const auto scan = stack.registry_secret_scan();
  {
    const json revs = stack.revisions(name);
    INFO(revs.dump(2));
    REQUIRE(revs.size() == 1);
    const json& rev = revs[0];
    CHECK(rev["metadata"]["name"] == name + "-1");
    CHECK(rev["revision"] == 1);
    CHECK(rev["data"]["imageDigest"] == registry.digest("v1"));
    CHECK(rev["data"]["registryUsername"] == registry.username());
    CHECK(rev["data"]["registryHost"] == registry.host());
    CHECK(owned_by(rev, app));
    CHECK(annotation(rev, "berth.dev/state") == "succeeded");
    CHECK(scan.find_in(rev.dump()).empty());
  }
  {
    const json sealed = stack.get("secret", name + "-berth-credential");
    REQUIRE_FALSE(sealed.is_null());
    INFO(sealed.dump(2));
    CHECK(owned_by(sealed, app));
    CHECK(sealed["metadata"]["labels"].value("berth.dev/appservice", "") == name);
    CHECK(sealed["data"].size() == 1);
    CHECK(sealed["data"].contains("sealed"));
    CHECK(annotation(sealed, "berth.dev/registry-host") == registry.host());
    CHECK(annotation(sealed, "berth.dev/registry-username") == registry.username());
    CHECK_FALSE(annotation(sealed, "berth.dev/set-at").empty());
    std::string ciphertext;
    REQUIRE(berth::base64::decode(sealed["data"]["sealed"].get<std::string>(), ciphertext));
    CHECK(scan.find_in(ciphertext).empty());
    CHECK(scan.find_in(sealed.dump()).empty());
  }

  // v2: the endpoint keeps answering through the blue/green switch.
  {
    Poller poller(url);
    REQUIRE(berth::testing::wait_until([&] { return poller.saw("v1\n"); }, 10s));
    stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v2")}}}});
    app = stack.wait_for(name, KubeStack::running_at(2), "Running at revision 2");
    KubeStack::wait_page(url, "v2\n", 30s);
    REQUIRE(berth::testing::wait_until([&] { return poller.saw("v2\n"); }, 10s));
    poller.stop();
    INFO("first failed request: " << poller.first_failure());
    CHECK(poller.failures() == 0);
    CHECK(poller.answers() > 10);
  }
  CHECK(app["status"]["imageDigest"] == registry.digest("v2"));
  CHECK(app["status"]["endpoint"] == url);
  {
    const json revs = stack.revisions(name);
    INFO(revs.dump(2));
    REQUIRE(revs.size() == 2);
    CHECK(revs[1]["data"]["imageDigest"] == registry.digest("v2"));
    CHECK(annotation(revs[1], "berth.dev/state") == "succeeded");
    // Revision 1 served, so it stays succeeded ("superseded" is for one replaced before it
    // had an outcome, core/types.h).
    CHECK(annotation(revs[0], "berth.dev/state") == "succeeded");
  }
  CHECK(stack.containers().size() == 1);

  // A new username with the Secret unchanged: refused, nothing deployed, v2 keeps serving.
  stack.patch("appservice", name, {{"spec", {{"registryUsername", "someone-else"}}}});
  const json refused = stack.wait_for(
      name,
      [](const json& a) {
        return KubeStack::observed(a) &&
               KubeStack::condition_status(a, "CredentialsResolved") == "False";
      },
      "CredentialsResolved=False for the new username", 60s);
  {
    INFO(refused.dump(2));
    CHECK(KubeStack::condition_reason(refused, "CredentialsResolved") == "PasswordRequired");
    CHECK_FALSE(KubeStack::condition(refused, "CredentialsResolved")->value("message", "").empty());
    CHECK(refused["status"]["observedGeneration"] == refused["metadata"]["generation"]);
    CHECK(refused["metadata"]["generation"].get<int>() ==
          app["metadata"]["generation"].get<int>() + 1);
    CHECK(refused["status"]["phase"] == "Running");
    CHECK(refused["status"]["currentRevision"] == 2);
    CHECK(stack.revisions(name).size() == 2);
    CHECK(KubeStack::page(url) == "v2\n");
  }

  // Reverting to revision 1's spec: a new revision with v1's recorded digest, the sealed
  // password reused.
  stack.patch(
      "appservice", name,
      {{"spec", {{"imageRef", registry.image("v1")}, {"registryUsername", registry.username()}}}});
  app = stack.wait_for(name, KubeStack::running_at(3), "Running at revision 3 (the revert)");
  KubeStack::wait_page(url, "v1\n", 30s);
  {
    INFO(app.dump(2));
    CHECK(KubeStack::condition_status(app, "CredentialsResolved") == "True");
    CHECK(app["status"]["imageDigest"] == registry.digest("v1"));
    const json revs = stack.revisions(name);
    INFO(revs.dump(2));
    REQUIRE(revs.size() == 3);
    CHECK(revs[2]["metadata"]["name"] == name + "-3");
    CHECK(revs[2]["data"]["imageDigest"] == revs[0]["data"]["imageDigest"]);
    CHECK(revs[2]["data"]["spec"] == revs[0]["data"]["spec"]);
  }

  // What `kubectl describe` and `kubectl get events` show.
  const json events = stack.events_for(name);
  check_event(events, "RevisionCreated", "Normal", app);
  check_event(events, "RolloutSucceeded", "Normal", app);
  check_event(events, "CredentialRefused", "Warning", app);
  {
    const std::string described =
        stack.kubectl_ok({"describe", "appservice", name, "-n", stack.ns()});
    CHECK(described.find("Running") != std::string::npos);
  }

  CHECK(stack.health(0, "/healthz").status == 200);
  CHECK(stack.health(0, "/readyz").status == 200);

  // The controller's log names each reconcile's object as a Kubernetes user knows it, beside the
  // reconcile_id that ties the lines of one reconcile together.
  {
    std::istringstream lines(stack.replica_log(0));
    int named = 0;
    for (std::string line; std::getline(lines, line);) {
      const json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || j.value("name", "") != name) continue;
      INFO(line);
      CHECK(j.value("namespace", "") == stack.ns());
      CHECK(std::regex_match(j.value("reconcile_id", ""), std::regex("[0-9a-f]{16}")));
      ++named;
    }
    CHECK(named > 0);
  }
  check_canary(stack, scan, {"registry-creds"});
}

TEST_CASE(
    "Kubernetes mode: a wrong password in the Secret is refused with CredentialRejected and "
    "nothing is deployed, repeated refusals are one aggregated Event, the right password then "
    "deploys",
    "[e2e][kube][credentials]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  KubeStack stack;
  stack.start();
  auto& registry = stack.registry();
  berth::testing::SecretScan scan;
  scan.add(registry.password(), registry.username());

  const std::string name = "wrong";
  const std::string wrong = e2e::wrong_password();
  scan.add(wrong, registry.username());
  stack.apply_password_secret("bad-creds", wrong);
  stack.apply(stack.app_yaml(name, "v1", "bad-creds"));
  // "Within seconds": the registry answers the check at once; the limit bounds the wait.
  json app = stack.wait_for(
      name,
      [](const json& a) {
        return KubeStack::observed(a) &&
               KubeStack::condition_status(a, "CredentialsResolved") == "False";
      },
      "CredentialsResolved=False", 30s);
  {
    INFO(app.dump(2));
    CHECK(KubeStack::condition_reason(app, "CredentialsResolved") == "CredentialRejected");
    CHECK_FALSE(KubeStack::condition(app, "CredentialsResolved")->value("message", "").empty());
    CHECK(app["status"].value("phase", "") != "Running");
    CHECK(KubeStack::condition_status(app, "Ready") != "True");
    CHECK(stack.revisions(name).empty());
    CHECK(stack.containers(/*all=*/true).empty());
  }

  // The user tries two more wrong passwords: each is refused; the Events aggregate.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::string another = e2e::wrong_password();
    scan.add(another, registry.username());
    stack.apply_password_secret("bad-creds", another);
    const int want = attempt + 2;
    json events;
    const bool counted = berth::testing::wait_until(
        [&] {
          int total = 0;
          events = with_reason(stack.events_for(name), "CredentialRefused");
          for (const auto& e : events) total += occurrences(e);
          return total >= want;
        },
        30s, 300ms);
    INFO("CredentialRefused events: " << events.dump(2) << "\n" << stack.all_logs());
    REQUIRE(counted);
  }
  {
    const json events = with_reason(stack.events_for(name), "CredentialRefused");
    INFO(events.dump(2));
    int total = 0;
    for (const auto& e : events) total += occurrences(e);
    CHECK(total >= 3);
    CHECK(events.size() < static_cast<std::size_t>(total));  // aggregated, not one per refusal
    check_event(events, "CredentialRefused", "Warning", stack.app(name));
  }
  CHECK(stack.revisions(name).empty());
  CHECK(stack.containers(/*all=*/true).empty());

  // The right password in the same Secret: verified, sealed, deployed.
  stack.apply_password_secret("bad-creds", registry.password());
  app = stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1 after the fix");
  CHECK(KubeStack::condition_status(app, "CredentialsResolved") == "True");
  CHECK(KubeStack::page(app["status"]["endpoint"]) == "v1\n");

  check_canary(stack, scan, {"bad-creds"});
}

TEST_CASE(
    "Kubernetes mode: after the user's Secret is deleted the sealed copy deploys v2, and deleting "
    "the AppService removes its container before the object goes, and its revisions and sealed "
    "Secret with it",
    "[e2e][kube][lifecycle]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  KubeStack stack;
  stack.start();
  auto& registry = stack.registry();

  const std::string name = "short-lived";
  stack.apply_password_secret("creds", registry.password());
  stack.apply(stack.app_yaml(name, "v1", "creds"));
  json app = stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1");
  const std::string url = app["status"]["endpoint"];
  REQUIRE(KubeStack::page(url) == "v1\n");

  stack.remove("secret", "creds");
  stack.wait_gone("secret", "creds", 30s);
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v2")}}}});
  app = stack.wait_for(name, KubeStack::running_at(2), "Running at revision 2 without the Secret");
  KubeStack::wait_page(url, "v2\n", 30s);
  CHECK(KubeStack::condition_status(app, "CredentialsResolved") == "True");
  CHECK(app["status"]["imageDigest"] == registry.digest("v2"));
  REQUIRE_FALSE(stack.get("secret", name + "-berth-credential").is_null());
  REQUIRE(stack.revisions(name).size() == 2);

  // Delete: the finalizer holds the object until the container is gone.
  REQUIRE(has_finalizer(app, "berth.dev/cleanup"));
  REQUIRE(stack.containers().size() == 1);
  stack.remove("appservice", name);
  stack.wait_gone("appservice", name, 120s);
  CHECK(stack.containers(/*all=*/true).empty());
  CHECK(KubeStack::page(url).rfind("<error", 0) == 0);
  // Garbage collection through the owner references.
  CHECK(stack.revisions(name).empty());
  CHECK(stack.get("secret", name + "-berth-credential").is_null());
  // The history of what happened stays in the Events.
  const json events = stack.events_for(name);
  INFO(events.dump(2));
  CHECK_FALSE(with_reason(events, "Deleted").empty());
  CHECK_FALSE(with_reason(events, "RolloutSucceeded").empty());
}

TEST_CASE(
    "Kubernetes mode: a rollout survives dropped watches and a compacted history, and the "
    "controller relists and still follows later changes",
    "[e2e][kube][watch]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  KubeStack stack;
  stack.start();
  auto& registry = stack.registry();

  const std::string name = "steady";
  // A slow probe (5 healthy answers a second apart): the rollout lasts long enough for the
  // faults to land in the middle of it.
  const json slow = {
      {"healthCheck",
       {{"path", "/"}, {"intervalSeconds", 1}, {"timeoutSeconds", 1}, {"healthyThreshold", 5}}}};
  stack.apply_password_secret("creds", registry.password());
  stack.apply(stack.app_yaml(name, "v1", "creds", slow));
  json app = stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1");
  const std::string url = app["status"]["endpoint"];

  auto lists_of = [&](const std::string& resource) {
    int n = 0;
    for (const auto& r : stack.server().requests()) {
      if (r.value("verb", "") == "list" && r.value("resource", "") == resource) ++n;
    }
    return n;
  };
  const int lists_before = lists_of("appservices");

  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v2")}}}});
  json revs;
  const bool started = berth::testing::wait_until(
      [&] { return (revs = stack.revisions(name)).size() == 2; }, 60s, 200ms);
  INFO(stack.all_logs());
  REQUIRE(started);
  // Mid-rollout: revision 2 recorded, not yet finished.
  CHECK(annotation(revs[1], "berth.dev/state") != "succeeded");
  stack.server().inject_fault({{"kind", "drop-watch"}, {"resource", ""}, {"count", 6}});
  stack.server().compact();

  app = stack.wait_for(name, KubeStack::running_at(2), "Running at revision 2 after the faults");
  KubeStack::wait_page(url, "v2\n", 30s);
  CHECK(app["status"]["imageDigest"] == registry.digest("v2"));
  revs = stack.revisions(name);
  REQUIRE(revs.size() == 2);
  CHECK(annotation(revs[1], "berth.dev/state") == "succeeded");
  CHECK(stack.containers().size() == 1);

  // The controller still watches: a later change is seen and deployed.
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v1")}}}});
  app = stack.wait_for(name, KubeStack::running_at(3), "Running at revision 3");
  KubeStack::wait_page(url, "v1\n", 30s);
  // It relisted after the compaction (a 410 on resuming its watch).
  CHECK(lists_of("appservices") > lists_before);
}
