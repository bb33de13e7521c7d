#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/credentials.h"

using berth::ErrorCode;
using berth::Secret;
using nlohmann::json;
namespace core = berth::core;
using Action = core::CredentialAction;
using Op = core::CredentialOperation;
using U = core::AppConfigPatch::Username;

namespace {

constexpr core::UnixMillis kNow = 1714564800000;  // 2024-05-01T12:00:00Z
constexpr core::UnixMillis kHour = 60LL * 60 * 1000;
const char* kEcrHost = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

core::StoredCredential stored(std::string host, std::string user,
                              std::optional<core::UnixMillis> expires = std::nullopt) {
  core::StoredCredential c;
  c.registry_host = std::move(host);
  c.username = std::move(user);
  c.set_at = kNow - kHour;
  c.expires_at = expires;
  return c;
}

core::CredentialRequest request(Op op, std::string image, U intent, std::string user,
                                bool password) {
  core::CredentialRequest r;
  r.operation = op;
  r.image_ref = std::move(image);
  r.username_intent = intent;
  r.username = std::move(user);
  r.password_supplied = password;
  return r;
}

struct Row {
  const char* name;
  std::optional<core::StoredCredential> stored;
  core::CredentialRequest request;
  // Expected: either an action (with host/user) or an error field.
  Action action;
  const char* host;
  const char* user;
  const char* error_field;  // non-null: expect a 422 on this field
  const char* error_contains;
};

void check_row(const Row& row) {
  CAPTURE(row.name);
  auto d = core::decide_credential(row.stored, row.request, kNow);
  if (row.error_field != nullptr) {
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().code == ErrorCode::kValidation);
    CHECK(d.error().field == row.error_field);
    if (row.error_contains != nullptr) {
      CHECK_THAT(d.error().message, Catch::Contains(row.error_contains));
    }
    return;
  }
  REQUIRE(d.ok());
  CHECK(d->action == row.action);
  CHECK(d->registry_host == row.host);
  CHECK(d->username == row.user);
}

}  // namespace

TEST_CASE("Create takes username and password together or neither", "[credentials]") {
  const std::vector<Row> rows = {
      {"public image", std::nullopt, request(Op::kCreate, "nginx:1.25", U::kRemove, "", false),
       Action::kNone, "", "", nullptr, nullptr},
      {"private image", std::nullopt,
       request(Op::kCreate, "ghcr.io/acme/api:1.0.0", U::kSet, "acme-bot", true), Action::kReplace,
       "ghcr.io", "acme-bot", nullptr, nullptr},
      {"username without password", std::nullopt,
       request(Op::kCreate, "ghcr.io/acme/api:1.0.0", U::kSet, "acme-bot", false), Action::kNone,
       "", "", "app_config.registry_password", "registry_password: is required"},
      {"password without username", std::nullopt,
       request(Op::kCreate, "ghcr.io/acme/api:1.0.0", U::kRemove, "", true), Action::kNone, "", "",
       "app_config.registry_username", "registry_username: is required"},
      {"create ignores a stale stored credential", stored("ghcr.io", "acme-bot"),
       request(Op::kCreate, "ghcr.io/acme/api:1.0.0", U::kSet, "acme-bot", false), Action::kNone,
       "", "", "app_config.registry_password", nullptr},
  };
  for (const auto& row : rows) check_row(row);
}

TEST_CASE("PATCH without a password reuses the stored one when the username is unchanged",
          "[credentials]") {
  const auto ghcr = stored("ghcr.io", "acme-bot");
  const std::vector<Row> rows = {
      {"reference page PATCH: same username, new tag", ghcr,
       request(Op::kPatch, "ghcr.io/acme/api:1.1.0", U::kSet, "acme-bot", false), Action::kReuse,
       "ghcr.io", "acme-bot", nullptr, nullptr},
      {"username absent counts as unchanged", ghcr,
       request(Op::kPatch, "ghcr.io/acme/api:1.1.0", U::kAbsent, "", false), Action::kReuse,
       "ghcr.io", "acme-bot", nullptr, nullptr},
      {"same username with a new password replaces", ghcr,
       request(Op::kPatch, "ghcr.io/acme/api:1.1.0", U::kSet, "acme-bot", true), Action::kReplace,
       "ghcr.io", "acme-bot", nullptr, nullptr},
      {"password alone rotates the token for the stored username", ghcr,
       request(Op::kPatch, "ghcr.io/acme/api:1.1.0", U::kAbsent, "", true), Action::kReplace,
       "ghcr.io", "acme-bot", nullptr, nullptr},
  };
  for (const auto& row : rows) check_row(row);
}

