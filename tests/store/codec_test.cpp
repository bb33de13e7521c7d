#include <catch2/catch.hpp>

#include "store/codec.h"
#include "store/schema.h"

using namespace berth;

TEST_CASE("an app config survives encoding and decoding unchanged", "[store][codec]") {
  core::AppConfig c;
  c.image_ref = "ghcr.io/acme/api:1.2";
  c.container_port = 8080;
  c.env = {{"A", "1"}, {"QUOTE", "\"x\"\n"}};
  c.custom_domains = {"a.example.com", "b.example.com"};
  c.registry_username = "bot";
  c.health = core::HealthCheck{"/healthz", 7, 2, 3};
  auto back = store::decode_config(store::encode_config(c));
  REQUIRE(back.ok());
  CHECK(*back == c);
}

TEST_CASE("conditions and deploy logs survive encoding and decoding", "[store][codec]") {
  std::vector<core::Condition> conds{{"Ready", "True", "Deployed", "revision 2 serves", 42}};
  auto c = store::decode_conditions(store::encode_conditions(conds));
  REQUIRE(c.ok());
  CHECK(*c == conds);
  std::vector<core::DeployLogEntry> logs{{"pull", "ok", "pulled", "sha256:ab", 10, 250},
                                         {"probe", "failed", "timeout", "", 300, 3000}};
  auto l = store::decode_deploy_logs(store::encode_deploy_logs(logs));
  REQUIRE(l.ok());
  CHECK(*l == logs);
}

TEST_CASE("text the store did not write decodes as data loss, not an exception", "[store][codec]") {
  auto bad_json = store::decode_config("{not json");
  REQUIRE_FALSE(bad_json.ok());
  CHECK(bad_json.error().code == ErrorCode::kDataLoss);
  auto wrong_shape = store::decode_deploy_logs(R"([{"step": 3}])");
  REQUIRE_FALSE(wrong_shape.ok());
  CHECK(wrong_shape.error().code == ErrorCode::kDataLoss);
  auto missing_field = store::decode_health(R"({"path": "/"})");
  REQUIRE_FALSE(missing_field.ok());
  CHECK(missing_field.error().code == ErrorCode::kDataLoss);
}

TEST_CASE("invalid UTF-8 in a field is replaced instead of failing the write", "[store][codec]") {
  const std::string text = store::encode_env({{"K", std::string("a\xff"
                                                                "b")}});
  auto env = store::decode_env(text);
  REQUIRE(env.ok());
  CHECK(env->at("K") != std::string("a\xff"
                                    "b"));
  CHECK(env->at("K").front() == 'a');
}

TEST_CASE("migrations are numbered 1..N in order", "[store][schema]") {
  int expected = 1;
  for (const auto& m : store::migrations()) {
    CHECK(m.version == expected);
    ++expected;
  }
  CHECK(store::latest_schema_version() == expected - 1);
  CHECK(store::latest_schema_version() >= 2);
}
