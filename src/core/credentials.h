#pragma once
// The write-only registry password rules (SPEC section 4): given the stored credential and a
// request, decide whether the stored password is reused, replaced, removed or not needed, or
// refuse the request with a 422 before anything is deployed.
//
// Contract:
//   - Pure: `now` is a parameter, no I/O. Thread-safe.
//   - Never sees a password: callers say only whether the request carries one. The decision
//     tells the caller what to write (CredentialWrite in ports.h); sealing is the store's job.
//   - Errors are kValidation with `field` set to the password or username field of the request
//     ("app_config.registry_password", "app_config.registry_username" for create and PATCH,
//     "registry_password" for a rollback body).
//   - Host binding: a stored password is only ever reused for the registry host it was stored
//     for. ECR tokens (image_ref host recognised as ECR) expire 12 hours after they were set.
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "core/app_service.h"
#include "core/types.h"

namespace berth::core {

inline constexpr UnixMillis kEcrTokenLifetimeMs = 12LL * 60 * 60 * 1000;
inline constexpr UnixMillis kEcrExpiryWarningMs = 60LL * 60 * 1000;

enum class CredentialAction {
  kNone,     // no credential before or after: public image
  kReuse,    // keep the stored password (and its host/username)
  kReplace,  // store the request's password for (registry_host, username)
  kRemove,   // forget the stored credential; the image is pulled anonymously
};
const char* to_string(CredentialAction a);  // "none" | "reuse" | "replace" | "remove"

struct CredentialDecision {
  CredentialAction action = CredentialAction::kNone;
  // kReuse / kReplace: where the credential is (to be) bound and for whom.
  std::string registry_host;
  std::string username;
  // kReplace: set_at + 12h for ECR hosts. kReuse: the stored expiry.
  std::optional<UnixMillis> expires_at;
  // Sentences for status conditions, e.g. an ECR token that expires within the hour.
  std::vector<std::string> warnings;
};

enum class CredentialOperation { kCreate, kPatch, kRollback, kRestart };

// What a request asks of the credential, independent of the JSON shape.
struct CredentialRequest {
  CredentialOperation operation = CredentialOperation::kPatch;
  // The image that will be pulled: the new image_ref (create, PATCH result), the target
  // revision's (rollback) or the current one (restart).
  std::string image_ref;
  // The username asked for. kAbsent: keep whatever is stored (PATCH, restart). kSet with a
  // name, or kRemove (no username: public image).
  AppConfigPatch::Username username_intent = AppConfigPatch::Username::kAbsent;
  std::string username;
  bool password_supplied = false;
};

// Builders from the request types, so callers cannot get the intent mapping wrong.
CredentialRequest credential_request_for_create(const CreateRequest& request);
// `next` is apply_patch's result (its image_ref is the image that will be pulled).
CredentialRequest credential_request_for_patch(const AppConfig& next, const AppConfigPatch& patch);
CredentialRequest credential_request_for_rollback(const Revision& target,
                                                  const RollbackRequest& request);
CredentialRequest credential_request_for_restart(const AppConfig& current);

Result<CredentialDecision> decide_credential(const std::optional<StoredCredential>& stored,
                                             const CredentialRequest& request, UnixMillis now);

}  // namespace berth::core
