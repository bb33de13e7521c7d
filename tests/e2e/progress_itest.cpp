// Pull progress on the real stack (docs/agent.md "Pull progress", docs/api.md "progress"): a
// multi-layer image in the private registry is deployed; while the agent pulls it, the app's
// status carries `progress` (step "pull", bytes moving); the revision's deploy log keeps the
// "pulling: ..." lines; once the app is Running the progress is gone. The registry password
// never reaches a log line or a response.
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "support/oci_layout.h"
#include "support/skip.h"
#include "support/temp_dir.h"
#include "support/testenv.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int kRandomLayers = 4;

// Pushes the layout as REGISTRY/berth/sample:progress with the registry's credentials.
void push_layout(testenv::Registry& registry, const std::string& dir) {
  const std::string authfile = dir + "/push-auth.json";
  registry.write_authfile(authfile);
  std::string out;
  const int rc = testenv::run_command(
      {"skopeo", "copy", "-q", "--dest-authfile", authfile, "--dest-cert-dir", registry.ca_dir(),
       "oci:" + dir + "/layout:progress", "docker://" + registry.image("progress")},
      &out, {}, 300);
  std::remove(authfile.c_str());
  INFO(out);
  REQUIRE(rc == 0);
}

bool message_starts(const json& deployment, const std::string& prefix) {
  for (const auto& entry : deployment.value("deploy_logs", json::array())) {
    if (entry.value("step", "") == "pull" && entry.value("message", "").rfind(prefix, 0) == 0)
      return true;
  }
  return false;
}

}  // namespace

TEST_CASE("A deploy shows pull progress in the app's status and the revision's deploy log",
          "[e2e][progress]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack;  // serve --local-agent: agent lines land in the controller log too
  const berth::testing::ScratchDir scratch("berth-e2e-progress");  // removed however it ends
  const std::string dir = scratch.path.string();
  // The sample app's files (busybox httpd on 8080 serving "progress\n", so the health check
  // passes) under 4 layers of 16 MiB of random bytes, so the pull takes long enough for
  // several reports.
  testenv::OciLayoutOptions lo;
  lo.tag = "progress";
  lo.random_layers = kRandomLayers;
  lo.random_layer_mib = 16;
  lo.app_page = "progress\n";
  auto built = testenv::build_oci_layout(dir, lo);
  if (!built.ok()) FAIL(built.error().message);
  const int layers = built->layers;
  const std::int64_t bytes = built->layer_bytes;
  push_layout(stack.registry(), dir);
  stack.start();

  const json created = stack.create_service(e2e::unique_name("progress"), "progress");
  const std::string id = created["id"];

  // Every progress object the status showed while the rollout ran, in order, until one of the
  // pull with bytes done (or the rollout ended without one: the test fails below).
  std::vector<json> seen;
  json hit;
  bool pending_had_live_log = false;
  bool pending_seen = false;
  berth::testing::wait_until(
      [&] {
        const json s = stack.get_service(id);
        if (s.contains("progress")) {
          const json& p = s["progress"];
          seen.push_back(p);
          if (p.value("step", "") == "pull" && p.value("bytesDone", 0LL) > 0) {
            hit = p;
            // The pending revision's deploy log is the live one meanwhile (unless the outcome
            // was recorded in between, which the state tells).
            const json rev = stack.deployment(id, 1);
            pending_seen = rev.value("state", "") == "pending";
            pending_had_live_log = message_starts(rev, "pulling: ");
            return true;
          }
        }
        const std::string status = s.value("status", "");
        return status == "Running" || status == "Failed";
      },
      120s, 10ms);
  INFO(stack.get_service(id).dump(2));
  INFO(e2e::tail(stack.controller_log()));
  REQUIRE_FALSE(hit.is_null());
  CHECK(hit["step"] == "pull");
  CHECK(hit["bytesDone"].get<std::int64_t>() <= bytes);
  CHECK(hit["layersTotal"] == layers);  // the agent read the totals from the manifest
  CHECK(hit["bytesTotal"].get<std::int64_t>() == bytes);
  CHECK(hit["layersDone"].get<int>() <= layers);
  CHECK(hit["updatedAt"].is_string());
  CHECK(hit.size() == 6);
  // Counts never go back while a pull runs.
  for (std::size_t i = 1; i < seen.size(); ++i) {
    CHECK(seen[i].value("bytesDone", 0LL) >= seen[i - 1].value("bytesDone", 0LL));
    CHECK(seen[i].value("layersDone", 0) >= seen[i - 1].value("layersDone", 0));
  }
  if (pending_seen) CHECK(pending_had_live_log);

  // The rollout finishes: Running, serving the image, and the progress is gone.
  const json running = stack.wait_running(id, 1, 180s);
  e2e::Stack::wait_page(running["url"], "progress\n", 30s);
  const json after = stack.wait_service(
      id, [](const json& s) { return !s.contains("progress"); }, "no progress once Running", 30s);
  CHECK(after["status"] == "Running");

  // The stored deploy log keeps one line per report: pulling lines while it pulled, then the
  // final "pulled: N/N layers" line.
  const json rev = stack.deployment(id, 1);
  INFO(rev.dump(2));
  CHECK(rev["state"] == "succeeded");
  CHECK(message_starts(rev, "pulling: "));
  CHECK(message_starts(
      rev, "pulled: " + std::to_string(layers) + "/" + std::to_string(layers) + " layers"));

  // The registry password reached no log line and no response.
  const std::string log = stack.controller_log();
  REQUIRE(log.find("agent connected") != std::string::npos);  // the log is really captured
  const auto scan = stack.registry_secret_scan();
  CHECK(scan.lines_in(log).empty());
  for (const auto& body : stack.response_bodies()) CHECK(scan.find_in(body).empty());
}
