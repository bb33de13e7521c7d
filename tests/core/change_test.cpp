#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/change.h"

using berth::ErrorCode;
using berth::Secret;
namespace core = berth::core;
using Write = core::CredentialWrite::Action;

namespace {

constexpr core::UnixMillis kNow = 1714564800000;  // 2024-05-01T12:00:00Z
constexpr core::UnixMillis kEarlier = kNow - 60'000;

// Hands out "id-1", "id-2", ... and remembers how many it gave.
struct Ids {
  int issued = 0;
  core::ChangeIds at(core::UnixMillis now) {
    return core::ChangeIds{[this] { return "id-" + std::to_string(++issued); }, now};
  }
};

core::StoredCredential stored_credential() {
  core::StoredCredential c;
  c.registry_host = "ghcr.io";
  c.username = "alice";
  c.set_at = kEarlier;
  return c;
}

core::CredentialDecision decision(core::CredentialAction action) {
  core::CredentialDecision d;
  d.action = action;
  if (action == core::CredentialAction::kReuse || action == core::CredentialAction::kReplace) {
    d.registry_host = "ghcr.io";
    d.username = "alice";
  }
  return d;
}

const core::Condition* find_condition(const core::AppService& s, const std::string& type) {
  for (const auto& c : s.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

void require_awaiting_agent(const core::AppService& s, core::UnixMillis since) {
  const core::Condition* c = find_condition(s, "Progressing");
  REQUIRE(c != nullptr);
  CHECK(c->status == "Unknown");
  CHECK(c->reason == "AwaitingAgent");
  CHECK(c->last_transition_time == since);
}

// What create_change receives from the REST handler or the Kubernetes intake.
core::AppService new_service() {
  core::AppService s;
  s.id = "svc-1";
  s.account_id = "acct-1";
  s.name = "web";
  s.plan_name = "tier-2";
  s.zone = "local";
  s.storage_size_gb = 20;
  s.storage_tier = "ssd";
  s.config.image_ref = "ghcr.io/acme/web:v1";
  s.config.container_port = 8080;
  s.config.registry_username = "alice";
  s.registry_host = "ghcr.io";
  return s;
}

// A service that has been running for a while on an agent.
core::AppService running_service() {
  core::AppService s = new_service();
  s.status = core::ServiceStatus::kRunning;
  s.generation = 4;
  s.created_at = kEarlier - 1000;
  s.updated_at = kEarlier;
  s.agent = "agent-a";
  s.url = "http://127.0.0.1:31000";
  s.current_deployment_id = "rev-3";
  s.desired_deployment_id = "rev-3";
  s.conditions.push_back({"Ready", "True", "RolloutSucceeded", "serving revision 3", kEarlier});
  s.conditions.push_back(
      {"Progressing", "False", "RolloutSucceeded", "revision 3 is serving", kEarlier});
  return s;
}

core::CredentialWrite replace_write(const std::string& password) {
  core::CredentialWrite w;
  w.action = Write::kReplace;
  w.registry_host = "ghcr.io";
  w.username = "alice";
  w.password = Secret(password);
  w.set_at = kNow;
  return w;
}

}  // namespace

TEST_CASE("A reused credential is kept and the request's password stays where it was",
          "[change][credentials]") {
  std::optional<Secret> password;
  auto w = core::credential_write(decision(core::CredentialAction::kReuse), stored_credential(),
                                  password, kNow);
  CHECK(w.action == Write::kKeep);
  CHECK(w.password.empty());
}

TEST_CASE("A public image removes a credential that is still stored, and keeps the absence of one",
          "[change][credentials]") {
  std::optional<Secret> password;
  CHECK(core::credential_write(decision(core::CredentialAction::kNone), stored_credential(),
                               password, kNow)
            .action == Write::kRemove);
  CHECK(
      core::credential_write(decision(core::CredentialAction::kNone), std::nullopt, password, kNow)
          .action == Write::kKeep);
  CHECK(core::credential_write(decision(core::CredentialAction::kRemove), stored_credential(),
                               password, kNow)
            .action == Write::kRemove);
}

TEST_CASE("A replaced credential takes the request's password out of the request",
          "[change][credentials]") {
  std::optional<Secret> password = Secret("s3cret-canary");
  core::CredentialDecision d = decision(core::CredentialAction::kReplace);
  d.registry_host = "registry.example.com";
  d.username = "bob";
  d.expires_at = kNow + core::kEcrTokenLifetimeMs;
  auto w = core::credential_write(d, stored_credential(), password, kNow);
  CHECK(w.action == Write::kReplace);
  CHECK(w.registry_host == "registry.example.com");
  CHECK(w.username == "bob");
  CHECK(w.password.reveal() == "s3cret-canary");
  CHECK(w.set_at == kNow);
  CHECK(w.expires_at == kNow + core::kEcrTokenLifetimeMs);
  // Moved, not copied: the request no longer holds the plaintext.
  REQUIRE(password.has_value());
  CHECK(password->empty());
}

TEST_CASE("Only a new password that the request carries is checked against the registry",
          "[change][credentials]") {
  CHECK(core::needs_credential_check(decision(core::CredentialAction::kReplace), true));
  CHECK_FALSE(core::needs_credential_check(decision(core::CredentialAction::kReplace), false));
  CHECK_FALSE(core::needs_credential_check(decision(core::CredentialAction::kReuse), true));
  CHECK_FALSE(core::needs_credential_check(decision(core::CredentialAction::kReuse), false));
  CHECK_FALSE(core::needs_credential_check(decision(core::CredentialAction::kNone), false));
  CHECK_FALSE(core::needs_credential_check(decision(core::CredentialAction::kRemove), false));
}

TEST_CASE("Only the registry's refusal of the login refuses a change, other check failures do not",
          "[change][credentials]") {
  CHECK(core::is_credential_refusal(berth::Error{ErrorCode::kPermissionDenied, "401"}));
  CHECK_FALSE(core::is_credential_refusal(berth::Error{ErrorCode::kUnavailable, "unreachable"}));
  CHECK_FALSE(core::is_credential_refusal(berth::Error{ErrorCode::kDeadlineExceeded, "slow"}));
  CHECK_FALSE(core::is_credential_refusal(berth::Error{ErrorCode::kNotFound, "no such tag"}));
  CHECK_FALSE(core::is_credential_refusal(berth::Error{ErrorCode::kInternal, "500"}));
}

TEST_CASE("Awaiting an agent adds the Progressing condition, or replaces another one",
          "[change][conditions]") {
  core::AppService s = running_service();
  core::mark_awaiting_agent(s, kNow);
  require_awaiting_agent(s, kNow);
  CHECK(s.conditions.size() == 2);  // replaced in place, not appended
  CHECK(find_condition(s, "Ready")->last_transition_time == kEarlier);  // others untouched

  core::AppService fresh = new_service();
  core::mark_awaiting_agent(fresh, kNow);
  REQUIRE(fresh.conditions.size() == 1);
  require_awaiting_agent(fresh, kNow);
}

TEST_CASE("Awaiting an agent again keeps the condition's transition time", "[change][conditions]") {
  core::AppService s = new_service();
  core::mark_awaiting_agent(s, kEarlier);
  core::mark_awaiting_agent(s, kNow);
  REQUIRE(s.conditions.size() == 1);
  require_awaiting_agent(s, kEarlier);
}

TEST_CASE("A new revision is a pending copy of the service's configuration",
          "[change][revisions]") {
  Ids ids;
  const core::AppService s = running_service();
  core::Revision r = core::new_revision(s, 7, "configuration update", ids.at(kNow));
  CHECK(r.id == "id-1");
  CHECK(r.service_id == "svc-1");
  CHECK(r.number == 7);
  CHECK(r.config == s.config);
  CHECK(r.registry_host == "ghcr.io");
  CHECK(r.reason == "configuration update");
  CHECK(r.state == core::RevisionState::kPending);
  CHECK(r.image_digest.empty());
  CHECK(r.created_at == kNow);
  CHECK(r.finished_at == 0);
}

TEST_CASE("A new task is queued, unassigned and stamped now", "[change][tasks]") {
  Ids ids;
  core::Task t = core::new_task("svc-1", "rev-2", core::TaskKind::kRestart, ids.at(kNow));
  CHECK(t.id == "id-1");
  CHECK(t.service_id == "svc-1");
  CHECK(t.revision_id == "rev-2");
  CHECK(t.kind == core::TaskKind::kRestart);
  CHECK(t.state == core::TaskState::kQueued);
  CHECK(t.agent.empty());
  CHECK(t.attempts == 0);
  CHECK(t.created_at == kNow);
  CHECK(t.updated_at == kNow);
}

TEST_CASE("Creating a service builds revision 1, desires it and queues its deploy",
          "[change][create]") {
  Ids ids;
  core::AppService in = new_service();
  in.status = core::ServiceStatus::kFailed;  // whatever the caller left there is overwritten
  in.generation = 9;
  core::Change c =
      core::create_change(in, "sha256:abc", replace_write("create-canary"), ids.at(kNow));

  CHECK(c.service.id == "svc-1");
  CHECK(c.service.account_id == "acct-1");
  CHECK(c.service.name == "web");
  CHECK(c.service.storage_size_gb == 20);
  CHECK(c.service.status == core::ServiceStatus::kPending);
  CHECK(c.service.generation == 1);
  CHECK(c.service.created_at == kNow);
  CHECK(c.service.updated_at == kNow);
  require_awaiting_agent(c.service, kNow);

  REQUIRE(c.revision.has_value());
  CHECK(c.revision->id == "id-1");
  CHECK(c.revision->number == 1);
  CHECK(c.revision->reason == "initial deployment");
  CHECK(c.revision->image_digest == "sha256:abc");
  CHECK(c.revision->config == in.config);
  CHECK(c.revision->service_id == "svc-1");
  CHECK(c.service.desired_deployment_id == "id-1");
  CHECK(c.service.current_deployment_id.empty());

  REQUIRE(c.task.has_value());
  CHECK(c.task->id == "id-2");
  CHECK(c.task->kind == core::TaskKind::kDeploy);
  CHECK(c.task->service_id == "svc-1");
  CHECK(c.task->revision_id == "id-1");
  CHECK(ids.issued == 2);

  CHECK(c.credential.action == Write::kReplace);
  CHECK(c.credential.password.reveal() == "create-canary");
}

TEST_CASE("A service created without a resolved digest leaves it to the rollout",
          "[change][create]") {
  Ids ids;
  core::Change c = core::create_change(new_service(), "", core::CredentialWrite{}, ids.at(kNow));
  REQUIRE(c.revision.has_value());
  CHECK(c.revision->image_digest.empty());
  CHECK(c.credential.action == Write::kKeep);
}

TEST_CASE(
    "A redeploy bumps the generation, desires the new revision and keeps what the runtime "
    "owns",
    "[change][redeploy]") {
  Ids ids;
  const core::AppService current = running_service();
  core::AppConfig config = current.config;
  config.image_ref = "registry.example.com/acme/web:v2";
  config.env["MODE"] = "blue";
  core::Change c =
      core::redeploy_change(current, config, "registry.example.com", "configuration update",
                            "sha256:def", 4, replace_write("patch-canary"), ids.at(kNow));

  CHECK(c.service.config == config);
  CHECK(c.service.registry_host == "registry.example.com");
  CHECK(c.service.status == core::ServiceStatus::kPendingModification);
  CHECK(c.service.generation == 5);
  CHECK(c.service.updated_at == kNow);
  CHECK(c.service.created_at == current.created_at);
  // The serving revision keeps serving until the new one succeeds.
  CHECK(c.service.current_deployment_id == "rev-3");
  CHECK(c.service.agent == "agent-a");
  CHECK(c.service.url == current.url);
  require_awaiting_agent(c.service, kNow);
  CHECK(find_condition(c.service, "Ready")->status == "True");

  REQUIRE(c.revision.has_value());
  CHECK(c.revision->id == "id-1");
  CHECK(c.revision->number == 4);
  CHECK(c.revision->config == config);
  CHECK(c.revision->registry_host == "registry.example.com");
  CHECK(c.revision->reason == "configuration update");
  CHECK(c.revision->image_digest == "sha256:def");
  CHECK(c.revision->state == core::RevisionState::kPending);
  CHECK(c.service.desired_deployment_id == "id-1");

  REQUIRE(c.task.has_value());
  CHECK(c.task->id == "id-2");
  CHECK(c.task->kind == core::TaskKind::kDeploy);
  CHECK(c.task->revision_id == "id-1");
  CHECK(c.task->created_at == kNow);

  CHECK(c.credential.action == Write::kReplace);
  CHECK(c.credential.password.reveal() == "patch-canary");
}

TEST_CASE("A rollback redeploys the target's configuration with its recorded digest",
          "[change][redeploy]") {
  Ids ids;
  core::AppService current = running_service();
  current.config.image_ref = "ghcr.io/acme/web:v3";
  core::AppConfig target = current.config;
  target.image_ref = "ghcr.io/acme/web:v1";
  core::Change c =
      core::redeploy_change(current, target, "ghcr.io", "rollback to rev-1", "sha256:v1digest", 5,
                            core::CredentialWrite{}, ids.at(kNow));
  CHECK(c.service.config.image_ref == "ghcr.io/acme/web:v1");
  REQUIRE(c.revision.has_value());
  CHECK(c.revision->reason == "rollback to rev-1");
  CHECK(c.revision->image_digest == "sha256:v1digest");
  CHECK(c.credential.action == Write::kKeep);
}

TEST_CASE("A restart queues a restart of the serving revision without a new revision",
          "[change][restart]") {
  Ids ids;
  const core::AppService current = running_service();
  core::Change c = core::restart_change(current, ids.at(kNow));
  CHECK(c.service.status == core::ServiceStatus::kPendingModification);
  CHECK(c.service.generation == 5);
  CHECK(c.service.updated_at == kNow);
  CHECK(c.service.config == current.config);
  CHECK(c.service.desired_deployment_id == "rev-3");
  require_awaiting_agent(c.service, kNow);
  CHECK_FALSE(c.revision.has_value());
  CHECK(c.credential.action == Write::kKeep);
  REQUIRE(c.task.has_value());
  CHECK(c.task->id == "id-1");
  CHECK(c.task->kind == core::TaskKind::kRestart);
  CHECK(c.task->service_id == "svc-1");
  CHECK(c.task->revision_id == "rev-3");
  CHECK(ids.issued == 1);
}

TEST_CASE(
    "Deleting a placed service marks it Deleting and queues its removal, keeping the "
    "credential",
    "[change][remove]") {
  Ids ids;
  const core::AppService current = running_service();
  core::Change c = core::remove_change(current, ids.at(kNow));
  CHECK(c.service.status == core::ServiceStatus::kDeleting);
  CHECK(c.service.generation == 5);
  CHECK(c.service.updated_at == kNow);
  CHECK(c.service.agent == "agent-a");
  require_awaiting_agent(c.service, kNow);
  CHECK_FALSE(c.revision.has_value());
  CHECK(c.credential.action == Write::kKeep);
  REQUIRE(c.task.has_value());
  CHECK(c.task->id == "id-1");
  CHECK(c.task->kind == core::TaskKind::kRemove);
  CHECK(c.task->service_id == "svc-1");
  CHECK(c.task->revision_id.empty());
  CHECK(c.task->state == core::TaskState::kQueued);
}