TEST_CASE("PATCH with a changed username requires the password", "[credentials]") {
  const auto ghcr = stored("ghcr.io", "acme-bot");
  const std::vector<Row> rows = {
      {"changed username without password", ghcr,
       request(Op::kPatch, "ghcr.io/acme/api:1.1.0", U::kSet, "other-bot", false), Action::kNone,
       "", "", "app_config.registry_password",
       "registry_password: is required when registry_username changes"},
      {"changed username with password", ghcr,
       request(Op::kPatch, "ghcr.io/acme/api:1.1.0", U::kSet, "other-bot", true), Action::kReplace,
       "ghcr.io", "other-bot", nullptr, nullptr},
      {"first username on a public service without password", std::nullopt,
       request(Op::kPatch, "ghcr.io/acme/api:1.1.0", U::kSet, "acme-bot", false), Action::kNone, "",
       "", "app_config.registry_password",
       "registry_password: is required when registry_username changes"},
      {"first username on a public service with password", std::nullopt,
       request(Op::kPatch, "ghcr.io/acme/api:1.1.0", U::kSet, "acme-bot", true), Action::kReplace,
       "ghcr.io", "acme-bot", nullptr, nullptr},
  };
  for (const auto& row : rows) check_row(row);
}

TEST_CASE("PATCH with an explicit empty or null username removes the credential", "[credentials]") {
  const auto ghcr = stored("ghcr.io", "acme-bot");
  const std::vector<Row> rows = {
      {"remove a stored credential", ghcr, request(Op::kPatch, "nginx:1.25", U::kRemove, "", false),
       Action::kRemove, "", "", nullptr, nullptr},
      {"remove when nothing is stored is a no-op", std::nullopt,
       request(Op::kPatch, "nginx:1.25", U::kRemove, "", false), Action::kNone, "", "", nullptr,
       nullptr},
      {"remove together with a password is contradictory", ghcr,
       request(Op::kPatch, "nginx:1.25", U::kRemove, "", true), Action::kNone, "", "",
       "app_config.registry_username", nullptr},
      {"password without any username", std::nullopt,
       request(Op::kPatch, "ghcr.io/acme/api:1.1.0", U::kAbsent, "", true), Action::kNone, "", "",
       "app_config.registry_username",
       "registry_username: is required when registry_password is supplied"},
      {"public service stays public", std::nullopt,
       request(Op::kPatch, "nginx:1.26", U::kAbsent, "", false), Action::kNone, "", "", nullptr,
       nullptr},
  };
  for (const auto& row : rows) check_row(row);
}

TEST_CASE("The parsed PATCH bodies map to the right credential intents", "[credentials]") {
  const auto ghcr = stored("ghcr.io", "acme-bot");
  core::AppConfig current;
  current.image_ref = "ghcr.io/acme/api:1.0.0";
  current.container_port = 8080;
  current.registry_username = "acme-bot";
  struct Case {
    const char* body;
    Action action;
    const char* error_field;
  };
  const std::vector<Case> cases = {
      {R"({"app_config":{"image_ref":"ghcr.io/acme/api:1.1.0","container_port":8080,"registry_username":"acme-bot"}})",
       Action::kReuse, nullptr},
      {R"({"app_config":{"image_ref":"ghcr.io/acme/api:1.1.0"}})", Action::kReuse, nullptr},
      {R"({"app_config":{"registry_username":"new-bot"}})", Action::kNone,
       "app_config.registry_password"},
      {R"({"app_config":{"registry_username":"new-bot","registry_password":"ghp_new"}})",
       Action::kReplace, nullptr},
      {R"({"app_config":{"image_ref":"nginx","registry_username":null}})", Action::kRemove,
       nullptr},
      {R"({"app_config":{"image_ref":"nginx","registry_username":""}})", Action::kRemove, nullptr},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    auto patch = core::parse_patch_request(json::parse(c.body));
    REQUIRE(patch.ok());
    auto next = core::apply_patch(current, patch->app_config);
    REQUIRE(next.ok());
    auto d = core::decide_credential(
        ghcr, core::credential_request_for_patch(*next, patch->app_config), kNow);
    if (c.error_field != nullptr) {
      REQUIRE_FALSE(d.ok());
      CHECK(d.error().field == c.error_field);
    } else {
      REQUIRE(d.ok());
      CHECK(d->action == c.action);
    }
  }
}

