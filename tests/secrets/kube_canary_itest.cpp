// Kubernetes mode: the registry password in the user's Secret goes through create (kubectl
// apply), redeploy, revert (rollback), a wrong password in another Secret (the registry's 401:
// CredentialRejected) and a separate agent SIGKILLed while it holds the auth file at the pull and
// then restarted. Afterwards no form of either password is in: the logs of the controller, the
// agent and the test API server; anything kubectl received; every object the server holds
// (`kubectl get -A` of every listable resource) and every version it recorded (a watch replayed
// from resourceVersion 1 over every watchable resource: each intermediate state of each object);
// the server's request record; any SQLite file (copied while the controller runs and after it
// stops); any file under the stack's dirs, podman's storage and the private TMPDIR.
// Excluded on purpose, exactly: the two Secrets the user created to hold the passwords
// (secrets/<ns>/creds and secrets/<ns>/bad-creds), in the dump and in the replayed history.
#include <future>
#include <sstream>

#include <catch2/catch.hpp>

#include "crash/crash_support.h"
#include "e2e/kube_stack.h"
#include "secrets/secrets_support.h"
#include "support/http_client.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
namespace crash = berth::crash;
namespace secrets = berth::secrets;
using berth::e2e::KubeStack;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// GET `path` on the test API server as its admin (the server's own CA verified), straight over
// HTTPS: the replays below run in parallel, which kubectl processes on a loaded machine would
// make slow.
berth::testing::HttpResult server_get(KubeStack& stack, const std::string& path) {
  const std::string& server = stack.server().server();
  berth::testing::HttpClientOptions o;
  o.port = static_cast<std::uint16_t>(std::stoi(server.substr(server.rfind(':') + 1)));
  o.tls = true;
  o.ca_pem = e2e::read_file(stack.server().ca_file());
  o.timeout = 30s;
  return berth::testing::http_request(
      o, "GET", path, "", {{"Authorization", "Bearer " + stack.server().admin_token()}});
}

json server_json(KubeStack& stack, const std::string& path) {
  const auto r = server_get(stack, path);
  INFO("GET " << path << ": " << r.status << " " << r.error << " " << r.body);
  REQUIRE(r.status == 200);
  return json::parse(r.body);
}

// "/api/v1/pods", "/apis/apps/v1/deployments", ...: every resource the server serves that can be
// watched (no subresources), found through discovery as a client would.
std::vector<std::string> watchable_paths(KubeStack& stack) {
  std::vector<std::string> versions = {"/api/v1"};
  for (const auto& g : server_json(stack, "/apis").value("groups", json::array())) {
    for (const auto& v : g.value("versions", json::array())) {
      versions.push_back("/apis/" + v.value("groupVersion", ""));
    }
  }
  std::vector<std::string> out;
  for (const auto& gv : versions) {
    for (const auto& r : server_json(stack, gv).value("resources", json::array())) {
      const std::string name = r.value("name", "");
      const auto verbs = r.value("verbs", json::array());
      const bool watch = std::find(verbs.begin(), verbs.end(), "watch") != verbs.end();
      if (watch && name.find('/') == std::string::npos) out.push_back(gv + "/" + name);
    }
  }
  return out;
}

struct Replay {
  std::string kept;  // the events kept, one JSON text per line
  int events = 0;    // all events the server sent
  int status = 0;
  std::string error;
};

