// The status page against a real deploy (registry, podman, controller, agent), read in
// headless Chromium the way a person reads it: the app listed Running with its digest, its
// revisions with step durations, and the error text of a rollout that failed. Saves a
// screenshot in the build tree (path printed; docs/testing.md). Skips without chromium (fails
// under CI=true), like the stack's other peers.
#include <filesystem>
#include <iostream>
#include <string>

#include <catch2/catch.hpp>

#include "common/subprocess.h"
#include "e2e/stack.h"
#include "support/skip.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

json browse(e2e::Stack& stack, const json& steps) {
  berth::RunOptions options;
  options.deadline = std::chrono::seconds(300);
  // The account's password reaches the driver through its environment, never argv.
  options.env = {{"BERTH_UI_USER", stack.account_name()},
                 {"BERTH_UI_PASSWORD", stack.account_password()}};
  auto run = berth::run_process(
      {"/usr/bin/python3", testenv::source_dir() + "/tests/e2e/ui_browser.py", steps.dump()},
      options);
  REQUIRE(run.ok());
  INFO("driver stderr:\n"
       << run->err << "\ncontroller log:\n"
       << e2e::tail(stack.controller_log()));
  REQUIRE(run->exit_code == 0);
  json out = json::parse(run->out, nullptr, false);
  REQUIRE(out.is_object());
  INFO(out.dump(2));
  CHECK(out["exceptions"].empty());
  for (const auto& line : out["console"]) {
    CHECK(line.get<std::string>().find("Content Security Policy") == std::string::npos);
  }
  return out;
}

std::string artifact_path(const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::path(e2e::bin_dir()).parent_path() / "test-artifacts";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST_CASE(
    "The status page shows a real deploy Running with its digest, step durations and "
    "the error of a failed rollout",
    "[e2e][ui]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  if (!testenv::on_path("chromium")) {
    berth::testing::skip_test("chromium: not installed (hack/install-deps.sh installs it)");
    return;
  }
  e2e::Stack stack({.separate_agent = true, .probe_deadline_seconds = 6});
  stack.start();
  const json health = {{"health_check_path", "/"},
                       {"health_check_interval_seconds", 1},
                       {"health_check_timeout_seconds", 1}};
  const std::string name = e2e::unique_name("ui");
  const json created = stack.create_service(name, "v1", std::nullopt, health);
  const std::string id = created["id"];
  const std::string digest = stack.registry().digest("v1");
  REQUIRE(digest.rfind("sha256:", 0) == 0);
  const std::string short_digest = digest.substr(0, 19) + "…";

  // Opened while the first rollout may still run: the page keeps polling until it completes.
  const json first = browse(
      stack, json::array({{{"goto", stack.api_url() + "/ui/"}},
                          {{"wait", {name, "Running", "#1", short_digest}}, {"timeout", 120}},
                          {{"click", "a[data-role=open]"}},
                          {{"wait",
                            {"App service " + name, "Revisions", "succeeded", "serving",
                             "Steps: ", "pull ", digest}}},
                          {{"text", "page"}}}));
  const std::string page = first["texts"]["page"];
  INFO(page);
  // The list row: name, status, revision, digest and endpoint on one line.
  const json service = stack.get_service(id);
  const std::string url = service["url"];
  REQUIRE_FALSE(url.empty());
  CHECK(page.find(name + "\tRunning\t#1\t" + short_digest + "\t" + url) != std::string::npos);
  CHECK(page.find("Deploy log (") != std::string::npos);

  // A rollout that never becomes healthy: the page says why, and v1 keeps serving.
  stack.patch_image(id, "broken");
  const std::string shot = artifact_path("ui-status-page.png");
  const json second = browse(
      stack,
      json::array(
          {{{"goto", stack.api_url() + "/ui/#app=" + id}},
           {{"wait", {"#2 failed", "Failed at probe", "did not become healthy", "Last error: "}},
            {"timeout", 120}},
           {{"wait_js", "(() => { const row = document.querySelector('tr[data-app-id=\"" + id +
                            "\"]'); return row && row.querySelector('[data-role=status]')"
                            ".textContent === 'Running' && row.querySelector("
                            "'[data-role=revision]').textContent === '#1'; })()"}},
           {{"text", "page"}},
           {{"screenshot", shot}}}));
  const std::string after = second["texts"]["page"];
  INFO(after);
  CHECK(after.find("#1 succeeded serving") != std::string::npos);
  REQUIRE(std::filesystem::file_size(shot) > 1000);
  std::cout << "status page screenshot: " << shot << std::endl;
  WARN("status page screenshot: " << shot);
}
