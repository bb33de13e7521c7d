// The status page's routes on a real server: /ui/ asks for the same credentials as the API and
// answers with its files and security headers, nothing else, and only to GET.
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "api/ui_fixture.h"

using berth::testing::ui::UiFixture;

namespace {

void check_page_headers(const berth::testing::HttpResult& r) {
  CHECK(r.header("content-security-policy").find("default-src 'self'") != std::string::npos);
  CHECK(r.header("x-content-type-options") == "nosniff");
  CHECK(r.header("cache-control") == "private, no-cache");
}

}  // namespace

TEST_CASE("The status page without credentials is 401 with a Basic challenge a browser prompts on",
          "[ui]") {
  UiFixture f;
  for (const char* path : {"/ui/", "/ui", "/ui/app.js", "/ui/style.css", "/ui/no-such-file"}) {
    INFO(path);
    const auto r = f.get(path, "");
    CHECK(r.status == 401);
    CHECK(r.header("www-authenticate").rfind("Basic realm=\"berth\"", 0) == 0);
    CHECK(r.body.find("<html") == std::string::npos);
  }
}

TEST_CASE("The status page refuses a wrong password or token exactly as the API does", "[ui]") {
  UiFixture f;
  const auto wrong_basic = f.get("/ui/", berth::testing::basic_auth("alice", "nope"));
  CHECK(wrong_basic.status == 401);
  CHECK(wrong_basic.header("www-authenticate").rfind("Basic realm=\"berth\"", 0) == 0);
  const auto wrong_token =
      f.get("/ui/app.js", "Bearer berth_0123456789abcdef_" + std::string(43, 'A'));
  CHECK(wrong_token.status == 401);
  const auto garbage = f.get("/ui/", "Digest whatever");
  CHECK(garbage.status == 401);
}

TEST_CASE("With Basic credentials or a Bearer token the page's files come with their types",
          "[ui]") {
  UiFixture f;
  for (const std::string& auth : {f.alice_basic(), f.alice_bearer(), f.bob_basic()}) {
    const auto page = f.get("/ui/", auth);
    REQUIRE(page.status == 200);
    CHECK(page.header("content-type") == "text/html; charset=utf-8");
    CHECK(page.body.find("<script src=\"app.js\" defer></script>") != std::string::npos);
    check_page_headers(page);
    const auto js = f.get("/ui/app.js", auth);
    CHECK(js.status == 200);
    CHECK(js.header("content-type") == "text/javascript; charset=utf-8");
    check_page_headers(js);
    const auto css = f.get("/ui/style.css", auth);
    CHECK(css.status == 200);
    CHECK(css.header("content-type") == "text/css; charset=utf-8");
    // A query string does not change which file answers.
    CHECK(f.get("/ui/?app=1", auth).body == page.body);
  }
}

TEST_CASE("An unchanged file is 304 on revalidation, with no body and no Content-Length", "[ui]") {
  UiFixture f;
  const auto first = f.get("/ui/app.js", f.alice_basic());
  REQUIRE(first.status == 200);
  const std::string etag = first.header("etag");
  REQUIRE_FALSE(etag.empty());
  const auto again = f.get("/ui/app.js", f.alice_basic(), {{"If-None-Match", etag}});
  CHECK(again.status == 304);
  CHECK(again.body.empty());
  CHECK(again.header("content-length").empty());
  CHECK(again.header("etag") == etag);
}

TEST_CASE("Unknown /ui/ paths and path traversal are 404, never another file or an API answer",
          "[ui]") {
  UiFixture f;
  f.add_service(f.alice_id, "secret-app");
  for (const char* path : {"/ui/nope.html", "/ui/../app-services", "/ui/..%2fapp-services",
                           "/ui/%2e%2e/app-services", "/ui/../../etc/passwd", "/ui//app.js",
                           "/ui/./index.html", "/ui/app.js/", "/ui/%61pp.js", "/ui/ui.h"}) {
    INFO(path);
    const auto r = f.get(path, f.alice_basic());
    CHECK(r.status == 404);
    CHECK(r.header("content-type") == "application/json");
    CHECK(r.body.find("secret-app") == std::string::npos);
    CHECK(r.body.find("root:") == std::string::npos);
    check_page_headers(r);
  }
}

TEST_CASE("/ui redirects to /ui/ once authenticated", "[ui]") {
  UiFixture f;
  const auto r = f.get("/ui", f.alice_basic());
  CHECK(r.status == 308);
  CHECK(r.header("location") == "/ui/");
}

TEST_CASE("The status page answers GET only: the page changes nothing", "[ui]") {
  UiFixture f;
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
    INFO(method);
    const auto r = f.request(method, "/ui/", f.alice_basic());
    CHECK(r.status == 405);
    CHECK(r.header("allow") == "GET");
  }
}

TEST_CASE("Another account's page data shows nothing of alice's apps", "[ui]") {
  // The page's files are the same for everyone; what it shows is what the API answers the
  // signed-in account, so bob's page can only read bob's list.
  UiFixture f;
  auto change = f.add_service(f.alice_id, "alice-private-app");
  const std::string id = change.service.id;
  const auto bob_list = f.get("/app-services", f.bob_basic());
  REQUIRE(bob_list.status == 200);
  CHECK(bob_list.json()["app_services"].empty());
  CHECK(f.get("/app-services/" + id, f.bob_basic()).status == 404);
  CHECK(f.get("/app-services/" + id + "/deployments?all=true", f.bob_basic()).status == 404);
  CHECK(f.get("/ui/", f.bob_basic()).body.find("alice-private-app") == std::string::npos);
  const auto alice_list = f.get("/app-services", f.alice_basic());
  REQUIRE(alice_list.json()["app_services"].size() == 1);
}

TEST_CASE("Kubernetes mode's health port has no status page", "[ui]") {
  berth::api::ApiOptions options;
  options.health_only = true;
  UiFixture f(options);
  CHECK(f.get("/ui/", "").status == 404);
  CHECK(f.get("/ui/", f.alice_basic()).status == 404);
}

TEST_CASE("Status page requests are counted under one route label", "[ui]") {
  UiFixture f;
  (void)f.get("/ui/", f.alice_basic());
  (void)f.get("/ui/does-not-exist-" + std::string(20, 'z'), f.alice_basic());
  const auto metrics = f.get("/metrics", "");
  REQUIRE(metrics.status == 200);
  CHECK(metrics.body.find("route=\"/ui/\"") != std::string::npos);
  CHECK(metrics.body.find("does-not-exist") == std::string::npos);
}
