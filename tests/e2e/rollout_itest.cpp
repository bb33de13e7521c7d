// Failed rollouts on the real stack: a new revision that cannot be pulled (wrong registry
// password) or never becomes healthy (tag "broken") fails with the reason, and the old
// revision keeps serving.
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

TEST_CASE("A PATCH with a wrong registry password fails the new revision while v1 keeps serving",
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

  stack.patch_image(id, "v2", wrong);
  const json failed = stack.wait_revision_done(id, 2, 60s);
  INFO(failed.dump(2));
  CHECK(failed["state"] == "failed");
  // The registry's answer, not a generic error: 401 for this user at this registry.
  CHECK(has_failed_entry(failed, "refused the credentials"));
  CHECK(has_failed_entry(failed, stack.registry().host()));

  const json service = stack.wait_service(
      id, [](const json& s) { return s.value("status", "") == "Running"; }, "status Running", 30s);
  INFO(service.dump(2));
  CHECK(service["current_deployment_id"] == first);
  CHECK(service.value("last_error", "").find("refused the credentials") != std::string::npos);
  CHECK(e2e::Stack::page(url) == "v1\n");
  CHECK(stack.containers(id).size() == 1);

  // Without ?all=true only the successful revision is listed.
  auto listed = stack.api("GET", "/app-services/" + id + "/deployments");
  REQUIRE(listed.status == 200);
  REQUIRE(listed.json()["deployments"].size() == 1);
  CHECK(listed.json()["deployments"][0]["id"] == first);

  // Neither password reached a log line (controller and its local agent) or a response.
  const std::string log = stack.controller_log();
  REQUIRE(log.find("\"revision failed\"") != std::string::npos);  // the log is really captured
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
