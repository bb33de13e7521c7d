// The database's disk full during a rollout, on the real stack: the controller's data dir is
// a 2 MiB tmpfs mounted in a mount namespace of the controller only (unshare -m, as
// tests/api/serve_signals_itest.cpp does for the API alone); the test fills and frees it
// through /proc/PID/root. A rollout in flight when the disk fills, and a change sent while it
// is full: /readyz says why, the serving revision keeps serving, and both finish unaided once
// space is freed.
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "faults/faults.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
namespace faults = berth::faults;
namespace testenv = berth::testenv;
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Writes until the filesystem refuses (ENOSPC ends the stream).
void fill(const fs::path& filler) {
  std::ofstream out(filler, std::ios::binary | std::ios::app);
  REQUIRE(out.is_open());
  const std::string chunk(4096, 'x');
  while (out.write(chunk.data(), static_cast<std::streamsize>(chunk.size())) && out.flush()) {
  }
}

}  // namespace

TEST_CASE(
    "The database's disk full during a rollout: /readyz says so, changes are refused, and "
    "the rollout finishes once space is freed",
    "[faults][disk]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  if (std::system("unshare -m true >/dev/null 2>&1") != 0) {
    berth::testing::skip_test("cannot create a mount namespace (unshare -m): needs CAP_SYS_ADMIN");
    return;
  }
  e2e::StackOptions o;
  o.separate_agent = true;  // podman and the agent's files stay outside the small filesystem
  o.controller_args = {"--backoff-cap-seconds", "4"};
  e2e::Stack stack(o);
  // sh -c SCRIPT sh DATA serve-argv...: the data dir (the account the constructor added)
  // copied onto a fresh tmpfs mounted over it, then exec serve.
  const std::string script =
      "set -e; seed=\"$1.seed\"; rm -rf \"$seed\"; cp -a \"$1\" \"$seed\"; "
      "mount -t tmpfs -o size=2m,mode=0700 berth-faults \"$1\"; cp -a \"$seed\"/. \"$1\"/; "
      "rm -rf \"$seed\"; shift; exec \"$@\"";
  stack.options().controller_prefix = {"/usr/bin/unshare", "-m", "sh", "-c", script, "sh",
                                       stack.data_dir()};
  stack.start();
  const fs::path filler = fs::path("/proc/" + std::to_string(stack.controller().pid()) + "/root") /
                          fs::path(stack.data_dir()).relative_path() / "filler";

  const json created = stack.create_service(e2e::unique_name("disk-full"), "v1");
  const std::string id = created["id"];
  const std::string url = stack.wait_running(id, 1)["url"];

  // 1. A rollout under way when the disk fills.
  stack.patch_image(id, "v2", stack.registry().password());
  fill(filler);
  // Writes go on failing until one hits the full disk (SQLite may fit a page or two): a
  // second change is the write that does.
  berth::testing::HttpResult refused;
  for (int i = 0; i < 20; ++i) {
    refused = stack.api("PATCH", "/app-services/" + id,
                        {{"app_config", {{"env", {{"TRY", std::to_string(i)}}}}}});
    if (refused.status >= 500) break;
  }
  INFO(refused.body);
  CHECK(refused.status == 503);
  berth::testing::HttpResult not_ready;
  const bool said = berth::testing::wait_until(
      [&] {
        not_ready = stack.api("GET", "/readyz");
        return not_ready.status == 503;
      },
      30s, 100ms);
  INFO(not_ready.body);
  REQUIRE(said);
  const std::string condition = json::parse(not_ready.body).value("reason", "");
  CHECK(condition.find("disk is full") != std::string::npos);
  CHECK(stack.api("GET", "/healthz").status == 200);
  CHECK(e2e::Stack::page(url).starts_with("v"));  // an app keeps serving whatever the database

  auto back = faults::Clock::now();
  fs::remove(filler);
  // No operator step: the controller's own retries are the writes that clear the verdict.
  berth::testing::wait_until([&] { return stack.api("GET", "/readyz").status == 200; }, 60s, 100ms);
  const double ready_after = faults::seconds_since(back);
  const json service = stack.get_service(id);
  const int latest = stack.all_deployments(id)[0].value("revision", 0);
  REQUIRE(latest >= 2);
  stack.wait_running(id, latest, 120s);
  faults::report_recovery("database disk full during a rollout", condition,
                          faults::seconds_since(back));
  INFO("ready again after " << ready_after << " s; service " << service.dump());
  CHECK(stack.api("GET", "/readyz").status == 200);

  // 2. A change sent while the disk is full is refused (nothing half-written), and the same
  // change sent again once space is back rolls out.
  fill(filler);
  berth::testing::HttpResult while_full;
  for (int i = 0; i < 20; ++i) {
    while_full = stack.api("PATCH", "/app-services/" + id,
                           {{"app_config",
                             {{"image_ref", stack.registry().image("v1")},
                              {"registry_username", stack.registry().username()},
                              {"registry_password", stack.registry().password()},
                              {"container_port", e2e::Stack::kContainerPort}}}});
    if (while_full.status != 200) break;
    stack.wait_revision_done(id, stack.all_deployments(id)[0].value("revision", 0), 60s);
  }
  INFO(while_full.body);
  CHECK(while_full.status == 503);
  back = faults::Clock::now();
  fs::remove(filler);
  // Nothing writes now (no rollout in flight): /readyz's own probe write notices the space.
  const bool ready_again = berth::testing::wait_until(
      [&] { return stack.api("GET", "/readyz").status == 200; }, 30s, 200ms);
  REQUIRE(ready_again);
  faults::report_recovery("database disk full while idle, /readyz after space is freed",
                          "/readyz 503", faults::seconds_since(back));
  back = faults::Clock::now();
  const json next = stack.patch_image(id, "v1", stack.registry().password());
  const int revision = stack.all_deployments(id)[0].value("revision", 0);
  stack.wait_running(id, revision, 120s);
  e2e::Stack::wait_page(url, "v1\n", 30s);
  faults::report_recovery("database disk full, change refused then sent again",
                          "HTTP " + std::to_string(while_full.status), faults::seconds_since(back));
  CHECK(next.value("id", "") == id);
  CHECK(stack.containers(id).size() == 1);
}
