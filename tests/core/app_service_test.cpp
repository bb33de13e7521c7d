#include <catch2/catch.hpp>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/app_service.h"

using berth::ErrorCode;
using berth::Secret;
using nlohmann::json;
namespace core = berth::core;

namespace {

json valid_create_body() {
  return json::parse(R"({
    "name": "my-api",
    "plan_name": "tier-2",
    "zone": "se-sto1",
    "app_config": {
      "image_ref": "ghcr.io/acme/api:1.0.0",
      "container_port": 8080,
      "registry_username": "acme-bot",
      "registry_password": "ghp_XXXXXXXXXXXXXXXXXX"
    }
  })");
}

core::AppConfig valid_config() {
  core::AppConfig c;
  c.image_ref = "ghcr.io/acme/api:1.0.0";
  c.container_port = 8080;
  return c;
}

core::CreateRequest valid_create() {
  core::CreateRequest r;
  r.name = "my-api";
  r.plan_name = "tier-2";
  r.config = valid_config();
  return r;
}

// Asserts a 422 naming `field`.
template <typename T>
void require_rejected(const T& result, const std::string& field) {
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::kValidation);
  CHECK(result.error().field == field);
  CHECK_FALSE(result.error().message.empty());
}

// True when any key anywhere in `j` contains "password".
bool has_password_key(const json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key().find("password") != std::string::npos) return true;
      if (has_password_key(*it)) return true;
    }
  } else if (j.is_array()) {
    for (const auto& e : j) {
      if (has_password_key(e)) return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("The product page's create example parses with the password held as a Secret",
          "[app_service]") {
  auto req = core::parse_create_request(valid_create_body());
  REQUIRE(req.ok());
  CHECK(req->name == "my-api");
  CHECK(req->plan_name == "tier-2");
  CHECK(req->zone == std::optional<std::string>("se-sto1"));
  CHECK(req->config.image_ref == "ghcr.io/acme/api:1.0.0");
  CHECK(req->config.container_port == 8080);
  CHECK(req->config.registry_username == "acme-bot");
  REQUIRE(req->registry_password.has_value());
  CHECK(req->registry_password->reveal() == "ghp_XXXXXXXXXXXXXXXXXX");
  CHECK(req->config.health == core::HealthCheck{});
  CHECK(core::validate_create(*req).ok());
}

TEST_CASE("An unknown field is rejected with its full path", "[app_service]") {
  json body = valid_create_body();
  body["app_config"].erase("registry_password");
  body["app_config"]["registry_pasword"] = "x";
  auto req = core::parse_create_request(body);
  require_rejected(req, "app_config.registry_pasword");
  CHECK(req.error().message == "app_config.registry_pasword: unknown field");

  json top = valid_create_body();
  top["status"] = "Running";
  require_rejected(core::parse_create_request(top), "status");

  json patch = {{"app_config", {{"image_ref", "nginx"}}}, {"bogus", 1}};
  require_rejected(core::parse_patch_request(patch), "bogus");

  require_rejected(core::parse_rollback_request({{"deployment_id", "a"}, {"force", true}}),
                   "force");
}

TEST_CASE("A wrong JSON type names the field and the expected type", "[app_service]") {
  struct Case {
    const char* pointer;
    json value;
    const char* field;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"/app_config/container_port", "8080", "app_config.container_port", "an integer"},
      {"/app_config/container_port", 80.5, "app_config.container_port", "an integer"},
      {"/app_config/image_ref", 5, "app_config.image_ref", "a string"},
      {"/app_config/env", json::array(), "app_config.env", "an object"},
      {"/app_config/env", {{"A", 1}}, "app_config.env.A", "a string"},
      {"/app_config/custom_domains", "a.example.com", "app_config.custom_domains", "an array"},
      {"/app_config/custom_domains", {1}, "app_config.custom_domains[0]", "a string"},
      {"/app_config/registry_password", 1234, "app_config.registry_password", "a string"},
      {"/storage_size_gb", "20", "storage_size_gb", "an integer"},
      {"/name", true, "name", "a string"},
      {"/app_config", "x", "app_config", "an object"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.pointer, c.value.dump());
    json body = valid_create_body();
    body[json::json_pointer(c.pointer)] = c.value;
    auto req = core::parse_create_request(body);
    require_rejected(req, c.field);
    CHECK_THAT(req.error().message, Catch::Contains(c.expected));
    CHECK_THAT(req.error().message, Catch::Contains(c.field));
  }
}

TEST_CASE("An integer beyond the int range is rejected, not wrapped", "[app_service]") {
  json body = valid_create_body();
  body["app_config"]["container_port"] = 4294975376ULL;  // 2^32 + 8080
  require_rejected(core::parse_create_request(body), "app_config.container_port");
}

TEST_CASE("A body that is not an object is a 400 like invalid JSON, not an exception",
          "[app_service]") {
  for (const json& body : {json::array(), json(1), json("x"), json()}) {
    for (const berth::Error& e :
         {core::parse_create_request(body).error(), core::parse_patch_request(body).error(),
          core::parse_rollback_request(body).error()}) {
      CHECK(e.code == ErrorCode::kInvalidArgument);
      CHECK(e.message.rfind("the request body must be a JSON object, not ", 0) == 0);
    }
  }
}

TEST_CASE("Create requires app_config, image_ref, container_port, name and plan", "[app_service]") {
  json body = valid_create_body();
  body.erase("app_config");
  require_rejected(core::parse_create_request(body), "app_config");

  struct Case {
    const char* erase_pointer;
    const char* field;
  };
  for (const Case& c : {Case{"/app_config/image_ref", "app_config.image_ref"},
                        Case{"/app_config/container_port", "app_config.container_port"},
                        Case{"/name", "name"}, Case{"/plan_name", "plan_name"}}) {
    CAPTURE(c.erase_pointer);
    json b = valid_create_body();
    json::json_pointer ptr(c.erase_pointer);
    b[ptr.parent_pointer()].erase(ptr.back());
    auto req = core::parse_create_request(b);
    require_rejected(req, c.field);
    CHECK(req.error().message == std::string(c.field) + ": is required");
  }
}

TEST_CASE("container_port 0 on create is out of range, not missing", "[app_service]") {
  json body = valid_create_body();
  body["app_config"]["container_port"] = 0;
  auto req = core::parse_create_request(body);
  REQUIRE(req.ok());
  auto s = core::validate_create(*req);
  require_rejected(s, "app_config.container_port");
  CHECK(s.error().message == "app_config.container_port: is out of range (1-65535)");
}

TEST_CASE("Names must be DNS labels of 3 to 63 characters starting with a letter",
          "[app_service]") {
  for (const char* good : {"abc", "my-api", "a1b", "a-------9",
                           "x23456789012345678901234567890123456789012345678901234567890123"}) {
    CAPTURE(good);
    CHECK(core::validate_name(good).ok());
  }
  for (const char* bad : {"", "ab", "1abc", "-abc", "abc-", "My-api", "my_api", "my.api",
                          "x234567890123456789012345678901234567890123456789012345678901234"}) {
    CAPTURE(bad);
    require_rejected(core::validate_name(bad), "name");
  }
}

TEST_CASE("Plans are tier-1 to tier-15", "[app_service]") {
  for (const char* good : {"tier-1", "tier-9", "tier-10", "tier-15"}) {
    CAPTURE(good);
    CHECK(core::validate_plan_name(good).ok());
  }
  for (const char* bad :
       {"", "tier-0", "tier-16", "tier-01", "tier-", "Tier-1", "tier-1a", "tier-100", "small"}) {
    CAPTURE(bad);
    require_rejected(core::validate_plan_name(bad), "plan_name");
  }
}

TEST_CASE("Storage is at least 10 GB, bounded, and standard or maxiops", "[app_service]") {
  CHECK(core::validate_storage(10, "standard").ok());
  CHECK(core::validate_storage(16384, "maxiops").ok());
  require_rejected(core::validate_storage(9, "standard"), "storage_size_gb");
  require_rejected(core::validate_storage(16385, "standard"), "storage_size_gb");
  require_rejected(core::validate_storage(-10, "standard"), "storage_size_gb");
  require_rejected(core::validate_storage(10, "fast"), "storage_tier");
}

TEST_CASE("Create fills defaults for zone and storage and derives the registry host",
          "[app_service]") {
  json body = valid_create_body();
  body.erase("zone");
  auto req = core::parse_create_request(body);
  REQUIRE(req.ok());
  CHECK_FALSE(req->zone.has_value());
  auto svc = core::service_from_create(*req, "se-sto1");
  CHECK(svc.zone == "se-sto1");
  CHECK(svc.storage_size_gb == 10);
  CHECK(svc.storage_tier == "standard");
  CHECK(svc.registry_host == "ghcr.io");
  CHECK(svc.status == core::ServiceStatus::kPending);

  body["storage_size_gb"] = 50;
  body["storage_tier"] = "maxiops";
  body["zone"] = "de-fra1";
  auto req2 = core::parse_create_request(body);
  REQUIRE(req2.ok());
  auto svc2 = core::service_from_create(*req2, "se-sto1");
  CHECK(svc2.zone == "de-fra1");
  CHECK(svc2.storage_size_gb == 50);
  CHECK(svc2.storage_tier == "maxiops");
}

TEST_CASE("Create with storage below 10 GB or an invalid zone is rejected", "[app_service]") {
  json body = valid_create_body();
  body["storage_size_gb"] = 5;
  auto req = core::parse_create_request(body);
  REQUIRE(req.ok());
  require_rejected(core::validate_create(*req), "storage_size_gb");

  body = valid_create_body();
  body["zone"] = "SE STO";
  auto req2 = core::parse_create_request(body);
  REQUIRE(req2.ok());
  require_rejected(core::validate_create(*req2), "zone");
}

TEST_CASE("Container ports are 1 to 65535", "[app_service]") {
  for (int port : {1, 80, 65535}) {
    auto c = valid_config();
    c.container_port = port;
    CHECK(core::validate_app_config(c).ok());
  }
  for (int port : {0, -1, 65536}) {
    CAPTURE(port);
    auto c = valid_config();
    c.container_port = port;
    require_rejected(core::validate_app_config(c), "app_config.container_port");
  }
}

TEST_CASE("An invalid image reference is rejected on app_config.image_ref", "[app_service]") {
  auto c = valid_config();
  c.image_ref = "ghcr.io/Acme/API:1";
  require_rejected(core::validate_app_config(c), "app_config.image_ref");
}

TEST_CASE("Environment names are POSIX, not MDB_ prefixed and not DATABASE_URL", "[app_service]") {
  auto ok = valid_config();
  ok.env = {{"PORT", "8080"}, {"_private", ""}, {"a1_B2", "x"}, {"MDBX", "fine"}};
  CHECK(core::validate_app_config(ok).ok());

  for (const char* bad : {"1ABC", "A-B", "A B", "", "MDB_HOST", "MDB_", "DATABASE_URL", "É"}) {
    CAPTURE(bad);
    auto c = valid_config();
    c.env = {{bad, "v"}};
    const std::string name = bad;
    const std::string field = name.empty()         ? "app_config.env"
                              : name == "\xc3\x89" ? "app_config.env.\\xc3\\x89"
                                                   : "app_config.env." + name;
    require_rejected(core::validate_app_config(c), field);
  }
}

TEST_CASE("Env values podman's env file cannot carry are a 422 naming the variable",
          "[app_service]") {
  struct Case {
    std::string value;
    const char* what;
  };
  const std::vector<Case> cases = {
      {"line1\nline2", "the value contains a newline"},
      {"trailing\n", "the value contains a newline"},
      {"a\rb", "the value contains a carriage return"},
      {"crlf\r", "the value contains a carriage return"},
      {std::string("nul\0byte", 8), "the value contains a NUL byte"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.value.size());
    json body = valid_create_body();
    body["app_config"]["env"] = {{"FOO", c.value}, {"OK", "fine"}};
    auto req = core::parse_create_request(body);
    REQUIRE(req.ok());
    auto s = core::validate_create(*req);
    require_rejected(s, "app_config.env.FOO");
    CHECK(s.error().message == std::string("app_config.env.FOO: ") + c.what);

    auto patch = core::parse_patch_request({{"app_config", {{"env", {{"FOO", c.value}}}}}});
    REQUIRE(patch.ok());
    require_rejected(core::apply_patch(valid_config(), patch->app_config), "app_config.env.FOO");
  }
  // What an env file can carry is accepted as it is: '=', '#', quotes, spaces, tabs, unicode.
  auto ok = valid_config();
  ok.env = {{"A", "x=y#z 'q' \"d\"\t \xc3\xa9"}, {"EMPTY", ""}};
  CHECK(core::validate_app_config(ok).ok());
}

TEST_CASE("Environment size is bounded in count, value size and total", "[app_service]") {
  auto many = valid_config();
  for (std::size_t i = 0; i <= core::kMaxEnvVars; ++i) many.env["V" + std::to_string(i)] = "x";
  require_rejected(core::validate_app_config(many), "app_config.env");

  auto big = valid_config();
  big.env["BIG"] = std::string(core::kMaxEnvValueLength + 1, 'x');
  require_rejected(core::validate_app_config(big), "app_config.env.BIG");

  auto total = valid_config();
  for (int i = 0; i < 3; ++i) {
    total.env["T" + std::to_string(i)] = std::string(core::kMaxEnvValueLength, 'x');
  }
  require_rejected(core::validate_app_config(total), "app_config.env");
}

TEST_CASE("Custom domains are at most five distinct DNS names", "[app_service]") {
  auto ok = valid_config();
  ok.custom_domains = {"app.example.com", "www.example.com", "a-b.example.co.uk", "x.io",
                       "api.example.com"};
  CHECK(core::validate_app_config(ok).ok());

  auto six = ok;
  six.custom_domains.push_back("six.example.com");
  require_rejected(core::validate_app_config(six), "app_config.custom_domains");

  auto dup = valid_config();
  dup.custom_domains = {"a.example.com", "a.example.com"};
  require_rejected(core::validate_app_config(dup), "app_config.custom_domains[1]");

  for (const char* bad : {"localhost", "-a.example.com", "a..example.com", "example.com.",
                          "*.example.com", "a_b.example.com", "10.0.0.1", "exa mple.com", ""}) {
    CAPTURE(bad);
    auto c = valid_config();
    c.custom_domains = {bad};
    require_rejected(core::validate_app_config(c), "app_config.custom_domains[0]");
  }
}

TEST_CASE("Custom domains are lowercased when parsed so duplicates differing in case are caught",
          "[app_service]") {
  json body = valid_create_body();
  body["app_config"]["custom_domains"] = {"App.Example.com", "app.example.COM"};
  auto req = core::parse_create_request(body);
  REQUIRE(req.ok());
  CHECK(req->config.custom_domains[0] == "app.example.com");
  require_rejected(core::validate_create(*req), "app_config.custom_domains[1]");
}

TEST_CASE("Health check fields are positive and bounded, timeout within interval",
          "[app_service]") {
  struct Case {
    core::HealthCheck health;
    const char* field;  // nullptr: valid
  };
  const std::vector<Case> cases = {
      {{"", 5, 3, 1}, nullptr},
      {{"/healthz", 300, 60, 10}, nullptr},
      {{"/", 1, 1, 1}, nullptr},
      {{"healthz", 5, 3, 1}, "app_config.health_check_path"},
      {{"/a b", 5, 3, 1}, "app_config.health_check_path"},
      {{"/" + std::string(core::kMaxHealthCheckPathLength, 'a'), 5, 3, 1},
       "app_config.health_check_path"},
      {{"", 0, 1, 1}, "app_config.health_check_interval_seconds"},
      {{"", 301, 3, 1}, "app_config.health_check_interval_seconds"},
      {{"", 5, 0, 1}, "app_config.health_check_timeout_seconds"},
      {{"", 120, 61, 1}, "app_config.health_check_timeout_seconds"},
      {{"", 5, 6, 1}, "app_config.health_check_timeout_seconds"},
      {{"", 5, 3, 0}, "app_config.health_check_healthy_threshold"},
      {{"", 5, 3, 11}, "app_config.health_check_healthy_threshold"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.health.path.size(), c.health.interval_seconds, c.health.timeout_seconds,
            c.health.healthy_threshold);
    auto cfg = valid_config();
    cfg.health = c.health;
    if (c.field == nullptr) {
      CHECK(core::validate_app_config(cfg).ok());
    } else {
      require_rejected(core::validate_app_config(cfg), c.field);
    }
  }
}

TEST_CASE("Health check fields are read from create and zero means the default", "[app_service]") {
  json body = valid_create_body();
  body["app_config"]["health_check_path"] = "/healthz";
  body["app_config"]["health_check_interval_seconds"] = 10;
  body["app_config"]["health_check_timeout_seconds"] = 0;
  body["app_config"]["health_check_healthy_threshold"] = 2;
  auto req = core::parse_create_request(body);
  REQUIRE(req.ok());
  CHECK(req->config.health.path == "/healthz");
  CHECK(req->config.health.interval_seconds == 10);
  CHECK(req->config.health.timeout_seconds == core::HealthCheck{}.timeout_seconds);
  CHECK(req->config.health.healthy_threshold == 2);
}

TEST_CASE("Create requires registry_username and registry_password together", "[app_service]") {
  auto user_only = valid_create();
  user_only.config.registry_username = "acme-bot";
  require_rejected(core::validate_create(user_only), "app_config.registry_password");

  auto password_only = valid_create();
  password_only.registry_password = Secret("ghp_x");
  require_rejected(core::validate_create(password_only), "app_config.registry_username");

  auto both = valid_create();
  both.config.registry_username = "acme-bot";
  both.registry_password = Secret("ghp_x");
  CHECK(core::validate_create(both).ok());

  CHECK(core::validate_create(valid_create()).ok());
}

TEST_CASE("An empty registry_password on create counts as absent", "[app_service]") {
  json body = valid_create_body();
  body["app_config"]["registry_password"] = "";
  auto req = core::parse_create_request(body);
  REQUIRE(req.ok());
  CHECK_FALSE(req->registry_password.has_value());
  require_rejected(core::validate_create(*req), "app_config.registry_password");
}

TEST_CASE("A username with a colon is rejected because it would corrupt the auth file",
          "[app_service]") {
  auto c = valid_config();
  c.registry_username = "acme:bot";
  require_rejected(core::validate_app_config(c), "app_config.registry_username");
}

TEST_CASE("PATCH treats the Go SDK zero values image_ref \"\" and container_port 0 as absent",
          "[app_service]") {
  auto patch = core::parse_patch_request(
      {{"app_config", {{"image_ref", ""}, {"container_port", 0}, {"env", {{"A", "1"}}}}}});
  REQUIRE(patch.ok());
  CHECK_FALSE(patch->app_config.image_ref.has_value());
  CHECK_FALSE(patch->app_config.container_port.has_value());
  auto next = core::apply_patch(valid_config(), patch->app_config);
  REQUIRE(next.ok());
  CHECK(next->image_ref == valid_config().image_ref);
  CHECK(next->container_port == 8080);
  CHECK(next->env == std::map<std::string, std::string>{{"A", "1"}});
}

TEST_CASE("PATCH changes only the fields it carries", "[app_service]") {
  auto current = valid_config();
  current.env = {{"KEEP", "1"}};
  current.custom_domains = {"app.example.com"};
  current.registry_username = "acme-bot";
  current.health = {"/healthz", 10, 5, 2};

  auto patch = core::parse_patch_request(
      {{"app_config", {{"image_ref", "ghcr.io/acme/api:1.1.0"}, {"container_port", 8080}}}});
  REQUIRE(patch.ok());
  CHECK(patch->app_config.username == core::AppConfigPatch::Username::kAbsent);
  auto next = core::apply_patch(current, patch->app_config);
  REQUIRE(next.ok());
  auto expected = current;
  expected.image_ref = "ghcr.io/acme/api:1.1.0";
  CHECK(*next == expected);

  auto hc = core::parse_patch_request(
      {{"app_config", {{"health_check_path", ""}, {"health_check_healthy_threshold", 3}}}});
  REQUIRE(hc.ok());
  auto next2 = core::apply_patch(current, hc->app_config);
  REQUIRE(next2.ok());
  CHECK(next2->health.path.empty());
  CHECK(next2->health.healthy_threshold == 3);
  CHECK(next2->health.interval_seconds == 10);
}

TEST_CASE("PATCH to a different container_port is rejected as immutable", "[app_service]") {
  core::AppConfigPatch patch;
  patch.container_port = 9090;
  auto next = core::apply_patch(valid_config(), patch);
  require_rejected(next, "app_config.container_port");
  CHECK_THAT(next.error().message, Catch::Contains("cannot be changed"));

  patch.container_port = 8080;  // the same port is fine
  CHECK(core::apply_patch(valid_config(), patch).ok());
}

TEST_CASE("PATCH validates the resulting config", "[app_service]") {
  core::AppConfigPatch patch;
  patch.health_check_timeout_seconds = 30;  // current interval is 5
  require_rejected(core::apply_patch(valid_config(), patch),
                   "app_config.health_check_timeout_seconds");

  core::AppConfigPatch env;
  env.env = std::map<std::string, std::string>{{"DATABASE_URL", "x"}};
  require_rejected(core::apply_patch(valid_config(), env), "app_config.env.DATABASE_URL");
}

TEST_CASE("PATCH registry_username: absent keeps, a name sets, null or empty removes",
          "[app_service]") {
  using U = core::AppConfigPatch::Username;
  struct Case {
    json app_config;
    U intent;
    std::string resulting_username;
  };
  const std::vector<Case> cases = {
      {{{"image_ref", "ghcr.io/acme/api:2"}}, U::kAbsent, "acme-bot"},
      {{{"registry_username", "other"}}, U::kSet, "other"},
      {{{"registry_username", nullptr}}, U::kRemove, ""},
      {{{"registry_username", ""}}, U::kRemove, ""},
  };
  auto current = valid_config();
  current.registry_username = "acme-bot";
  for (const auto& c : cases) {
    CAPTURE(c.app_config.dump());
    auto patch = core::parse_patch_request({{"app_config", c.app_config}});
    REQUIRE(patch.ok());
    CHECK(patch->app_config.username == c.intent);
    auto next = core::apply_patch(current, patch->app_config);
    REQUIRE(next.ok());
    CHECK(next->registry_username == c.resulting_username);
  }
}

TEST_CASE("PATCH carries the password only as a Secret and \"\" means no password",
          "[app_service]") {
  auto with = core::parse_patch_request({{"app_config", {{"registry_password", "tok"}}}});
  REQUIRE(with.ok());
  REQUIRE(with->app_config.registry_password.has_value());
  CHECK(with->app_config.registry_password->reveal() == "tok");

  auto empty = core::parse_patch_request({{"app_config", {{"registry_password", ""}}}});
  REQUIRE(empty.ok());
  CHECK_FALSE(empty->app_config.registry_password.has_value());
}

TEST_CASE("PATCH without app_config is rejected", "[app_service]") {
  require_rejected(core::parse_patch_request(json::object()), "app_config");
}

TEST_CASE("PATCH top-level fields must equal the current values", "[app_service]") {
  core::AppService svc;
  svc.name = "my-api";
  svc.plan_name = "tier-2";
  svc.zone = "se-sto1";
  auto same = core::parse_patch_request({{"name", "my-api"},
                                         {"plan_name", "tier-2"},
                                         {"zone", "se-sto1"},
                                         {"storage_size_gb", 10},
                                         {"storage_tier", "standard"},
                                         {"app_config", json::object()}});
  REQUIRE(same.ok());
  CHECK(core::check_patch_top_level(svc, *same).ok());

  auto renamed = core::parse_patch_request({{"name", "other"}, {"app_config", json::object()}});
  REQUIRE(renamed.ok());
  require_rejected(core::check_patch_top_level(svc, *renamed), "name");

  auto resized =
      core::parse_patch_request({{"storage_size_gb", 20}, {"app_config", json::object()}});
  REQUIRE(resized.ok());
  require_rejected(core::check_patch_top_level(svc, *resized), "storage_size_gb");
}

TEST_CASE("Rollback requires a deployment_id and may carry a password", "[app_service]") {
  require_rejected(core::parse_rollback_request(json::object()), "deployment_id");
  require_rejected(core::parse_rollback_request({{"deployment_id", ""}}), "deployment_id");
  require_rejected(core::parse_rollback_request({{"deployment_id", 7}}), "deployment_id");

  auto plain = core::parse_rollback_request({{"deployment_id", "rev-1"}});
  REQUIRE(plain.ok());
  CHECK(plain->deployment_id == "rev-1");
  CHECK_FALSE(plain->registry_password.has_value());

  auto with =
      core::parse_rollback_request({{"deployment_id", "rev-1"}, {"registry_password", "p"}});
  REQUIRE(with.ok());
  REQUIRE(with->registry_password.has_value());
  CHECK(with->registry_password->reveal() == "p");
}

TEST_CASE("An AppService serialises to exactly the API shape without any password",
          "[app_service]") {
  core::AppService svc;
  svc.id = "8d7e3c1a-0000-4000-8000-000000000001";
  svc.name = "my-api";
  svc.plan_name = "tier-2";
  svc.zone = "se-sto1";
  svc.status = core::ServiceStatus::kPendingModification;
  svc.config = valid_config();
  svc.config.registry_username = "acme-bot";
  svc.config.env = {{"A", "1"}};
  svc.config.custom_domains = {"app.example.com"};
  svc.registry_host = "ghcr.io";
  svc.created_at = 1714564800000;  // 2024-05-01T12:00:00Z
  svc.updated_at = 1714564800250;
  svc.conditions = {{"Ready", "True", "Deployed", "revision 1 serves", 1714564800000}};
  svc.agent = "vm-1";

  json j = core::to_json(svc);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{"agent", "app_config", "conditions", "created_at",
                                         "current_deployment_id", "id", "last_error", "name",
                                         "plan_name", "registry_host", "status", "storage_size_gb",
                                         "storage_tier", "updated_at", "url", "zone"});
  std::vector<std::string> config_keys;
  for (auto it = j["app_config"].begin(); it != j["app_config"].end(); ++it) {
    config_keys.push_back(it.key());
  }
  std::sort(config_keys.begin(), config_keys.end());
  CHECK(config_keys == std::vector<std::string>{"container_port", "custom_domains", "env",
                                                "health_check_healthy_threshold",
                                                "health_check_interval_seconds",
                                                "health_check_path", "health_check_timeout_seconds",
                                                "image_ref", "registry_username"});
  CHECK(j["status"] == "PendingModification");
  CHECK(j["created_at"] == "2024-05-01T12:00:00Z");
  CHECK(j["updated_at"] == "2024-05-01T12:00:00.250Z");
  CHECK(j["app_config"]["registry_username"] == "acme-bot");
  CHECK(j["app_config"]["env"]["A"] == "1");
  CHECK(j["conditions"][0]["type"] == "Ready");
  CHECK(j["conditions"][0]["last_transition_time"] == "2024-05-01T12:00:00Z");
  CHECK_FALSE(has_password_key(j));
}