TEST_CASE("A stored credential is never reused for another registry host", "[credentials]") {
  const auto ghcr = stored("ghcr.io", "acme-bot");
  const std::vector<Row> rows = {
      {"image moved to GitLab without password", ghcr,
       request(Op::kPatch, "registry.gitlab.com/acme/api:1", U::kAbsent, "", false), Action::kNone,
       "", "", "app_config.registry_password", "another registry host"},
      {"image moved to Docker Hub, same username", ghcr,
       request(Op::kPatch, "acme/api:1", U::kSet, "acme-bot", false), Action::kNone, "", "",
       "app_config.registry_password", "another registry host"},
      {"image moved to a host with a port", stored("127.0.0.1:5000", "u"),
       request(Op::kPatch, "127.0.0.1:5001/app:1", U::kAbsent, "", false), Action::kNone, "", "",
       "app_config.registry_password", "another registry host"},
      {"image moved with a password binds it to the new host", ghcr,
       request(Op::kPatch, "registry.gitlab.com/acme/api:1", U::kAbsent, "", true),
       Action::kReplace, "registry.gitlab.com", "acme-bot", nullptr, nullptr},
      {"Docker Hub spellings normalise to the same host", stored("docker.io", "acme"),
       request(Op::kPatch, "index.docker.io/acme/api:2", U::kAbsent, "", false), Action::kReuse,
       "docker.io", "acme", nullptr, nullptr},
      {"restart with a mismatched stored host fails", ghcr,
       request(Op::kRestart, "registry.gitlab.com/acme/api:1", U::kAbsent, "", false),
       Action::kNone, "", "", "registry_password", "another registry host"},
  };
  for (const auto& row : rows) check_row(row);

  auto d = core::decide_credential(ghcr, rows[0].request, kNow);
  REQUIRE_FALSE(d.ok());
  CHECK_THAT(d.error().message, Catch::Contains("another registry host"));
  CHECK_THAT(d.error().message, Catch::Contains("supply registry_password"));
  // The hosts are the caller's to read with a GET; the message repeats neither.
  CHECK_THAT(d.error().message, !Catch::Contains("ghcr.io"));
  CHECK_THAT(d.error().message, !Catch::Contains("gitlab"));
}

TEST_CASE("Rollback reuses the stored password only when the target's username matches",
          "[credentials]") {
  const auto ghcr = stored("ghcr.io", "acme-bot");
  auto target = [](std::string image, std::string user) {
    core::Revision r;
    r.id = "rev-1";
    r.config.image_ref = std::move(image);
    r.config.container_port = 8080;
    r.config.registry_username = std::move(user);
    return r;
  };
  auto rollback = [](bool with_password) {
    core::RollbackRequest r;
    r.deployment_id = "rev-1";
    if (with_password) r.registry_password = Secret("ghp_new");
    return r;
  };
  struct Case {
    const char* name;
    std::optional<core::StoredCredential> stored;
    core::Revision target;
    bool password;
    Action action;
    const char* user;
    const char* error_field;
  };
  const std::vector<Case> cases = {
      {"same username: reuse", ghcr, target("ghcr.io/acme/api:1.0.0", "acme-bot"), false,
       Action::kReuse, "acme-bot", nullptr},
      {"same username with password: replace", ghcr, target("ghcr.io/acme/api:1.0.0", "acme-bot"),
       true, Action::kReplace, "acme-bot", nullptr},
      {"other username without password: 422", ghcr, target("ghcr.io/acme/api:1.0.0", "old-bot"),
       false, Action::kNone, "", "registry_password"},
      {"other username with password: replace with the target's username", ghcr,
       target("ghcr.io/acme/api:1.0.0", "old-bot"), true, Action::kReplace, "old-bot", nullptr},
      {"target without username: remove", ghcr, target("nginx:1.25", ""), false, Action::kRemove,
       "", nullptr},
      {"target without username but a password: 422", ghcr, target("nginx:1.25", ""), true,
       Action::kNone, "", "registry_password"},
      {"nothing stored, target private, no password: 422", std::nullopt,
       target("ghcr.io/acme/api:1.0.0", "acme-bot"), false, Action::kNone, "", "registry_password"},
      {"same username but another host: 422", ghcr,
       target("registry.gitlab.com/acme/api:1", "acme-bot"), false, Action::kNone, "",
       "registry_password"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto req = core::credential_request_for_rollback(c.target, rollback(c.password));
    auto d = core::decide_credential(c.stored, req, kNow);
    if (c.error_field != nullptr) {
      REQUIRE_FALSE(d.ok());
      CHECK(d.error().code == ErrorCode::kValidation);
      CHECK(d.error().field == c.error_field);
    } else {
      REQUIRE(d.ok());
      CHECK(d->action == c.action);
      CHECK(d->username == c.user);
    }
  }
}

TEST_CASE("Rollback to a revision with another username says so without naming either",
          "[credentials]") {
  core::Revision target;
  target.config.image_ref = "ghcr.io/acme/api:1.0.0";
  target.config.registry_username = "old-bot";
  auto d = core::decide_credential(
      stored("ghcr.io", "acme-bot"),
      core::credential_request_for_rollback(target, core::RollbackRequest{"rev-1", std::nullopt}),
      kNow);
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().message ==
        "registry_password: is required to roll back: the target deployment's registry_username "
        "differs from the stored credential's");
  CHECK_THAT(d.error().message, !Catch::Contains("old-bot"));
  CHECK_THAT(d.error().message, !Catch::Contains("acme-bot"));
}

