#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "agentlink/messages.h"

using namespace berth;
using namespace berth::agentlink;
using nlohmann::json;

namespace {

core::DeployLogEntry sample_log(const std::string& step) {
  return core::DeployLogEntry{step, "ok", "pulled image", "sha256:abc", 1700000000123, 42};
}

DeployTask sample_deploy(bool with_auth) {
  DeployTask d;
  d.task_id = "t-1";
  d.service_id = "svc-1";
  d.revision_id = "rev-1";
  d.revision = 7;
  d.image_ref = "ghcr.io/acme/web:1.2";
  d.image_digest = "sha256:0123";
  d.pull_ref = "ghcr.io/acme/web@sha256:0123";
  d.container_port = 8080;
  d.env = {{"A", "1"}, {"B", "two words"}};
  d.health = core::HealthCheck{"/healthz", 2, 1, 3};
  if (with_auth) d.auth = RegistryAuth{{"ghcr.io"}, "octocat", Secret("s3cr\"et-pässword")};
  return d;
}

Message roundtrip(const Message& m) {
  auto decoded = decode(encode(m));
  if (!decoded) FAIL("decode failed: " << decoded.error().message);
  return std::move(decoded).value();
}

// Builds a frame by editing a valid one, so each test changes exactly one thing.
std::string edited(const Message& m, const std::function<void(json&)>& edit) {
  json j = json::parse(encode(m));
  edit(j);
  return j.dump();
}

}  // namespace

TEST_CASE("A hello with observed apps survives encode and decode unchanged",
          "[agentlink][messages]") {
  Hello h{"vm-1",
          "eu-1",
          "0.1.0",
          {ObservedApp{"svc-1", "rev-2", "sha256:aa", 41000, "berth-svc-1-2", true, "t-9"},
           ObservedApp{"svc-2", "", "", 0, "", false, ""}}};
  auto out = std::get<Hello>(roundtrip(h));
  CHECK(out.name == "vm-1");
  CHECK(out.zone == "eu-1");
  CHECK(out.version == "0.1.0");
  REQUIRE(out.apps.size() == 2);
  CHECK(out.apps[0].service_id == "svc-1");
  CHECK(out.apps[0].revision_id == "rev-2");
  CHECK(out.apps[0].image_digest == "sha256:aa");
  CHECK(out.apps[0].stable_port == 41000);
  CHECK(out.apps[0].container == "berth-svc-1-2");
  CHECK(out.apps[0].healthy);
  CHECK(out.apps[0].last_task_id == "t-9");
  CHECK_FALSE(out.apps[1].healthy);
}

TEST_CASE("A deploy task with credentials survives encode and decode unchanged",
          "[agentlink][messages]") {
  auto out = std::get<DeployTask>(roundtrip(sample_deploy(true)));
  CHECK(out.task_id == "t-1");
  CHECK(out.service_id == "svc-1");
  CHECK(out.revision_id == "rev-1");
  CHECK(out.revision == 7);
  CHECK(out.image_ref == "ghcr.io/acme/web:1.2");
  CHECK(out.image_digest == "sha256:0123");
  CHECK(out.pull_ref == "ghcr.io/acme/web@sha256:0123");
  CHECK(out.container_port == 8080);
  CHECK(out.env == std::map<std::string, std::string>{{"A", "1"}, {"B", "two words"}});
  CHECK(out.health == core::HealthCheck{"/healthz", 2, 1, 3});
  REQUIRE(out.auth.has_value());
  CHECK(out.auth->auth_keys == std::vector<std::string>{"ghcr.io"});
  CHECK(out.auth->username == "octocat");
  CHECK(out.auth->password.reveal() == "s3cr\"et-pässword");
}

TEST_CASE("A deploy task for a public image decodes without credentials", "[agentlink][messages]") {
  const auto frame = encode(sample_deploy(false));
  CHECK_FALSE(json::parse(frame).contains("auth"));
  auto out = std::get<DeployTask>(roundtrip(sample_deploy(false)));
  CHECK_FALSE(out.auth.has_value());
}

