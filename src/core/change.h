#pragma once
// Building an accepted change (ports.h: Change): the new service record, its new revision, what
// happens to the stored credential, and the outbox task. The REST handler (src/api) and the
// Kubernetes intake (src/kube) both call these, so that a PATCH and an edited AppService spec
// produce the same records; neither builds a Change by hand.
//
// Contract:
//   - Pure: no I/O, no clock. Ids come from `ChangeIds::new_id` and every timestamp is
//     `ChangeIds::now`. Thread-safe as long as new_id is.
//   - They decide nothing: whether a change is allowed (validation, the credential rules of
//     credentials.h, a service being deleted, a revision that may be rolled back to) is the
//     caller's to check first. What they build is what the caller commits in one store call
//     (create_service or apply_change with the generation the caller read).
//   - Every builder that queues work marks the service Progressing=Unknown/AwaitingAgent, so a
//     change nobody has picked up yet never looks like progress.
//   - new_id is called once per record built, in this order: revision, task.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/secret.h"
#include "core/credentials.h"
#include "core/ports.h"
#include "core/types.h"

namespace berth::core {

// Where a change's new ids and its timestamp come from (a UUID v4 generator and the caller's
// clock reading, taken once per request so that every record of a change carries the same time).
struct ChangeIds {
  std::function<std::string()> new_id;
  UnixMillis now = 0;
};

// The store-facing form of a credential decision. kReplace moves the request's password out of
// `password` into the write (the Secret left behind is empty; decide_credential returns
// kReplace only for a request that carries one), stamped set_at = now; the other actions leave
// `password` alone. kNone removes a credential that is still stored (the image became public),
// kReuse keeps it.
CredentialWrite credential_write(const CredentialDecision& decision,
                                 const std::optional<StoredCredential>& stored,
                                 std::optional<Secret>& password, UnixMillis now);

// Whether a new password must be checked against the registry before the change is accepted:
// the decision stores a new password and the request carries it. The check itself (resolving
// the image with that login) is I/O and belongs to the caller.
bool needs_credential_check(const CredentialDecision& decision, bool password_supplied);

// Whether a failed credential check refuses the change: only the registry's own refusal of the
// login (401/403, which DigestResolver reports as kPermissionDenied). Any other failure
// (unreachable, slow, 5xx, unknown image) lets the change through; its rollout resolves again
// and reports the failure in status.
bool is_credential_refusal(const Error& check_error);

// Sets the Progressing condition to Unknown/AwaitingAgent, keeping its transition time when it
// already said so.
void mark_awaiting_agent(AppService& service, UnixMillis now);

// A pending revision of `service` (its config and registry_host), numbered `number`.
Revision new_revision(const AppService& service, std::int64_t number, std::string reason,
                      const ChangeIds& ids);

// A queued outbox task. `revision_id` is empty for kRemove.
Task new_task(const std::string& service_id, const std::string& revision_id, TaskKind kind,
              const ChangeIds& ids);

// A new service. `service` carries id, account_id, name, plan_name, zone, storage, config and
// registry_host; this sets status Pending, generation 1, created_at/updated_at, revision 1
// ("initial deployment") carrying `image_digest` (empty: resolved at rollout), the desired
// deployment id and the deploy task.
Change create_change(AppService service, std::string image_digest, CredentialWrite credential,
                     const ChangeIds& ids);

// A redeploy with new configuration: PATCH, rollback, an edited AppService spec. Revision
// `number` (StateStore::next_revision_number) gets `config`, `registry_host`, `reason` and
// `image_digest` (a rollback's recorded digest, a digest the credential check resolved, or
// empty). The service becomes PendingModification at generation + 1 with that revision desired
// and a deploy task for it.
Change redeploy_change(const AppService& current, const AppConfig& config,
                       const std::string& registry_host, std::string reason,
                       std::string image_digest, std::int64_t number, CredentialWrite credential,
                       const ChangeIds& ids);

// A restart of the serving revision: PendingModification at generation + 1 and a restart task
// for current_deployment_id (the caller refuses a service that has none). No new revision; the
// credential is kept.
Change restart_change(const AppService& current, const ChangeIds& ids);

// The DELETE of a service that was placed on an agent: Deleting at generation + 1 and a remove
// task; the credential is kept until the service is forgotten. (A service never placed has
// nothing to tear down; its caller deletes it outright.)
Change remove_change(const AppService& current, const ChangeIds& ids);

}  // namespace berth::core
