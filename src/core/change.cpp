#include "core/change.h"

#include <algorithm>
#include <utility>

#include "core/revision.h"

namespace berth::core {

CredentialWrite credential_write(const CredentialDecision& decision,
                                 const std::optional<StoredCredential>& stored,
                                 std::optional<Secret>& password, UnixMillis now) {
  CredentialWrite w;
  switch (decision.action) {
    case CredentialAction::kReuse:
      w.action = CredentialWrite::Action::kKeep;
      break;
    case CredentialAction::kNone:
      // A public image needs no credential: one that is stored anyway (decide_credential
      // ignores `stored` for a create) goes, rather than outliving the image it was for.
      w.action = stored ? CredentialWrite::Action::kRemove : CredentialWrite::Action::kKeep;
      break;
    case CredentialAction::kRemove:
      w.action = CredentialWrite::Action::kRemove;
      break;
    case CredentialAction::kReplace:
      w.action = CredentialWrite::Action::kReplace;
      w.registry_host = decision.registry_host;
      w.username = decision.username;
      if (password) w.password = std::move(*password);
      w.set_at = now;
      w.expires_at = decision.expires_at;
      break;
  }
  return w;
}

bool needs_credential_check(const CredentialDecision& decision, bool password_supplied) {
  return decision.action == CredentialAction::kReplace && password_supplied;
}

bool is_credential_refusal(const Error& check_error) {
  return check_error.code == ErrorCode::kPermissionDenied;
}

void mark_awaiting_agent(AppService& service, UnixMillis now) {
  Condition c{"Progressing", "Unknown", "AwaitingAgent", "no agent has picked this change up yet",
              now};
  auto it = std::find_if(service.conditions.begin(), service.conditions.end(),
                         [](const Condition& x) { return x.type == "Progressing"; });
  if (it == service.conditions.end()) {
    service.conditions.push_back(std::move(c));
    return;
  }
  // A condition's transition time moves only when its status or reason does.
  if (it->status == c.status && it->reason == c.reason) {
    c.last_transition_time = it->last_transition_time;
  }
  *it = std::move(c);
}

Revision new_revision(const AppService& service, std::int64_t number, std::string reason,
                      const ChangeIds& ids) {
  Revision r;
  r.id = ids.new_id();
  r.service_id = service.id;
  r.number = number;
  r.config = service.config;
  r.registry_host = service.registry_host;
  r.reason = std::move(reason);
  r.state = RevisionState::kPending;
  r.created_at = ids.now;
  return r;
}

Task new_task(const std::string& service_id, const std::string& revision_id, TaskKind kind,
              const ChangeIds& ids) {
  Task t;
  t.id = ids.new_id();
  t.service_id = service_id;
  t.revision_id = revision_id;
  t.kind = kind;
  t.state = TaskState::kQueued;
  t.created_at = ids.now;
  t.updated_at = ids.now;
  return t;
}

namespace {

// The part every redeploy shares: `service` (already carrying its new config) gets a pending
// revision, desires it, and queues its deploy.
Change deploy(AppService service, std::int64_t number, std::string reason, std::string image_digest,
              CredentialWrite credential, const ChangeIds& ids) {
  Change change;
  change.revision = new_revision(service, number, std::move(reason), ids);
  change.revision->image_digest = std::move(image_digest);
  service.desired_deployment_id = change.revision->id;
  mark_awaiting_agent(service, ids.now);
  change.task = new_task(service.id, change.revision->id, TaskKind::kDeploy, ids);
  change.service = std::move(service);
  change.credential = std::move(credential);
  return change;
}

// The part restart and remove share: no new revision, the credential kept, the service moved
// to `status` at generation + 1 with one task.
Change queue_only(const AppService& current, ServiceStatus status, TaskKind kind,
                  const std::string& revision_id, const ChangeIds& ids) {
  Change change;
  change.service = current;
  change.service.status = status;
  change.service.generation = current.generation + 1;
  change.service.updated_at = ids.now;
  mark_awaiting_agent(change.service, ids.now);
  change.credential.action = CredentialWrite::Action::kKeep;
  change.task = new_task(current.id, revision_id, kind, ids);
  return change;
}

}  // namespace

Change create_change(AppService service, std::string image_digest, CredentialWrite credential,
                     const ChangeIds& ids) {
  service.status = ServiceStatus::kPending;
  service.generation = 1;
  service.created_at = ids.now;
  service.updated_at = ids.now;
  return deploy(std::move(service), 1, std::string(kReasonInitial), std::move(image_digest),
                std::move(credential), ids);
}

Change redeploy_change(const AppService& current, const AppConfig& config,
                       const std::string& registry_host, std::string reason,
                       std::string image_digest, std::int64_t number, CredentialWrite credential,
                       const ChangeIds& ids) {
  AppService service = current;
  service.config = config;
  service.registry_host = registry_host;
  service.status = ServiceStatus::kPendingModification;
  service.generation = current.generation + 1;
  service.updated_at = ids.now;
  return deploy(std::move(service), number, std::move(reason), std::move(image_digest),
                std::move(credential), ids);
}

Change restart_change(const AppService& current, const ChangeIds& ids) {
  return queue_only(current, ServiceStatus::kPendingModification, TaskKind::kRestart,
                    current.current_deployment_id, ids);
}

Change remove_change(const AppService& current, const ChangeIds& ids) {
  return queue_only(current, ServiceStatus::kDeleting, TaskKind::kRemove, "", ids);
}

}  // namespace berth::core