TEST_CASE("Restart, remove, ack, progress, result and heartbeat survive encode and decode",
          "[agentlink][messages]") {
  auto restart = std::get<RestartTask>(roundtrip(RestartTask{"t-2", "svc-2"}));
  CHECK(restart.task_id == "t-2");
  CHECK(restart.service_id == "svc-2");

  auto remove = std::get<RemoveTask>(roundtrip(RemoveTask{"t-3", "svc-3"}));
  CHECK(remove.task_id == "t-3");
  CHECK(remove.service_id == "svc-3");

  CHECK(std::get<Ack>(roundtrip(Ack{"t-4"})).task_id == "t-4");

  auto progress = std::get<Progress>(roundtrip(Progress{"t-5", sample_log("pull")}));
  CHECK(progress.task_id == "t-5");
  CHECK(progress.entry == sample_log("pull"));
  CHECK_FALSE(progress.pull.has_value());
  auto pulling = std::get<Progress>(
      roundtrip(Progress{"t-5", sample_log("pull"), PullCounts{3, 5, 41'200'000, 80'000'000}}));
  REQUIRE(pulling.pull.has_value());
  CHECK(*pulling.pull == PullCounts{3, 5, 41'200'000, 80'000'000});

  TaskResult r{"t-6",
               "svc-6",
               "rev-6",
               false,
               "health check failed",
               "sha256:ff",
               41001,
               {sample_log("pull"), sample_log("probe")}};
  auto result = std::get<TaskResult>(roundtrip(r));
  CHECK(result.task_id == "t-6");
  CHECK(result.service_id == "svc-6");
  CHECK(result.revision_id == "rev-6");
  CHECK_FALSE(result.ok);
  CHECK(result.error == "health check failed");
  CHECK(result.image_digest == "sha256:ff");
  CHECK(result.stable_port == 41001);
  CHECK(result.logs == r.logs);

  CHECK(std::get<Heartbeat>(roundtrip(Heartbeat{1700000000999})).sent_at_ms == 1700000000999);
}

TEST_CASE("An app status survives encode and decode, and an unknown state is refused",
          "[agentlink][messages]") {
  AppStatus st{"svc-7", "rev-7", "", AppState::kMissing, "the container is gone", 1700000000123};
  auto back = std::get<AppStatus>(roundtrip(st));
  CHECK(back.service_id == "svc-7");
  CHECK(back.revision_id == "rev-7");
  CHECK(back.container.empty());
  CHECK(back.state == AppState::kMissing);
  CHECK(back.detail == "the container is gone");
  CHECK(back.observed_at_ms == 1700000000123);

  auto bad = decode(R"({"v":1,"type":"status","service_id":"s","revision_id":"r",)"
                    R"("container":"c","state":"sleeping","detail":"","observed_at_ms":1})");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("state") != std::string::npos);
}

TEST_CASE("Every frame carries protocol version 1 and its type name", "[agentlink][messages]") {
  const std::vector<std::pair<Message, std::string>> cases = {{Hello{}, "hello"},
                                                              {sample_deploy(false), "deploy"},
                                                              {RestartTask{}, "restart"},
                                                              {RemoveTask{}, "remove"},
                                                              {Ack{}, "ack"},
                                                              {Progress{}, "progress"},
                                                              {TaskResult{}, "result"},
                                                              {Heartbeat{}, "heartbeat"}};
  for (const auto& [message, type] : cases) {
    json j = json::parse(encode(message));
    CHECK(j.at("v") == 1);
    CHECK(j.at("type") == type);
  }
}

TEST_CASE("Only a deploy frame with credentials contains the password", "[agentlink][messages]") {
  const std::string password = "s3cr\"et-pässword";
  const std::string with_auth = encode(sample_deploy(true));
  CHECK(json::parse(with_auth).at("auth").at("password") == password);
  CHECK(json::parse(with_auth).at("auth").at("keys") == json::array({"ghcr.io"}));
  CHECK(json::parse(with_auth).at("auth").at("username") == "octocat");

  // Every other message, filled with everything an operator could put in it, never does.
  Hello h{
      "vm-1", "eu-1", "0.1.0", {ObservedApp{"svc-1", "rev-1", "sha256:0123", 1, "c", true, "t-1"}}};
  TaskResult r{"t-1", "svc-1", "rev-1", true, "", "sha256:0123", 1, {sample_log("pull")}};
  const std::vector<Message> others = {h,
                                       sample_deploy(false),
                                       RestartTask{"t-1", "svc-1"},
                                       RemoveTask{"t-1", "svc-1"},
                                       Ack{"t-1"},
                                       Progress{"t-1", sample_log("pull")},
                                       r,
                                       Heartbeat{5}};
  for (const auto& m : others) {
    const auto frame = encode(m);
    CHECK(frame.find("s3cr") == std::string::npos);
    CHECK(frame.find("password") == std::string::npos);
  }
}

