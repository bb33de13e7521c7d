// Rollouts on the real stack: a new password the registry refuses is a 422 and deploys
// nothing; a revision that never becomes healthy (tag "broken") fails with the reason, and the
// old revision keeps serving; a rollback serves the bits its target ran after the tag moved.
#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "support/skip.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

bool has_failed_entry(const json& deployment, const std::string& needle) {
  for (const auto& entry : deployment.value("deploy_logs", json::array())) {
    if (entry.value("status", "") == "failed" &&
        (entry.value("message", "").find(needle) != std::string::npos ||
         entry.value("detail", "").find(needle) != std::string::npos)) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("A PATCH with a wrong registry password is refused with 422 while v1 keeps serving",
          "[e2e][credentials]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack;  // serve --local-agent: agent lines land in the controller log too
  stack.start();
  const std::string right = stack.registry().password();
  const std::string wrong = e2e::wrong_password();

  const json created = stack.create_service(e2e::unique_name("wrongpw"), "v1");
  const std::string id = created["id"];
  const json v1 = stack.wait_running(id, 1);
  const std::string url = v1["url"];
  const std::string first = v1["current_deployment_id"];
  REQUIRE(e2e::Stack::page(url) == "v1\n");

  // The API checks the new password with the registry before storing it: the registry's
  // answer (401 for this user at this registry) comes back at once and nothing is deployed.
  auto refused = stack.api("PATCH", "/app-services/" + id,
                           {{"app_config",
                             {{"image_ref", stack.registry().image("v2")},
                              {"registry_username", stack.registry().username()},
                              {"registry_password", wrong}}}});
  INFO(refused.body);
  REQUIRE(refused.status == 422);
  CHECK(refused.json()["field"] == "app_config.registry_password");
  CHECK(refused.json()["error"].get<std::string>().find("refused the credentials") !=
        std::string::npos);
  CHECK(refused.json()["error"].get<std::string>().find(stack.registry().host()) !=
        std::string::npos);
  CHECK(stack.all_deployments(id).size() == 1);

  const json service = stack.get_service(id);
  INFO(service.dump(2));
  CHECK(service["status"] == "Running");
  CHECK(service["current_deployment_id"] == first);
  CHECK(e2e::Stack::page(url) == "v1\n");
  CHECK(stack.containers(id).size() == 1);

  // The stored password still works: a PATCH without one rolls out v2.
  stack.patch_image(id, "v2");
  const json v2 = stack.wait_running(id, 2);
  e2e::Stack::wait_page(v2["url"], "v2\n", 30s);

  // Neither password reached a log line (controller and its local agent) or a response.
  const std::string log = stack.controller_log();
  REQUIRE(log.find("new registry credential refused by the registry") !=
          std::string::npos);       // the log is really captured
  berth::testing::SecretScan scan;  // every encoded form of both (support/secret_scan.h)
  scan.add(right, stack.registry().username());
  scan.add(wrong, stack.registry().username());
  CHECK(scan.lines_in(log).empty());
  for (const auto& body : stack.response_bodies()) CHECK(scan.find_in(body).empty());
}

TEST_CASE(
    "A revision that never becomes healthy fails with the probe's reason and v1 keeps serving",
    "[e2e][rollout]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  // A separate agent, so the probe deadline can be short (serve --local-agent keeps the default).
  e2e::Stack stack({.separate_agent = true, .probe_deadline_seconds = 6});
  stack.start();
  // An HTTP check: "broken" has no server, so GET / can never answer whatever the port
  // forwarding does with a connect.
  const json health = {{"health_check_path", "/"},
                       {"health_check_interval_seconds", 1},
                       {"health_check_timeout_seconds", 1}};
  const json created = stack.create_service(e2e::unique_name("broken"), "v1", std::nullopt, health);
  const std::string id = created["id"];
  const json v1 = stack.wait_running(id, 1);
  const std::string url = v1["url"];
  const std::string first = v1["current_deployment_id"];
  REQUIRE(e2e::Stack::page(url) == "v1\n");

  const auto patched_at = e2e::Clock::now();
  stack.patch_image(id, "broken");
  const json failed = stack.wait_revision_done(id, 2, 60s);
  const auto took =
      std::chrono::duration_cast<std::chrono::seconds>(e2e::Clock::now() - patched_at);
  INFO(failed.dump(2));
  CHECK(failed["state"] == "failed");
  CHECK(has_failed_entry(failed, "did not become healthy"));
  CHECK(took < 40s);  // the short deadline was in force (the default is 120 s)

  const json service = stack.wait_service(
      id, [](const json& s) { return s.value("status", "") == "Running"; }, "status Running", 30s);
  INFO(service.dump(2));
  CHECK(service["current_deployment_id"] == first);
  CHECK(service.value("last_error", "").find("did not become healthy") != std::string::npos);
  CHECK(e2e::Stack::page(url) == "v1\n");
  // Green was removed: only blue is left, running.
  CHECK(stack.containers(id, /*all=*/true).size() == 1);
  CHECK(stack.containers(id).size() == 1);
}

TEST_CASE("A rollback serves the bits its target ran even after the tag moved", "[e2e][rollback]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack;
  stack.start();
  auto& reg = stack.registry();
  // A repository of this test's own: moving its tag disturbs no other test's samples.
  const std::string repo = "berth/" + e2e::unique_name("moving");
  const std::string image = reg.host() + "/" + repo + ":stable";
  const std::string authfile = stack.dir() + "/skopeo-auth.json";
  reg.write_authfile(authfile);
  auto move_tag = [&](const std::string& sample) {
    std::string out;
    const int rc = testenv::run_command(
        {"skopeo", "copy", "--authfile", authfile, "--src-cert-dir", reg.ca_dir(),
         "--dest-cert-dir", reg.ca_dir(), "docker://" + reg.image(sample), "docker://" + image},
        &out);
    INFO(out);
    REQUIRE(rc == 0);
  };

  move_tag("v1");
  const json created = stack.create_service(e2e::unique_name("rollback"), "v1", std::nullopt,
                                            {{"image_ref", image}});
  const std::string id = created["id"];
  const json v1 = stack.wait_running(id, 1);
  const std::string first = v1["current_deployment_id"];
  REQUIRE(e2e::Stack::page(v1["url"]) == "v1\n");

  // The tag now names other bits, and something else is deployed meanwhile.
  move_tag("v2");
  stack.patch_image(id, "v2");
  const json v2 = stack.wait_running(id, 2);
  e2e::Stack::wait_page(v2["url"], "v2\n", 30s);

  auto rolled = stack.api("POST", "/app-services/" + id + "/rollback", {{"deployment_id", first}});
  INFO(rolled.body);
  REQUIRE(rolled.status == 200);
  const json back = stack.wait_running(id, 3);
  const json third = stack.deployment(id, 3);
  INFO(third.dump(2));
  CHECK(third["image_digest"] == reg.digest("v1"));
  CHECK(third["image_ref"] == image);
  e2e::Stack::wait_page(back["url"], "v1\n", 30s);
}
