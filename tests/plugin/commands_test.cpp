#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "commands.h"

using namespace berth;
using namespace berth::plugin;
using nlohmann::json;

TEST_CASE("the rollback patch sets changed fields and removes the ones the revision lacks",
          "[plugin]") {
  const json now = json::parse(R"({"imageRef":"web:v2","containerPort":8080,
      "env":{"A":"1","B":"2"},"customDomains":["a.example"],"healthCheck":{"path":"/h","intervalSeconds":5}})");
  const json then = json::parse(R"({"imageRef":"web:v1","containerPort":8080,
      "env":{"A":"1"},"healthCheck":{"path":"/h","intervalSeconds":5}})");
  const json patch = merge_patch_between(now, then);
  CHECK(patch == json::parse(R"({"imageRef":"web:v1","env":{"B":null},"customDomains":null})"));
  json applied = now;
  applied.merge_patch(patch);
  CHECK(applied == then);
}

TEST_CASE("the rollback patch replaces lists whole and adds members the revision had", "[plugin]") {
  const json now = json::parse(R"({"customDomains":["a.example","b.example"]})");
  const json then = json::parse(R"({"customDomains":["b.example"],"zone":"eu-1"})");
  json applied = now;
  applied.merge_patch(merge_patch_between(now, then));
  CHECK(applied == then);
  CHECK(merge_patch_between(then, then) == json::object());
}

TEST_CASE("AGE reads as kubectl's", "[plugin]") {
  // 2026-11-27T12:00:00Z
  const std::int64_t created_ms = 1795780800000;
  auto age = [&](std::int64_t seconds_later) {
    return human_age("2026-11-27T12:00:00Z", created_ms + seconds_later * 1000);
  };
  CHECK(age(0) == "0s");
  CHECK(age(119) == "119s");
  CHECK(age(200) == "3m20s");
  CHECK(age(300) == "5m");
  CHECK(age(17 * 60 + 5) == "17m");
  CHECK(age(5 * 3600 + 3 * 60) == "5h3m");
  CHECK(age(30 * 3600) == "30h");
  CHECK(age(3 * 86400 + 4 * 3600) == "3d4h");
  CHECK(age(90 * 86400) == "90d");
  CHECK(age(2 * 365 * 86400 + 45 * 86400) == "2y45d");
  CHECK(age(9 * 365 * 86400) == "9y");
  CHECK(human_age("2026-11-27T12:00:00.123456Z", created_ms + 61000) == "61s");
  CHECK(human_age("yesterday", created_ms) == "<unknown>");
  CHECK(age(-5) == "<invalid>");
}

TEST_CASE("the NAME argument takes kubectl's TYPE/NAME forms for AppServices only", "[plugin]") {
  for (const char* form : {"web", "appservice/web", "appservices/web", "appsvc/web",
                           "appservice.berth.dev/web", "appservices.berth.dev/web"}) {
    auto name = app_name_argument(form);
    REQUIRE(name.ok());
    CHECK(name.value() == "web");
  }
  auto other = app_name_argument("deployment/web");
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().message.find("AppServices only") != std::string::npos);
  CHECK_FALSE(app_name_argument("appservice/").ok());
}