TEST_CASE("A frame with an unknown type is refused naming the type", "[agentlink][messages]") {
  auto r = decode(R"({"v":1,"type":"format-disk","task_id":"t"})");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kInvalidArgument);
  CHECK(r.error().field == "type");
  CHECK(r.error().message.find("format-disk") != std::string::npos);
}

TEST_CASE("A frame with another protocol version is refused naming the version",
          "[agentlink][messages]") {
  for (const char* frame :
       {R"({"v":2,"type":"ack","task_id":"t"})", R"({"v":"1","type":"ack","task_id":"t"})",
        R"({"type":"ack","task_id":"t"})"}) {
    auto r = decode(frame);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().field == "v");
  }
}

TEST_CASE("A frame with a missing field is refused naming the field", "[agentlink][messages]") {
  auto r = decode(edited(sample_deploy(false), [](json& j) { j.erase("container_port"); }));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().field == "container_port");
  CHECK(r.error().message.find("missing") != std::string::npos);

  auto nested = decode(edited(TaskResult{"t", "s", "r", true, "", "", 0, {sample_log("pull")}},
                              [](json& j) { j["logs"][0].erase("duration_ms"); }));
  REQUIRE_FALSE(nested.ok());
  CHECK(nested.error().field == "logs[0].duration_ms");

  auto no_type = decode(R"({"v":1})");
  REQUIRE_FALSE(no_type.ok());
  CHECK(no_type.error().field == "type");
}

TEST_CASE("A frame with a mistyped field is refused naming the field", "[agentlink][messages]") {
  Hello h{"vm", "z", "1", {ObservedApp{"svc", "", "", 0, "", false, ""}}};
  auto r = decode(edited(h, [](json& j) { j["apps"][0]["healthy"] = "yes"; }));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().field == "apps[0].healthy");
  CHECK(r.error().message.find("boolean") != std::string::npos);

  auto port = decode(edited(sample_deploy(false), [](json& j) { j["container_port"] = 8080.5; }));
  REQUIRE_FALSE(port.ok());
  CHECK(port.error().field == "container_port");

  auto env = decode(edited(sample_deploy(false), [](json& j) { j["env"]["A"] = 1; }));
  REQUIRE_FALSE(env.ok());
  CHECK(env.error().field == "env.A");

  auto big = decode(edited(sample_deploy(false), [](json& j) { j["container_port"] = 1LL << 40; }));
  REQUIRE_FALSE(big.ok());
  CHECK(big.error().field == "container_port");

  auto pw = decode(edited(sample_deploy(true), [](json& j) { j["auth"]["password"] = 12; }));
  REQUIRE_FALSE(pw.ok());
  CHECK(pw.error().field == "auth.password");
}

TEST_CASE("A frame that is not a JSON object is refused", "[agentlink][messages]") {
  CHECK_FALSE(decode("not json").ok());
  CHECK_FALSE(decode("[1,2]").ok());
  CHECK_FALSE(decode("").ok());
}

TEST_CASE("A frame over 1 MiB is refused before it is parsed", "[agentlink][messages]") {
  Hello h{"vm", "z", "1", {}};
  std::string frame = encode(h);
  frame.insert(frame.size() - 1, ",\"pad\":\"" + std::string(1024 * 1024, 'x') + "\"");
  auto r = decode(frame);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kPayloadTooLarge);

  // Just under the limit still decodes (unknown fields are ignored within version 1).
  std::string fits = encode(h);
  fits.insert(fits.size() - 1, ",\"pad\":\"" + std::string(1000 * 1000, 'x') + "\"");
  CHECK(decode(fits).ok());
}