TEST_CASE("Restart reuses the stored credential or needs none", "[credentials]") {
  core::AppConfig cfg;
  cfg.image_ref = "ghcr.io/acme/api:1.0.0";
  auto req = core::credential_request_for_restart(cfg);
  auto reuse = core::decide_credential(stored("ghcr.io", "acme-bot"), req, kNow);
  REQUIRE(reuse.ok());
  CHECK(reuse->action == Action::kReuse);
  auto none = core::decide_credential(std::nullopt, req, kNow);
  REQUIRE(none.ok());
  CHECK(none->action == Action::kNone);
}

TEST_CASE("Restart is not blocked by an expired ECR token: it pulls nothing", "[credentials]") {
  core::AppConfig cfg;
  cfg.image_ref = std::string(kEcrHost) + "/image:tag";
  auto req = core::credential_request_for_restart(cfg);
  auto d = core::decide_credential(stored(kEcrHost, "AWS", kNow - kHour), req, kNow);
  REQUIRE(d.ok());
  CHECK(d->action == Action::kReuse);
  REQUIRE(d->warnings.size() == 1);
  CHECK_THAT(d->warnings.front(), Catch::Contains("a restart needs no pull"));
  // A PATCH that would redeploy with the same expired token is still refused.
  auto patch =
      core::decide_credential(stored(kEcrHost, "AWS", kNow - kHour),
                              request(Op::kPatch, cfg.image_ref, U::kAbsent, "", false), kNow);
  CHECK_FALSE(patch.ok());
}

TEST_CASE("An ECR password is stored with a 12 hour expiry", "[credentials]") {
  const std::string image = std::string(kEcrHost) + "/image:tag";
  auto d = core::decide_credential(std::nullopt,
                                   request(Op::kCreate, image, U::kSet, "AKIAEXAMPLE", true), kNow);
  REQUIRE(d.ok());
  CHECK(d->action == Action::kReplace);
  CHECK(d->registry_host == kEcrHost);
  CHECK(d->expires_at == std::optional<core::UnixMillis>(kNow + 12 * kHour));

  auto ghcr = core::decide_credential(
      std::nullopt, request(Op::kCreate, "ghcr.io/acme/api:1", U::kSet, "acme-bot", true), kNow);
  REQUIRE(ghcr.ok());
  CHECK_FALSE(ghcr->expires_at.has_value());
}

