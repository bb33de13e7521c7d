#include "core/credentials.h"

#include "core/image_ref.h"

namespace berth::core {

namespace {

// Messages never repeat a submitted or stored value (usernames, hosts): a mistaken paste can be
// a secret, and the caller can read the stored ones with a GET.
Error invalid(std::string field, std::string_view what) {
  return validation_error(std::move(field), what);
}

}  // namespace

const char* to_string(CredentialAction a) {
  switch (a) {
    case CredentialAction::kNone:
      return "none";
    case CredentialAction::kReuse:
      return "reuse";
    case CredentialAction::kReplace:
      return "replace";
    case CredentialAction::kRemove:
      return "remove";
  }
  return "none";
}

CredentialRequest credential_request_for_create(const CreateRequest& request) {
  CredentialRequest r;
  r.operation = CredentialOperation::kCreate;
  r.image_ref = request.config.image_ref;
  r.username_intent = request.config.registry_username.empty() ? AppConfigPatch::Username::kRemove
                                                               : AppConfigPatch::Username::kSet;
  r.username = request.config.registry_username;
  r.password_supplied = request.registry_password.has_value();
  return r;
}

CredentialRequest credential_request_for_patch(const AppConfig& next, const AppConfigPatch& patch) {
  CredentialRequest r;
  r.operation = CredentialOperation::kPatch;
  r.image_ref = next.image_ref;
  r.username_intent = patch.username;
  r.username = patch.username == AppConfigPatch::Username::kSet ? patch.registry_username : "";
  r.password_supplied = patch.registry_password.has_value();
  return r;
}

CredentialRequest credential_request_for_rollback(const Revision& target,
                                                  const RollbackRequest& request) {
  CredentialRequest r;
  r.operation = CredentialOperation::kRollback;
  r.image_ref = target.config.image_ref;
  // The target revision's username is what the rollback asks for; a revision without one was a
  // public image, so rolling back to it drops the credential.
  r.username_intent = target.config.registry_username.empty() ? AppConfigPatch::Username::kRemove
                                                              : AppConfigPatch::Username::kSet;
  r.username = target.config.registry_username;
  r.password_supplied = request.registry_password.has_value();
  return r;
}

CredentialRequest credential_request_for_restart(const AppConfig& current) {
  CredentialRequest r;
  r.operation = CredentialOperation::kRestart;
  r.image_ref = current.image_ref;
  r.username_intent = AppConfigPatch::Username::kAbsent;
  return r;
}

Result<CredentialDecision> decide_credential(const std::optional<StoredCredential>& stored,
                                             const CredentialRequest& request, UnixMillis now) {
  const bool rollback = request.operation == CredentialOperation::kRollback;
  const bool in_body = request.operation == CredentialOperation::kCreate ||
                       request.operation == CredentialOperation::kPatch;
  const std::string password_field = in_body ? "app_config.registry_password" : "registry_password";
  const std::string username_field = in_body ? "app_config.registry_username" : "registry_username";

  auto ref = parse_image_ref(request.image_ref, "app_config.image_ref");
  if (!ref) return ref.take_error();
  const std::string& host = ref->registry_host;

  // A create never inherits anything, whatever the caller passes as `stored`.
  const std::optional<StoredCredential> current =
      request.operation == CredentialOperation::kCreate ? std::nullopt : stored;

  std::string effective;
  bool username_changed = false;
  switch (request.username_intent) {
    case AppConfigPatch::Username::kAbsent:
      effective = current ? current->username : "";
      break;
    case AppConfigPatch::Username::kSet:
      effective = request.username;
      username_changed = !current || current->username != request.username;
      break;
    case AppConfigPatch::Username::kRemove:
      effective.clear();
      username_changed = current.has_value();
      break;
  }

  CredentialDecision d;
  if (effective.empty()) {
    if (request.password_supplied) {
      if (rollback) {
        return invalid(password_field,
                       "cannot be used: the target deployment has no registry_username (it "
                       "pulls a public image)");
      }
      return invalid(username_field, "is required when registry_password is supplied");
    }
    d.action = current ? CredentialAction::kRemove : CredentialAction::kNone;
    return d;
  }

  if (request.password_supplied) {
    d.action = CredentialAction::kReplace;
    d.registry_host = host;
    d.username = effective;
    if (ref->ecr) d.expires_at = now + kEcrTokenLifetimeMs;
    return d;
  }

  if (!current || username_changed) {
    switch (request.operation) {
      case CredentialOperation::kCreate:
        return invalid(password_field, "is required when registry_username is set");
      case CredentialOperation::kRollback:
        if (!current) {
          return invalid(password_field,
                         "is required to roll back: the target deployment has a "
                         "registry_username and no credential is stored");
        }
        return invalid(password_field,
                       "is required to roll back: the target deployment's registry_username "
                       "differs from the stored credential's");
      case CredentialOperation::kPatch:
      case CredentialOperation::kRestart:
        break;
    }
    return invalid(password_field, "is required when registry_username changes");
  }

  // Reuse: only for the host the password was given for.
  if (current->registry_host != host) {
    return invalid(password_field,
                   "is required: the stored credential is for another registry host than "
                   "app_config.image_ref's and is never sent elsewhere; supply "
                   "registry_password for the new host (or remove registry_username for a "
                   "public image)");
  }
  if (current->expires_at) {
    // A restart starts the container it already has: nothing is pulled, so an expired token
    // does not stand in its way (a redeploy that needs a pull reports the expiry in status).
    if (*current->expires_at <= now && request.operation == CredentialOperation::kRestart) {
      d.warnings.push_back("the stored ECR token for " + host + " expired at " +
                           format_rfc3339(*current->expires_at) +
                           "; a restart needs no pull, but the next deploy does: refresh it with "
                           "a PATCH that carries registry_password");
    } else if (*current->expires_at <= now) {
      return invalid(password_field, "the stored ECR token expired at " +
                                         format_rfc3339(*current->expires_at) +
                                         "; supply a fresh registry_password with a PATCH");
    } else if (*current->expires_at - now <= kEcrExpiryWarningMs) {
      d.warnings.push_back("the stored ECR token for " + host + " expires at " +
                           format_rfc3339(*current->expires_at) +
                           "; refresh it with a PATCH that carries registry_password");
    }
  }
  d.action = CredentialAction::kReuse;
  d.registry_host = current->registry_host;
  d.username = current->username;
  d.expires_at = current->expires_at;
  return d;
}

}  // namespace berth::core
