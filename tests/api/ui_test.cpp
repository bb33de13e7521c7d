// The status page's files and how api::ui answers for them, without sockets: what is compiled
// in, the headers every answer carries, and that no path names anything but the three files.
#include <regex>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "api/handler.h"
#include "api/ui/assets.h"
#include "api/ui/ui.h"

namespace ui = berth::api::ui;

namespace {

std::string file_body(std::string_view name) {
  for (const auto& f : ui::embedded_files()) {
    if (f.name == name) return std::string(f.body);
  }
  FAIL("no embedded file " << name);
  return {};
}

void check_security_headers(const berth::api::HttpResponse& r) {
  const std::string csp = r.headers.at("Content-Security-Policy");
  CHECK(csp.find("default-src 'self'") != std::string::npos);
  CHECK(csp.find("script-src 'self'") != std::string::npos);
  CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(csp.find("unsafe-inline") == std::string::npos);
  CHECK(csp.find("unsafe-eval") == std::string::npos);
  CHECK(r.headers.at("X-Content-Type-Options") == "nosniff");
  CHECK(r.headers.at("Cache-Control") == "private, no-cache");
  CHECK(r.headers.at("Referrer-Policy") == "no-referrer");
}

}  // namespace

TEST_CASE("The binary carries the page's HTML, CSS and JavaScript", "[ui]") {
  CHECK(ui::embedded_files().size() == 3);
  CHECK(file_body("index.html").find("<title>berth status</title>") != std::string::npos);
  CHECK(file_body("style.css").find(".status-running") != std::string::npos);
  CHECK(file_body("app.js").find("app-services") != std::string::npos);
  for (const auto& f : ui::embedded_files()) {
    INFO(f.name);
    CHECK(f.etag.size() == 34);  // a quoted 128-bit prefix of the SHA-256
    CHECK(f.etag.front() == '"');
  }
}

TEST_CASE("The page loads nothing from elsewhere and has no inline script or style", "[ui]") {
  const std::string html = file_body("index.html");
  // The only script is app.js by a relative URL; CSP would refuse an inline one anyway.
  const std::regex script(R"(<script\b([^>]*)>)", std::regex::icase);
  int scripts = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), script);
       it != std::sregex_iterator(); ++it) {
    ++scripts;
    CHECK((*it)[1].str().find("src=\"app.js\"") != std::string::npos);
  }
  CHECK(scripts == 1);
  CHECK_FALSE(std::regex_search(html, std::regex(R"(\son[a-z]+\s*=)", std::regex::icase)));
  CHECK_FALSE(std::regex_search(html, std::regex(R"(<style|\sstyle\s*=)", std::regex::icase)));
  for (const auto& f : ui::embedded_files()) {
    INFO(f.name);
    CHECK(std::string(f.body).find("//cdn") == std::string::npos);
    CHECK_FALSE(std::regex_search(std::string(f.body), std::regex(R"((src|href)="https?:)")));
  }
  // The script's one fetch() goes to this origin.
  const std::string js = file_body("app.js");
  CHECK(js.find("fetch(") == js.rfind("fetch("));
  CHECK(js.find("fetch(location.origin + path") != std::string::npos);
  CHECK(js.find("XMLHttpRequest") == std::string::npos);
  CHECK(js.find("import(") == std::string::npos);
  CHECK(file_body("style.css").find("@import") == std::string::npos);
  CHECK(file_body("style.css").find("url(") == std::string::npos);
}

TEST_CASE("The page's script inserts text only and only ever sends GET", "[ui]") {
  const std::string js = file_body("app.js");
  // Every API string reaches the page through textContent / Text nodes (the browser test
  // proves it with hostile names and logs); none of the HTML-parsing sinks may appear.
  for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                           "eval(", "new Function", "srcdoc", "createContextualFragment"}) {
    INFO(sink);
    CHECK(js.find(sink) == std::string::npos);
  }
  for (const char* method : {"'POST'", "'PATCH'", "'PUT'", "'DELETE'", "\"POST\"", "\"DELETE\""}) {
    INFO(method);
    CHECK(js.find(method) == std::string::npos);
  }
  CHECK(js.find("method: 'GET'") != std::string::npos);
}

TEST_CASE("Each file is served with its content type, the security headers and an ETag", "[ui]") {
  struct Case {
    const char* path;
    const char* type;
    const char* needle;
  };
  for (const Case& c : {Case{"/ui/", "text/html; charset=utf-8", "<!doctype html>"},
                        Case{"/ui/index.html", "text/html; charset=utf-8", "<!doctype html>"},
                        Case{"/ui/app.js", "text/javascript; charset=utf-8", "use strict"},
                        Case{"/ui/style.css", "text/css; charset=utf-8", ":root"}}) {
    INFO(c.path);
    const auto r = ui::serve(c.path, "");
    CHECK(r.status == 200);
    CHECK(r.headers.at("Content-Type") == c.type);
    CHECK(r.body.find(c.needle) != std::string::npos);
    CHECK_FALSE(r.headers.at("ETag").empty());
    check_security_headers(r);
  }
}

TEST_CASE("A matching If-None-Match is 304 without a body, a stale one gets the file", "[ui]") {
  const auto first = ui::serve("/ui/app.js", "");
  const std::string etag = first.headers.at("ETag");
  const auto again = ui::serve("/ui/app.js", etag);
  CHECK(again.status == 304);
  CHECK(again.body.empty());
  CHECK(again.headers.at("ETag") == etag);
  check_security_headers(again);
  CHECK(ui::serve("/ui/app.js", "\"stale\", W/" + etag).status == 304);
  CHECK(ui::serve("/ui/app.js", "*").status == 304);
  const auto stale = ui::serve("/ui/app.js", "\"0123\"");
  CHECK(stale.status == 200);
  CHECK(stale.body == first.body);
}

TEST_CASE("No path but the page's own files names anything: traversal and odd names are 404",
          "[ui]") {
  for (const char* path :
       {"/ui/../app-services", "/ui/..%2fapp-services", "/ui/%2e%2e/etc/passwd", "/ui/./app.js",
        "/ui//app.js", "/ui/app.js/", "/ui/APP.JS", "/ui/app.js%00.html", "/ui/ui.cpp",
        "/ui/embed.cmake", "/ui/nope", "/ui/favicon.ico", "/ui/\\app.js"}) {
    INFO(path);
    const auto r = ui::serve(path, "");
    CHECK(r.status == 404);
    CHECK(r.body.find("no such page") != std::string::npos);
    check_security_headers(r);
  }
}

TEST_CASE("/ui without the slash redirects to /ui/", "[ui]") {
  const auto r = ui::serve("/ui", "");
  CHECK(r.status == 308);
  CHECK(r.headers.at("Location") == "/ui/");
}

TEST_CASE("Only /ui and paths under /ui/ belong to the page, and its metric route is fixed",
          "[ui]") {
  CHECK(ui::is_ui_path("/ui"));
  CHECK(ui::is_ui_path("/ui/"));
  CHECK(ui::is_ui_path("/ui/app.js"));
  CHECK_FALSE(ui::is_ui_path("/uix"));
  CHECK_FALSE(ui::is_ui_path("/u"));
  CHECK_FALSE(ui::is_ui_path("/app-services/ui"));
  // One label value whatever the path: unknown /ui/ paths cannot grow the metric's series.
  CHECK(berth::api::route_template("/ui/") == "/ui/");
  CHECK(berth::api::route_template("/ui/whatever-" + std::string(40, 'x')) == "/ui/");
  CHECK(berth::api::route_template("/ui?x=1") == "/ui/");
}
