// Which Secrets the intake may take a registry password from: only one labelled
// berth.dev/registry-credential=true, and every other case refused with the same text, so an
// AppService cannot tell a missing Secret from a missing key or from a Secret that did not opt in.
#include <catch2/catch.hpp>

#include "common/base64.h"
#include "kube/app_intake.h"

namespace berth::kube {
namespace {

using nlohmann::json;

constexpr const char* kValue = "registry-password-canary-c41e";

Result<KubeSecret> secret_with(const json& labels, const json& data) {
  json object = {{"apiVersion", "v1"},
                 {"kind", "Secret"},
                 {"metadata", {{"name", "pw"}, {"namespace", "apps"}, {"resourceVersion", "42"}}},
                 {"type", "Opaque"},
                 {"data", data}};
  if (!labels.is_null()) object["metadata"]["labels"] = labels;
  return KubeSecret::from_json(object);
}

const json kOptIn = {{kRegistryCredentialLabel, "true"}};
const json kPasswordData = {{"password", base64::encode(kValue)}};

}  // namespace

TEST_CASE("a registry password is read only from a Secret that opted in",
          "[kube][intake][secretref]") {
  const SecretKeyRef ref{"pw", "password"};
  auto usable = registry_password_from(secret_with(kOptIn, kPasswordData), "apps", ref);
  REQUIRE(usable.ok());
  REQUIRE(usable->password);
  CHECK(usable->password->reveal() == kValue);
  CHECK(usable->version == "42");
  CHECK(usable->problem.empty());
}

TEST_CASE(
    "an unlabelled Secret, a missing Secret and a missing key are refused with one message "
    "that holds no value",
    "[kube][intake][secretref]") {
  const SecretKeyRef ref{"pw", "password"};
  auto missing = registry_password_from(
      make_error(ErrorCode::kNotFound, "secrets \"pw\" not found"), "apps", ref);
  REQUIRE(missing.ok());
  REQUIRE_FALSE(missing->password);
  REQUIRE_FALSE(missing->problem.empty());
  CHECK(missing->version.empty());
  CHECK(missing->problem.find(kRegistryCredentialLabel) != std::string::npos);
  CHECK(missing->problem.find("apps/pw") != std::string::npos);

  struct Case {
    const char* what;
    json labels;
    json data;
  };
  const std::vector<Case> cases = {
      {"no labels", json(), kPasswordData},
      {"other labels", json{{"app", "web"}}, kPasswordData},
      {"the label set to something else", json{{kRegistryCredentialLabel, "True"}}, kPasswordData},
      {"the label empty", json{{kRegistryCredentialLabel, ""}}, kPasswordData},
      {"opted in, no such key", kOptIn, json{{"token", base64::encode(kValue)}}},
      {"opted in, the key empty", kOptIn, json{{"password", ""}}},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto read = registry_password_from(secret_with(c.labels, c.data), "apps", ref);
    REQUIRE(read.ok());
    CHECK_FALSE(read->password);
    CHECK(read->problem == missing->problem);
    CHECK(read->problem.find(kValue) == std::string::npos);
    CHECK(read->problem.find(base64::encode(kValue)) == std::string::npos);
  }
  // A Secret that did not opt in is not followed either: its version is not recorded.
  auto unlabelled = registry_password_from(secret_with(json(), kPasswordData), "apps", ref);
  CHECK(unlabelled->version.empty());
}

TEST_CASE("any other error reading the Secret is returned for a retry",
          "[kube][intake][secretref]") {
  auto read = registry_password_from(make_error(ErrorCode::kUnavailable, "503"), "apps",
                                     SecretKeyRef{"pw", "password"});
  REQUIRE_FALSE(read.ok());
  CHECK(read.error().code == ErrorCode::kUnavailable);
}

}  // namespace berth::kube
