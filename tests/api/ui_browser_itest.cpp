// The status page in headless Chromium (tests/e2e/ui_browser.py) against a real server whose
// store holds hostile strings: an app name, deploy logs and an error that are HTML and script.
// The page must show them as the text they are, run none of them, and break no CSP rule.
// Skips (exit 77) without chromium; fails under CI=true.
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "api/ui_fixture.h"
#include "common/subprocess.h"
#include "support/skip.h"
#include "support/testenv.h"

using berth::testing::ui::UiFixture;
using nlohmann::json;

namespace {

// Runs the browser driver with `steps` as `user`; REQUIREs success and returns its output.
json browse(const std::string& user, const std::string& password, const json& steps) {
  berth::RunOptions options;
  options.deadline = std::chrono::seconds(180);
  options.env = {{"BERTH_UI_USER", user}, {"BERTH_UI_PASSWORD", password}};
  auto run = berth::run_process(
      {"/usr/bin/python3", berth::testenv::source_dir() + "/tests/e2e/ui_browser.py", steps.dump()},
      options);
  REQUIRE(run.ok());
  INFO("driver stderr:\n" << run->err);
  REQUIRE(run->exit_code == 0);
  json out = json::parse(run->out, nullptr, false);
  REQUIRE(out.is_object());
  return out;
}

bool skip_without_chromium() {
  if (berth::testenv::on_path("chromium") && berth::testenv::on_path("/usr/bin/python3")) {
    return false;
  }
  berth::testing::skip_test("chromium: not installed (hack/install-deps.sh installs it)");
  return true;
}

// Text that is markup and script: if any of it were parsed as HTML, an <img>, <b> or <script>
// element would exist, or window.__pwned would be set (CSP would stop the script from running
// but not the element from existing, so the DOM is what the test inspects).
const std::string kHostileName = "<img src=x onerror=\"window.__pwned=1\">evil";
const std::string kHostileLog = "<script>window.__pwned=2</script><b>bold</b> & \"quotes\"";
const std::string kHostileError = "<iframe src=\"javascript:window.__pwned=3\"></iframe>failed";

void check_no_script_ran_and_csp_held(const json& out) {
  INFO(out.dump(2));
  CHECK(out["exceptions"].empty());
  for (const auto& line : out["console"]) {
    CHECK(line.get<std::string>().find("Content Security Policy") == std::string::npos);
  }
}

}  // namespace

TEST_CASE("The page shows a hostile app name, deploy log and error as text and runs none of it",
          "[ui][browser]") {
  if (skip_without_chromium()) return;
  UiFixture f;
  auto change = f.add_service(f.alice_id, kHostileName, "registry.example/acme/<api>:1.0");
  f.finish(change, berth::core::RevisionState::kFailed,
           {{"pull", "ok", "image pulled", "", 1'700'000'000'000, 1250},
            {"start", "ok", "container started", "", 1'700'000'001'250, 300},
            {"probe", "failed", kHostileLog, "detail " + kHostileLog, 1'700'000'001'550, 6000}},
           "", kHostileError);
  const std::string id = change.service.id;

  const json out =
      browse("alice", "alice-password",
             json::array({{{"goto", f.base_url() + "/ui/"}},
                          {{"wait", {kHostileName, "Failed", kHostileError}}},
                          {{"click", "a[data-role=open]"}},
                          {{"wait",
                            {"Revisions", "#1", "Steps: pull 1.3 s", "probe 6.0 s (failed)",
                             kHostileLog, "detail " + kHostileLog}}},
                          {{"text", "page"}},
                          {{"eval", "document.querySelectorAll('img, b, iframe').length"}},
                          {{"eval", "document.scripts.length"}},
                          {{"eval", "typeof window.__pwned"}},
                          {{"eval", "document.querySelector('#detail h2 .name').textContent"}},
                          {{"eval", "location.hash"}}}));
  const std::string page = out["texts"]["page"];
  INFO(page);
  CHECK(page.find(kHostileName) != std::string::npos);
  CHECK(page.find("Last error: " + kHostileError) != std::string::npos);
  CHECK(page.find("Failed at probe: " + kHostileLog) != std::string::npos);
  CHECK(page.find("registry.example/acme/<api>:1.0") != std::string::npos);
  CHECK(out["evals"][0] == 0);  // no element was made from the strings
  CHECK(out["evals"][1] == 1);  // app.js alone
  CHECK(out["evals"][2] == "undefined");
  CHECK(out["evals"][3] == kHostileName);
  CHECK(out["evals"][4] == "#app=" + id);
  check_no_script_ran_and_csp_held(out);
}

TEST_CASE("Signed in as another account the page lists none of alice's apps", "[ui][browser]") {
  if (skip_without_chromium()) return;
  UiFixture f;
  auto change = f.add_service(f.alice_id, "alice-private-app");
  f.finish(change, berth::core::RevisionState::kSucceeded, {}, "sha256:" + std::string(64, 'a'), "",
           "http://127.0.0.1:1");
  // Bob opening alice's app by its link sees that it does not exist for him.
  const json out = browse("bob", "bob-password",
                          json::array({{{"goto", f.base_url() + "/ui/"}},
                                       {{"wait", {"This account has no app services."}}},
                                       {{"goto", f.base_url() + "/ui/#app=" + change.service.id}},
                                       {{"wait", {"This app service does not exist (any more)."}}},
                                       {{"text", "page"}}}));
  const std::string page = out["texts"]["page"];
  INFO(page);
  CHECK(page.find("alice-private-app") == std::string::npos);
  CHECK(page.find("sha256:aaaa") == std::string::npos);
  check_no_script_ran_and_csp_held(out);
}