TEST_CASE("A revision serialises as a deployment with its logs", "[app_service]") {
  core::Revision r;
  r.id = "rev-2";
  r.service_id = "svc-1";
  r.number = 2;
  r.config = valid_config();
  r.config.registry_username = "acme-bot";
  r.reason = "configuration update";
  r.state = core::RevisionState::kFailed;
  r.image_digest = "sha256:" + std::string(64, 'a');
  r.created_at = 0;
  r.deploy_logs = {{"pull", "failed", "pull failed", "unauthorized", 1500, 42}};

  json j = core::to_json(r);
  CHECK(j.size() == 13);
  CHECK(j["id"] == "rev-2");
  CHECK(j["service_id"] == "svc-1");
  CHECK(j["revision"] == 2);
  CHECK(j["image_ref"] == "ghcr.io/acme/api:1.0.0");
  CHECK(j["image_digest"] == r.image_digest);
  CHECK(j["container_port"] == 8080);
  CHECK(j["registry_username"] == "acme-bot");
  CHECK(j["reason"] == "configuration update");
  CHECK(j["state"] == "failed");
  CHECK(j["created_at"] == "1970-01-01T00:00:00Z");
  REQUIRE(j["deploy_logs"].size() == 1);
  CHECK(j["deploy_logs"][0] == json{{"step", "pull"},
                                    {"status", "failed"},
                                    {"message", "pull failed"},
                                    {"detail", "unauthorized"},
                                    {"started_at", "1970-01-01T00:00:01.500Z"},
                                    {"duration_ms", 42}});
  CHECK_FALSE(has_password_key(j));
}