TEST_CASE("Reusing an expired ECR token fails fast with a clear 422", "[credentials]") {
  const std::string image = std::string(kEcrHost) + "/image:tag";
  const auto expired = stored(kEcrHost, "AKIAEXAMPLE", kNow - 1);
  const auto at_now = stored(kEcrHost, "AKIAEXAMPLE", kNow);
  // (A restart pulls nothing and is not blocked: see the restart case above.)
  for (Op op : {Op::kPatch}) {
    for (const auto& cred : {expired, at_now}) {
      auto d = core::decide_credential(cred, request(op, image, U::kAbsent, "", false), kNow);
      REQUIRE_FALSE(d.ok());
      CHECK(d.error().code == ErrorCode::kValidation);
      CHECK_THAT(d.error().message, Catch::Contains("expired"));
      CHECK_THAT(d.error().message, Catch::Contains("registry_password"));
    }
  }
  core::Revision target;
  target.config.image_ref = image;
  target.config.registry_username = "AKIAEXAMPLE";
  auto rb = core::decide_credential(
      expired,
      core::credential_request_for_rollback(target, core::RollbackRequest{"r", std::nullopt}),
      kNow);
  REQUIRE_FALSE(rb.ok());
  CHECK(rb.error().field == "registry_password");

  // A PATCH that carries a fresh token refreshes it instead.
  auto fresh =
      core::decide_credential(expired, request(Op::kPatch, image, U::kAbsent, "", true), kNow);
  REQUIRE(fresh.ok());
  CHECK(fresh->action == Action::kReplace);
  CHECK(fresh->expires_at == std::optional<core::UnixMillis>(kNow + 12 * kHour));
}

TEST_CASE("Reusing an ECR token in its last hour warns", "[credentials]") {
  const std::string image = std::string(kEcrHost) + "/image:tag";
  auto soon = core::decide_credential(stored(kEcrHost, "AKIA", kNow + kHour),
                                      request(Op::kRestart, image, U::kAbsent, "", false), kNow);
  REQUIRE(soon.ok());
  CHECK(soon->action == Action::kReuse);
  REQUIRE(soon->warnings.size() == 1);
  CHECK_THAT(soon->warnings[0], Catch::Contains("expires"));

  auto later = core::decide_credential(stored(kEcrHost, "AKIA", kNow + kHour + 1),
                                       request(Op::kRestart, image, U::kAbsent, "", false), kNow);
  REQUIRE(later.ok());
  CHECK(later->warnings.empty());
  CHECK(later->expires_at == std::optional<core::UnixMillis>(kNow + kHour + 1));
}

TEST_CASE("The reference page's ghcr.io acme-bot flow", "[credentials]") {
  // Create with username and token.
  auto create = core::parse_create_request(json::parse(R"({
    "name": "my-api", "plan_name": "tier-2", "zone": "se-sto1",
    "app_config": {"image_ref": "ghcr.io/acme/api:1.0.0", "container_port": 8080,
                   "registry_username": "acme-bot", "registry_password": "ghp_XXXXXXXXXXXXXXXXXX"}
  })"));
  REQUIRE(create.ok());
  REQUIRE(core::validate_create(*create).ok());
  auto first =
      core::decide_credential(std::nullopt, core::credential_request_for_create(*create), kNow);
  REQUIRE(first.ok());
  CHECK(first->action == Action::kReplace);
  CHECK(first->registry_host == "ghcr.io");
  CHECK(first->username == "acme-bot");

  core::StoredCredential cred{first->registry_host, first->username, kNow, first->expires_at};

  // PATCH to 1.1.0 without the password reuses it.
  auto patch = core::parse_patch_request(json::parse(R"({
    "app_config": {"image_ref": "ghcr.io/acme/api:1.1.0", "container_port": 8080,
                   "registry_username": "acme-bot"}
  })"));
  REQUIRE(patch.ok());
  auto next = core::apply_patch(create->config, patch->app_config);
  REQUIRE(next.ok());
  auto second = core::decide_credential(
      cred, core::credential_request_for_patch(*next, patch->app_config), kNow + 1000);
  REQUIRE(second.ok());
  CHECK(second->action == Action::kReuse);

  // Rollback to revision 1 (same username) reuses it too.
  core::Revision rev1;
  rev1.id = "rev-1";
  rev1.config = create->config;
  auto third = core::decide_credential(
      cred, core::credential_request_for_rollback(rev1, core::RollbackRequest{"rev-1", {}}),
      kNow + 2000);
  REQUIRE(third.ok());
  CHECK(third->action == Action::kReuse);
  CHECK(third->registry_host == "ghcr.io");
}

TEST_CASE("Credential actions have stable names", "[credentials]") {
  CHECK(std::string(core::to_string(Action::kNone)) == "none");
  CHECK(std::string(core::to_string(Action::kReuse)) == "reuse");
  CHECK(std::string(core::to_string(Action::kReplace)) == "replace");
  CHECK(std::string(core::to_string(Action::kRemove)) == "remove");
}