// Every event the server still holds for `path`, replayed by a watch from resourceVersion 1 that
// the server ends after a second; events about the objects in `except` ("<ns>/<name>" of
// secrets) are dropped. No Catch assertions: it runs on other threads.
Replay replay_history(KubeStack& stack, const std::string& path,
                      const std::vector<std::string>& except) {
  Replay out;
  const auto r = server_get(stack, path + "?watch=true&resourceVersion=1&timeoutSeconds=1");
  out.status = r.status;
  out.error = r.error;
  const bool secrets = path.size() >= 8 && path.substr(path.size() - 8) == "/secrets";
  std::istringstream lines(r.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const json event = json::parse(line, nullptr, false);
    if (event.is_discarded() || !event.contains("object")) {
      out.kept += line + "\n";  // scanned as it is
      continue;
    }
    ++out.events;
    const json& meta = event["object"].value("metadata", json::object());
    const std::string id = meta.value("namespace", "") + "/" + meta.value("name", "");
    if (secrets && std::find(except.begin(), except.end(), id) != except.end()) continue;
    out.kept += line + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE(
    "Kubernetes mode: after create, redeploy, revert, a rejected wrong password and an agent "
    "killed at the pull, no form of the password is in any log, object, recorded version, "
    "request record, database file or file left",
    "[secrets][kube]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  auto& registry = testenv::Registry::shared();
  secrets::PrivateTmp tmp;
  crash::PauseFile pause;
  e2e::KubeStackOptions options;
  options.separate_agent = true;
  KubeStack stack(options);
  stack.start();

  const std::string wrong = e2e::wrong_password();
  berth::testing::SecretScan scan = stack.registry_secret_scan();
  scan.add(wrong, registry.username());
  secrets::Findings findings(scan);
  const std::string snapshots = tmp.dir() + "-db";

  // create -> v1, redeploy -> v2, revert -> revision 3.
  const std::string name = "canary";
  stack.apply_password_secret("creds", registry.password());
  stack.apply(stack.app_yaml(name, "v1", "creds"));
  stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1");
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v2")}}}});
  stack.wait_for(name, KubeStack::running_at(2), "Running at revision 2");
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v1")}}}});
  stack.wait_for(name, KubeStack::running_at(3), "Running at revision 3 (the revert)");

  // A wrong password: the registry's 401 becomes CredentialRejected; nothing deployed.
  stack.apply_password_secret("bad-creds", wrong);
  stack.apply(stack.app_yaml("wrong", "v1", "bad-creds"));
  const json rejected = stack.wait_for(
      "wrong",
      [](const json& a) {
        return KubeStack::observed(a) &&
               KubeStack::condition_status(a, "CredentialsResolved") == "False";
      },
      "CredentialsResolved=False", 60s);
  CHECK(KubeStack::condition_reason(rejected, "CredentialsResolved") == "CredentialRejected");

  // The agent killed mid-flow at the pull (auth file on disk), restarted.
  crash::forget_unused_images(stack.podman());
  pause.arm("pull");
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v2")}}}});
  REQUIRE(berth::testing::wait_until(
      [&] { return crash::count_in(stack.agent_log(), crash::kPauseLine) >= 1; }, 90s, 20ms));
  {
    INFO("the agent is held at the pull; its data dir should hold the auth file");
    CHECK_FALSE(stack.registry_secret_scan().files_under(stack.dir() + "/agent-data").empty());
  }
  stack.kill_agent();
  pause.release();
  stack.start_agent();
  stack.wait_for(name, KubeStack::running_at(4), "Running at revision 4 after the agent restart");
  CHECK(crash::auth_files(stack.dir() + "/agent-data").empty());

  // What kubectl printed for the flows (the user's view). The reads below print the user's own
  // Secrets too (they are filtered before the scan), so only these outputs are scanned whole.
  const std::size_t flow_outputs = stack.kubectl_outputs().size();
  for (std::size_t i = 0; i < flow_outputs; ++i) {
    findings.text("kubectl output " + std::to_string(i), stack.kubectl_outputs()[i]);
  }

  // The server's objects, their recorded versions and its request record, while all runs.
  const std::vector<std::string> user_secrets = {stack.ns() + "/creds", stack.ns() + "/bad-creds"};
  for (const auto& dump :
       stack.dump_everything({"secrets/" + user_secrets[0], "secrets/" + user_secrets[1]})) {
    findings.text("object dump " + dump.substr(0, dump.find(':')), dump);
  }
  int events = 0;
  const auto paths = watchable_paths(stack);
  CHECK(paths.size() > 10);
  {
    std::vector<std::future<Replay>> replays;
    for (const auto& path : paths) {
      replays.push_back(std::async(std::launch::async, [&stack, &user_secrets, path] {
        return replay_history(stack, path, user_secrets);
      }));
    }
    // The control: the replay does carry the user's Secret with the password in it.
    const Replay unfiltered = replay_history(stack, "/api/v1/secrets", {});
    CHECK_FALSE(scan.find_in(unfiltered.kept).empty());
    for (std::size_t i = 0; i < paths.size(); ++i) {
      const Replay r = replays[i].get();
      INFO("watch " << paths[i] << ": " << r.status << " " << r.error);
      CHECK(r.status == 200);
      events += r.events;
      findings.text("history " + paths[i], r.kept);
    }
  }
  CHECK(events > 50);
  findings.text("request record", stack.server().requests().dump());

  for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
    const auto r = stack.health(0, path);
    findings.text(std::string("health ") + path, r.body);
  }
  const int live = secrets::copy_databases(stack.dir(), snapshots + "/live");
  stack.agent().stop();
  stack.stop_replica(0);
  const int stopped = secrets::copy_databases(stack.dir(), snapshots + "/stopped");
  INFO("sqlite files: " << live << " live, " << stopped << " after stop");

  findings.text("controller log", stack.replica_log(0));
  findings.text("agent log", stack.agent_log());
  CHECK(stack.agent_log().find(crash::kPauseLine) != std::string::npos);
  findings.text("API server log", e2e::read_file(stack.server().dir() + "/server.log"));
  findings.files(snapshots);
  // kubectl.out is the harness's copy of the last kubectl stdout: one of the dump's reads, which
  // print the user's Secrets before they are filtered (every flow output was scanned above).
  findings.files(stack.dir(), {stack.dir() + "/kubectl.out"});
  findings.files(stack.server().dir());
  const int tmp_files = findings.files(tmp.dir());
  findings.files(stack.podman().path());
  CHECK(crash::auth_files(stack.dir()).empty());
  CHECK(crash::auth_files(tmp.dir()).empty());
  std::error_code ec;
  std::filesystem::remove_all(snapshots, ec);
  WARN("kube canary: " << findings.summary() << " (" << tmp_files << " in the private TMPDIR)"
                       << "; " << events << " recorded events replayed from " << paths.size()
                       << " resources");
  secrets::require_clean(findings);
}
