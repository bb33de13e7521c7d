// Kubernetes mode, end to end: a Secret the AppService names but that did not opt in as a
// registry credential (label berth.dev/registry-credential=true) is never sent to the registry.
// The evidence is the real htpasswd registry's own log, which records every failed Basic login
// with its username ("error authenticating user ..."): the app names a username nobody else uses,
// so any login berth tried with the Secret's value would be there. Labelling the Secret afterwards
// is the control: berth then tries it, the registry logs that user, and the app is refused with
// CredentialRejected.
#include <random>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "e2e/kube_stack.h"
#include "support/secret_scan.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
using e2e::KubeStack;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string secretref_random_hex() {
  std::random_device rd;
  std::ostringstream s;
  s << std::hex << rd() << rd();
  return s.str();
}

bool secretref_refused_with(const json& app, const std::string& reason) {
  return KubeStack::observed(app) &&
         KubeStack::condition_status(app, "CredentialsResolved") == "False" &&
         KubeStack::condition_reason(app, "CredentialsResolved") == reason;
}

std::string secretref_message(const json& app) {
  const json* c = KubeStack::condition(app, "CredentialsResolved");
  return c == nullptr ? std::string() : c->value("message", std::string());
}

}  // namespace

TEST_CASE(
    "Kubernetes mode: an AppService naming a Secret without the opt-in label is refused like a "
    "missing Secret, and berth never sends that Secret's value to the registry",
    "[e2e][kube][secretref]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  KubeStack stack;
  stack.start();
  auto& registry = stack.registry();
  const std::string log_path = registry.dir() + "/registry.log";
  const std::string user = "secretref-probe-" + secretref_random_hex();
  const std::string value = "secretref-canary-\"" + secretref_random_hex();
  const std::string login_line = "error authenticating user \\\"" + user + "\\\"";
  berth::testing::SecretScan scan(value, user);

  // First the Secret does not exist yet: the refusal a user sees for a missing Secret.
  stack.apply(stack.app_yaml("before", "v1", "team-db", json::object(), user));
  const json before = stack.wait_for(
      "before", [](const json& a) { return secretref_refused_with(a, "SecretNotUsable"); },
      "SecretNotUsable for a missing Secret", 60s);

  // Then the same name as an ordinary Secret of the namespace (no label): the same refusal.
  stack.apply_password_secret("team-db", value, "password", /*opted_in=*/false);
  stack.apply(stack.app_yaml("probe", "v1", "team-db", json::object(), user));
  const json probe = stack.wait_for(
      "probe", [](const json& a) { return secretref_refused_with(a, "SecretNotUsable"); },
      "SecretNotUsable for an unlabelled Secret", 60s);
  CHECK(secretref_message(probe) == secretref_message(before));
  CHECK(secretref_message(probe).find("berth.dev/registry-credential") != std::string::npos);
  CHECK(stack.revisions("probe").empty());
  CHECK(stack.containers(/*all=*/true).empty());

  // Nothing carried the value: the registry saw no login as that user, and neither berth's logs
  // nor anything berth wrote to the API server (the Secret itself aside) holds it.
  CHECK(e2e::read_file(log_path).find(login_line) == std::string::npos);
  CHECK(scan.lines_in(stack.all_logs()).empty());
  for (const auto& text : stack.dump_everything({"secrets/" + stack.ns() + "/team-db"}))
    CHECK(scan.lines_in(text).empty());

  // The controller watches only opted-in Secrets, so it never caches the others. Its only other
  // list of Secrets is of its own sealed copies (label berth.dev/appservice, ciphertext only).
  int selected_lists = 0;
  int selected_watches = 0;
  for (const auto& r : stack.server().requests()) {
    const std::string verb = r.value("verb", "");
    if (r.value("resource", "") != "secrets" || (verb != "list" && verb != "watch")) continue;
    if (r.value("user", "") != "system:serviceaccount:berth-system:berth-controller") continue;
    const std::string selector = r.value("labelSelector", "");
    INFO(r.dump());
    if (selector == "berth.dev/registry-credential=true") {
      ++(verb == "list" ? selected_lists : selected_watches);
    } else {
      CHECK(verb == "list");
      CHECK(selector == "berth.dev/appservice");
    }
  }
  CHECK(selected_lists > 0);
  CHECK(selected_watches > 0);

  // The control: once the Secret opts in, berth reads it and tries it, and the registry's log
  // shows that login (so its absence above means berth did not try).
  stack.kubectl_ok(
      {"label", "secret", "team-db", "-n", stack.ns(), "berth.dev/registry-credential=true"});
  stack.wait_for(
      "probe", [](const json& a) { return secretref_refused_with(a, "CredentialRejected"); },
      "CredentialRejected once the Secret opted in", 60s);
  CHECK(stack.revisions("probe").empty());
  CHECK(berth::testing::wait_until(
      [&] { return e2e::read_file(log_path).find(login_line) != std::string::npos; }, 10s));
  CHECK(scan.lines_in(stack.all_logs()).empty());
}
