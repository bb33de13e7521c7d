#include "kube/app_intake.h"

#include <algorithm>

#include "common/log.h"
#include "common/pause_point.h"
#include "core/app_service.h"
#include "core/change.h"
#include "core/credentials.h"
#include "core/image_ref.h"
#include "core/revision.h"
#include "kube/credentials.h"

namespace berth::kube {
namespace {

using nlohmann::json;

bool has_finalizer(const AppService& app) {
  const auto& f = app.metadata.finalizers;
  return std::find(f.begin(), f.end(), kCleanupFinalizer) != f.end();
}

}  // namespace

Result<RegistryPasswordRead> registry_password_from(Result<KubeSecret> read,
                                                    const std::string& namespace_,
                                                    const SecretKeyRef& ref) {
  RegistryPasswordRead out;
  if (!read && read.error().code != ErrorCode::kNotFound) return read.error();
  bool opted_in = false;
  if (read) {
    const auto& labels = read->metadata.labels;
    const auto label = labels.find(kRegistryCredentialLabel);
    opted_in = label != labels.end() && label->second == "true";
  }
  if (opted_in) {
    out.version = read->metadata.resource_version;
    auto it = read->data.find(ref.key);
    if (it != read->data.end() && !it->second.empty()) {
      out.password = std::move(it->second);
      return out;
    }
  }
  // One text for "no such Secret", "no such key" and "not opted in": which of them holds is
  // exactly what a user who may create AppServices but not read Secrets must not learn.
  out.problem = "Secret " + namespace_ + "/" + ref.name + " (key \"" + ref.key +
                "\") is not usable as a registry password: berth reads only a Secret labelled " +
                kRegistryCredentialLabel + "=true that holds the key";
  return out;
}

AppIntake::AppIntake(KubeStateStore& store, Transport& transport, core::DigestResolver& registry,
                     IntakeOptions options)
    : store_(store), secrets_(transport), registry_(registry), options_(std::move(options)) {}

Result<IntakeResult> AppIntake::run(const std::string& id) {
  auto snap = store_.snapshot(id);
  if (!snap) {
    // Gone from the cache: the reconciler forgets or reaps what an agent still runs for it.
    if (snap.error().code == ErrorCode::kNotFound) return IntakeResult::kReconcile;
    return snap.error();
  }
  if (!snap->object.metadata.deletion_timestamp.empty()) return run_deleting(id, *snap);
  if (Status st = store_.ensure_finalizer(id); !st.ok()) return st.error();
  if (Status st = accept_spec(id, *snap); !st.ok()) return st.error();
  return IntakeResult::kReconcile;
}

Result<IntakeResult> AppIntake::run_deleting(const std::string& id, const AppSnapshot& snap) {
  const AppService& app = snap.object;
  if (!has_finalizer(app)) return IntakeResult::kDone;  // not ours to hold
  const core::AppService& svc = snap.service;
  const auto skip = app.metadata.annotations.find(kSkipCleanupAnnotation);
  const bool skip_requested = skip != app.metadata.annotations.end() && skip->second == "true";
  const core::UnixMillis since = unix_millis_of(app.metadata.deletion_timestamp);
  const bool timed_out =
      since > 0 &&
      options_.now() - since >=
          std::chrono::duration_cast<std::chrono::milliseconds>(options_.deletion_timeout).count();
  if (!svc.agent.empty() && (skip_requested || timed_out)) {
    const std::string why =
        skip_requested
            ? std::string("the ") + kSkipCleanupAnnotation +
                  " annotation is set: the app is released without removing its container "
                  "from agent " +
                  svc.agent
            : "agent " + svc.agent + " did not confirm the removal within " +
                  std::to_string(options_.deletion_timeout.count()) +
                  " s: the app is released; its container may still run there";
    store_.emit(id, true, "CleanupSkipped", why);
    log::warn("deletion released without the agent",
              {{"namespace", app.metadata.namespace_},
               {"name", app.metadata.name},
               {"agent", svc.agent},
               {"reason", skip_requested ? "annotation" : "timeout"}});
    if (Status st = store_.delete_service(id); !st.ok()) return st.error();
    return IntakeResult::kDone;
  }
  if (svc.status == core::ServiceStatus::kDeleting) return IntakeResult::kReconcile;
  if (svc.agent.empty()) {
    // Never placed: nothing runs anywhere.
    if (Status st = store_.delete_service(id); !st.ok()) return st.error();
    return IntakeResult::kDone;
  }
  core::ChangeIds ids{options_.new_id, options_.now()};
  core::Change change = core::remove_change(svc, ids);
  if (Status st = store_.apply_change(change, svc.generation); !st.ok()) return st.error();
  log::info(
      "app service deletion requested",
      {{"namespace", app.metadata.namespace_}, {"name", app.metadata.name}, {"agent", svc.agent}});
  return IntakeResult::kReconcile;
}

Status AppIntake::refuse(const std::string& id, const AppSnapshot& snap, std::string condition,
                         std::string reason, std::string message,
                         const std::string& secret_version) {
  log::warn("app service change refused", {{"namespace", snap.object.metadata.namespace_},
                                           {"name", snap.object.metadata.name},
                                           {"generation", snap.object.metadata.generation},
                                           {"reason", reason}});
  Refusal r;
  r.condition = std::move(condition);
  r.reason = std::move(reason);
  r.message = std::move(message);
  r.generation = snap.object.metadata.generation;
  r.secret_version = secret_version;
  return store_.set_observed(id, snap.object.metadata.generation, std::move(r));
}

Status AppIntake::accept_spec(const std::string& id, const AppSnapshot& snap) {
  const AppService& app = snap.object;
  const core::AppService& svc = snap.service;
  const std::string& ns = app.metadata.namespace_;
  const std::int64_t generation = app.metadata.generation;
  const json spec = app.raw.value("spec", json::object());
  const bool is_private = !app.spec.registry_username.empty();
  const std::optional<SecretKeyRef>& ref = app.spec.registry_password_secret_ref;
  const std::string secret_version =
      is_private && ref && options_.secret_version ? options_.secret_version(ns, ref->name) : "";

  std::optional<std::size_t> desired;
  for (std::size_t i = 0; i < snap.revisions.size(); ++i)
    if (snap.revisions[i].id == svc.desired_deployment_id) desired = i;
  const bool spec_same = desired && snap.revision_specs[*desired] == spec;
  const bool source_same =
      !is_private || (ref && snap.credential && snap.credential_source_name == ref->name &&
                      snap.credential_source_key == ref->key);
  const bool secret_moved = is_private && secret_version != snap.credential_source_version;
  if (spec_same && source_same && !secret_moved) {
    return store_.set_observed(id, generation, std::nullopt);
  }
  // A refusal stands until the spec or the Secret changes.
  if (snap.refusal && snap.refusal->generation == generation &&
      snap.refusal->secret_version == secret_version) {
    return Status::Ok();
  }

  // --- the spec, by the core's rules ---
  core::AppConfig config = app_config_of(app.spec);
  Status valid = core::validate_app_config(config);
  if (valid.ok()) valid = core::validate_plan_name(app.spec.plan_name);
  if (valid.ok() && !app.spec.zone.empty()) valid = core::validate_zone(app.spec.zone);
  if (!valid.ok()) {
    return refuse(id, snap, "Progressing", "InvalidSpec",
                  "the spec was not accepted: " + valid.error().message, secret_version);
  }

  // An earlier succeeded revision with exactly this spec: a rollback (a Git revert, or
  // `kubectl berth rollback`), which deploys what that revision ran.
  std::optional<std::size_t> target;
  if (!spec_same) {
    for (std::size_t i = snap.revisions.size(); i-- > 0;) {
      if (snap.revision_specs[i] == spec &&
          snap.revisions[i].state == core::RevisionState::kSucceeded) {
        target = i;
        break;
      }
    }
  }
  const core::AppConfig& deploy_config = target ? snap.revisions[*target].config : config;
  auto image = core::parse_image_ref(deploy_config.image_ref);
  if (!image) {
    return refuse(id, snap, "Progressing", "InvalidSpec",
                  "the spec was not accepted: " + image.error().message, secret_version);
  }
  const std::string& host = image->registry_host;

  // --- the password: read the user's Secret now, never from a cache ---
  RegistryPasswordRead secret;
  if (is_private && ref) {
    auto read = registry_password_from(secrets_.get(ns, ref->name), ns, *ref);
    if (!read) return read.error();
    secret = std::move(read).value();
  }
  bool password_supplied = false;
  if (secret.password) {
    auto stored = store_.unseal_stored(id);
    if (stored) {
      password_supplied = !stored->equals(*secret.password);
    } else if (stored.error().code == ErrorCode::kNotFound) {
      password_supplied = true;
    } else {
      return stored.error();
    }
  }
  if (spec_same && source_same && !password_supplied) {
    // Only the Secret's version moved (a label, or the same password written again).
    store_.note_secret_seen(id, secret.version);
    return store_.set_observed(id, generation, std::nullopt);
  }

  core::CredentialRequest request;
  request.operation = snap.revisions.empty() ? core::CredentialOperation::kCreate
                      : target               ? core::CredentialOperation::kRollback
                                             : core::CredentialOperation::kPatch;
  request.image_ref = deploy_config.image_ref;
  request.username_intent = deploy_config.registry_username.empty()
                                ? core::AppConfigPatch::Username::kRemove
                                : core::AppConfigPatch::Username::kSet;
  request.username = deploy_config.registry_username;
  request.password_supplied = password_supplied;
  auto decision = core::decide_credential(snap.credential, request, options_.now());
  if (!decision) {
    if (!secret.problem.empty()) {
      return refuse(id, snap, "CredentialsResolved", "SecretNotUsable",
                    secret.problem + "; berth needs the password for user \"" +
                        deploy_config.registry_username + "\" at " + host +
                        " (nothing was deployed)",
                    secret_version);
    }
    const bool host_changed = snap.credential &&
                              snap.credential->username == deploy_config.registry_username &&
                              snap.credential->registry_host != host;
    if (host_changed) {
      return refuse(id, snap, "CredentialsResolved", "RegistryHostChanged",
                    "the image moved to registry " + host +
                        " and the sealed password is only ever sent to the registry it was "
                        "given for; write the password for " +
                        host + " into Secret " + ns + "/" + ref->name +
                        " (or point registryPasswordSecretRef at one that holds it)",
                    secret_version);
    }
    return refuse(id, snap, "CredentialsResolved", "PasswordRequired",
                  "registryUsername changed to \"" + deploy_config.registry_username +
                      "\" but Secret " + ns + "/" + (ref ? ref->name : std::string("?")) +
                      " still holds the password berth sealed for the previous user; point "
                      "registryPasswordSecretRef at a Secret with the new user's password "
                      "(nothing was deployed; the current revision keeps serving)",
                  secret_version);
  }

  // --- check a new password with the registry before anything is stored ---
  std::string digest = target ? snap.revisions[*target].image_digest : std::string();
  const std::string pull = digest.empty() ? deploy_config.image_ref : image->pinned(digest);
  std::optional<Secret> password =
      decision->action == core::CredentialAction::kReplace ? secret.password : std::nullopt;
  if (password) {
    const core::RegistryLogin login{decision->username, *password};
    auto resolved = registry_.resolve(pull, &login);
    if (resolved) {
      if (digest.empty()) digest = *resolved;
    } else if (resolved.error().code == ErrorCode::kPermissionDenied) {
      return refuse(id, snap, "CredentialsResolved", "CredentialRejected",
                    "the registry at " + host + " refused the password in Secret " + ns + "/" +
                        ref->name + " (key \"" + ref->key + "\") for user \"" + decision->username +
                        "\": " + resolved.error().message + "; nothing was deployed",
                    secret_version);
    } else {
      log::warn("new registry credential could not be checked; change accepted",
                {{"namespace", ns},
                 {"name", app.metadata.name},
                 {"registry", host},
                 {"error", resolved.error().message}});
    }
  } else if (digest.empty()) {
    // Pin the revision's digest at creation when the registry answers now; otherwise the
    // rollout resolves it (and records it in the revision's annotations).
    std::optional<core::RegistryLogin> login;
    if (decision->action == core::CredentialAction::kReuse) {
      auto stored = store_.unseal_stored(id);
      if (stored) login = core::RegistryLogin{decision->username, std::move(stored).value()};
    }
    if (decision->action != core::CredentialAction::kReuse || login) {
      auto resolved = registry_.resolve(deploy_config.image_ref, login ? &*login : nullptr);
      if (resolved) digest = *resolved;
    }
  }

  // --- commit, with the same change the REST API would build ---
  const core::UnixMillis now = options_.now();
  core::ChangeIds ids{options_.new_id, now};
  core::CredentialWrite write = core::credential_write(*decision, snap.credential, password, now);
  if (write.action == core::CredentialWrite::Action::kReplace && ref)
    store_.set_credential_source(id, ref->name, ref->key, secret.version);
  store_.set_revision_spec(id, target ? snap.revision_specs[*target] : spec);
  Status committed;
  std::int64_t number = 1;
  if (snap.revisions.empty()) {
    core::AppService service = svc;
    service.config = config;
    service.registry_host = host;
    core::Change change = core::create_change(service, digest, std::move(write), ids);
    committed = store_.create_service(change);
  } else {
    auto next = store_.next_revision_number(id);
    if (!next) return next.error();
    number = *next;
    const std::string reason = target      ? core::rollback_reason(snap.revisions[*target].id)
                               : spec_same ? std::string("credential update")
                                           : std::string("configuration update");
    core::Change change = core::redeploy_change(svc, deploy_config, host, reason, digest, number,
                                                std::move(write), ids);
    committed = store_.apply_change(change, svc.generation);
  }
  if (!committed.ok()) return committed;
  pause_point("accept");  // committed, generation not yet observed (tests/crash)
  log::info("app service change accepted", {{"namespace", ns},
                                            {"name", app.metadata.name},
                                            {"revision", number},
                                            {"generation", generation},
                                            {"credential", core::to_string(decision->action)}});
  if (secret.password) store_.note_secret_seen(id, secret.version);
  return store_.set_observed(id, generation, std::nullopt);
}

}  // namespace berth::kube
