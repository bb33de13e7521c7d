// Standalone mode: the registry password (the shared registry's random canary, with a quote and
// a backslash so its JSON-escaped form differs) goes through create, redeploy, rollback, a wrong
// password the registry refuses (401, answered 422), the stored password refused at the
// controller's resolve (a proxy answering 401: the revision fails), and an agent SIGKILLed while
// it holds the auth file at the pull and then restarted; afterwards no form of it (raw,
// JSON-escaped, URL-encoded, base64 alone and base64("user:password")) is in any log, response body
// or header, the database with its WAL and SHM (copied while the controller runs and after it
// stopped), or any file under the data dirs, podman's storage and the private TMPDIR every process
// inherited.
#include <catch2/catch.hpp>

#include "crash/crash_support.h"
#include "secrets/secrets_support.h"
#include "support/fault_proxy.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
namespace crash = berth::crash;
namespace secrets = berth::secrets;
using berth::testing::FaultProxy;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// The sample image `tag` through `host` (the fault proxy in front of the registry).
json via(const std::string& host, const std::string& tag) {
  return {{"image_ref", host + "/" + testenv::Registry::kRepository + ":" + tag}};
}

}  // namespace

TEST_CASE(
    "Standalone: after create, redeploy, rollback, a refused wrong password and an agent killed "
    "at the pull, no form of the password is in any log, response, database file or file left",
    "[secrets][standalone]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  auto& registry = testenv::Registry::shared();  // before TMPDIR moves: its files are not berth's
  secrets::PrivateTmp tmp;
  crash::PauseFile pause;  // children read BERTH_TEST_PAUSE_FILE from the environment
  // Every image goes through a proxy that passes bytes, but for one step answers 401 itself.
  auto proxy = FaultProxy::start(static_cast<std::uint16_t>(
      std::stoi(registry.host().substr(registry.host().rfind(':') + 1))));
  e2e::StackOptions options;
  options.separate_agent = true;  // killed and restarted on its own
  options.probe_deadline_seconds = 20;
  options.registry_aliases = {proxy->host()};
  e2e::Stack stack(options);
  stack.start();

  const std::string wrong = e2e::wrong_password();
  berth::testing::SecretScan scan = stack.registry_secret_scan();
  scan.add(wrong, registry.username());  // a refused password is a secret too
  secrets::Findings findings(scan);
  const std::string snapshots = tmp.dir() + "-db";  // outside TMPDIR: scanned on their own

  // create -> v1, redeploy -> v2, rollback -> revision 3 runs v1's digest.
  const json created = stack.create_service(e2e::unique_name("canary"), "v1", std::nullopt,
                                            via(proxy->host(), "v1"));
  const std::string id = created["id"];
  const std::string first = stack.wait_running(id, 1)["current_deployment_id"];
  stack.patch_image(id, "v2", std::nullopt, via(proxy->host(), "v2"));  // the stored password
  stack.wait_running(id, 2);
  auto rolled = stack.api("POST", "/app-services/" + id + "/rollback", {{"deployment_id", first}});
  INFO(rolled.body);
  REQUIRE(rolled.status == 200);
  stack.wait_running(id, 3);

  // A wrong password: the registry answers 401 to the API's check, the API 422; on create too.
  auto refused =
      stack.api("PATCH", "/app-services/" + id,
                {{"app_config",
                  {{"image_ref", proxy->host() + "/" + testenv::Registry::kRepository + ":v2"},
                   {"registry_username", registry.username()},
                   {"registry_password", wrong}}}});
  INFO(refused.body);
  CHECK(refused.status == 422);
  auto refused_create =
      stack.api("POST", "/app-services",
                {{"name", e2e::unique_name("wrong")},
                 {"plan_name", "tier-2"},
                 {"app_config",
                  {{"image_ref", proxy->host() + "/" + testenv::Registry::kRepository + ":v1"},
                   {"container_port", e2e::Stack::kContainerPort},
                   {"registry_username", registry.username()},
                   {"registry_password", wrong}}}});
  INFO(refused_create.body);
  CHECK(refused_create.status == 422);

  // The registry refuses the stored password (changed there, say): it answers 401 to the
  // controller's resolve of v2; revision 4 fails and says so, v1 keeps serving.
  proxy->answer_with({401, -1, registry.dir() + "/server.crt", registry.dir() + "/server.key"});
  stack.patch_image(id, "v2", std::nullopt, via(proxy->host(), "v2"));
  const json failed = stack.wait_revision_done(id, 4, 60s);
  INFO(failed.dump(2));
  CHECK(failed.value("state", "") == "failed");
  CHECK(stack.get_service(id).value("last_error", "").find("401") != std::string::npos);
  CHECK(proxy->answered() > 0);
  proxy->set_mode(FaultProxy::Mode::kPass);

  // The agent killed mid-flow: held at the pull with the auth file on disk, SIGKILLed, restarted.
  crash::forget_unused_images(stack.podman());  // v2 is not in use: the agent really pulls it
  pause.arm("pull");
  stack.patch_image(id, "v2", std::nullopt, via(proxy->host(), "v2"));
  REQUIRE(berth::testing::wait_until(
      [&] { return crash::count_in(stack.agent_log(), crash::kPauseLine) >= 1; }, 90s, 20ms));
  {
    // The control: the scan finds the auth file the agent holds now (base64("user:password")).
    const auto held = stack.registry_secret_scan().files_under(stack.agent_data_dir());
    INFO("the agent is held at the pull; its data dir should hold the auth file");
    CHECK_FALSE(held.empty());
  }
  stack.kill_agent();
  pause.release();
  stack.start_agent();
  stack.wait_running(id, 5);
  CHECK(crash::auth_files(stack.agent_data_dir()).empty());

  // The database while the controller runs, then after a clean stop of both.
  const int live = secrets::copy_databases(stack.data_dir(), snapshots + "/live");
  CHECK(live >= 2);  // berth.db and its WAL at least
  stack.agent().stop();
  REQUIRE(stack.controller().stop() == 0);
  const int stopped = secrets::copy_databases(stack.data_dir(), snapshots + "/stopped");
  CHECK(stopped >= 1);

  // Logs (non-empty and real), every response the test received, every file.
  const std::string controller_log = stack.controller_log();
  const std::string agent_log = stack.agent_log();
  CHECK(controller_log.find("\"deploy succeeded\"") != std::string::npos);
  CHECK(agent_log.find(crash::kPauseLine) != std::string::npos);
  findings.text("controller log", controller_log);
  findings.text("agent log", agent_log);
  int n = 0;
  for (const auto& body : stack.response_bodies())
    findings.text("response body " + std::to_string(n++), body);
  n = 0;
  for (const auto& head : stack.response_headers())
    findings.text("response headers " + std::to_string(n++), head);
  findings.files(snapshots);
  findings.files(stack.dir());  // data dirs, agent data dir (tmp/), logs, credentials
  const int tmp_files = findings.files(tmp.dir());  // TMPDIR of every process
  findings.files(stack.podman().path());
  CHECK(crash::auth_files(stack.dir()).empty());
  CHECK(crash::auth_files(tmp.dir()).empty());
  CHECK(findings.file_count() > 20);
  std::error_code ec;
  std::filesystem::remove_all(snapshots, ec);
  WARN("standalone canary: " << findings.summary() << " (" << tmp_files
                             << " in the private TMPDIR)");
  secrets::require_clean(findings);
}