TEST_CASE("RFC 3339 formatting handles leap years, millis and times before 1970", "[app_service]") {
  CHECK(core::format_rfc3339(0) == "1970-01-01T00:00:00Z");
  CHECK(core::format_rfc3339(951782400000) == "2000-02-29T00:00:00Z");
  CHECK(core::format_rfc3339(4102444799999) == "2099-12-31T23:59:59.999Z");
  CHECK(core::format_rfc3339(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(core::format_rfc3339(1709164800000 + 86399000) == "2024-02-29T23:59:59Z");
}

TEST_CASE("Create and PATCH read the same app_config fields", "[app_service]") {
  const json config = {{"image_ref", "ghcr.io/acme/api:2"},
                       {"container_port", 8080},
                       {"env", {{"A", "1"}}},
                       {"custom_domains", {"App.Example.com"}},
                       {"registry_username", "bot"},
                       {"registry_password", "pw"},
                       {"health_check_path", "/healthz"},
                       {"health_check_interval_seconds", 10},
                       {"health_check_timeout_seconds", 4},
                       {"health_check_healthy_threshold", 2}};
  json body = valid_create_body();
  body["app_config"] = config;
  auto create = core::parse_create_request(body);
  REQUIRE(create.ok());
  auto patch = core::parse_patch_request({{"app_config", config}});
  REQUIRE(patch.ok());
  auto patched = core::apply_patch(valid_config(), patch->app_config);
  REQUIRE(patched.ok());
  CHECK(*patched == create->config);
  CHECK(create->config.custom_domains == std::vector<std::string>{"app.example.com"});
  CHECK(create->registry_password->reveal() == "pw");
  CHECK(patch->app_config.registry_password->reveal() == "pw");
  // Every field is known to both: removing any one still parses, a typo fails in both.
  for (auto it = config.begin(); it != config.end(); ++it) {
    json typo = config;
    typo[it.key() + "x"] = typo[it.key()];
    json create_body = valid_create_body();
    create_body["app_config"] = typo;
    require_rejected(core::parse_create_request(create_body), "app_config." + it.key() + "x");
    require_rejected(core::parse_patch_request({{"app_config", typo}}),
                     "app_config." + it.key() + "x");
  }
}

TEST_CASE("Validation messages are '<field>: <what is wrong>' and never echo the value",
          "[app_service]") {
  const std::string canary = "s3cr3tCANARY";
  struct Case {
    const char* pointer;
    json value;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"/name", "Bad_" + canary, "name"},
      {"/plan_name", "tier-" + canary, "plan_name"},
      {"/zone", "Z " + canary, "zone"},
      {"/storage_tier", canary, "storage_tier"},
      {"/app_config/image_ref", "https://bot:" + canary + "@ghcr.io/a/b", "app_config.image_ref"},
      {"/app_config/image_ref", "ghcr.io/acme/" + canary, "app_config.image_ref"},
      {"/app_config/image_ref", "ghcr.io/acme/app " + canary, "app_config.image_ref"},
      {"/app_config/env", {{"FOO", canary + "\n"}}, "app_config.env.FOO"},
      {"/app_config/custom_domains", {canary + "..example.com"}, "app_config.custom_domains[0]"},
      {"/app_config/registry_username", "bot:" + canary, "app_config.registry_username"},
      {"/app_config/health_check_path", canary, "app_config.health_check_path"},
      {"/app_config/health_check_path", "/\xc3\xa9" + canary, "app_config.health_check_path"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.pointer);
    json body = valid_create_body();
    body[json::json_pointer(c.pointer)] = c.value;
    auto req = core::parse_create_request(body);
    REQUIRE(req.ok());
    auto s = core::validate_create(*req);
    require_rejected(s, c.field);
    INFO(s.error().message);
    CHECK(s.error().message.rfind(std::string(c.field) + ": ", 0) == 0);
    CHECK(s.error().message.find("3cr3t") == std::string::npos);
    CHECK(s.error().message.find("CANARY") == std::string::npos);
  }
}

TEST_CASE("An image reference error says which part is wrong and where", "[app_service]") {
  auto c = valid_config();
  c.image_ref = "ghcr.io/Acme/api:1";
  auto s = core::validate_app_config(c);
  require_rejected(s, "app_config.image_ref");
  CHECK(s.error().message ==
        "app_config.image_ref: repository path must be lowercase (uppercase letter at position "
        "9)");
  c.image_ref = "nginx :1";
  CHECK(core::validate_app_config(c).error().message ==
        "app_config.image_ref: contains a space at position 6");
}
