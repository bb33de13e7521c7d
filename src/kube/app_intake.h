#pragma once
// The intake of Kubernetes mode: turns what the user declared in an AppService (its spec and the
// Secret its registryPasswordSecretRef names) into changes of the core, with the core's rules:
// core::decide_credential decides about the password (SPEC section 4) and core/change.h builds
// the change, exactly as the REST handler does for a POST, PATCH or rollback. It then hands the
// app to the reconciler, which deploys it as in standalone mode (docs/kubernetes.md, "The
// credential rules in Kubernetes terms").
//
// One pass, for one app, on the work-queue worker that owns the app's key:
//   - deleting: once the finalizer is ours, queue the removal on the agent (the reconciler sends
//     it and releases the finalizer when the agent confirms); an annotation or a timeout lets the
//     object go without the agent, with a Warning event;
//   - the spec equals the desired revision's, and the password source is unchanged: nothing new;
//   - the spec equals an earlier succeeded revision's: a rollback to it (its recorded digest);
//   - otherwise a new revision. The user's Secret is read with a GET (never from a cache) when
//     the spec changed or the Secret did; its content is compared with the sealed password to
//     tell "a new password" from "the same Secret". A refused change (PasswordRequired,
//     RegistryHostChanged, CredentialRejected, SecretNotUsable, InvalidSpec) is shown in status
//     and as an event, nothing is deployed, and what runs keeps running.
//
// Only a Secret that opted in (label kRegistryCredentialLabel = "true") is ever used as a
// password: otherwise anyone allowed to create AppServices could have berth send any Secret of
// the namespace to a registry of their choosing. A missing Secret, a missing key and a Secret
// without the label are refused alike (SecretNotUsable, one message), so an AppService cannot
// probe which Secrets or keys exist (docs/credentials.md, "Which Secrets berth may read").
//
// Errors are values: a failed server or registry request comes back as an Error for the work
// queue to retry with backoff.
#include <chrono>
#include <functional>
#include <string>

#include "common/result.h"
#include "core/execution.h"
#include "kube/state_store.h"
#include "kube/transport.h"
#include "kube/types.h"

namespace berth::kube {

// The opt-in a Secret carries to serve as a registry password, and the selector the controller's
// Secret informer lists and watches with (so it caches no other Secret).
inline constexpr const char* kRegistryCredentialLabel = "berth.dev/registry-credential";
inline constexpr const char* kRegistryCredentialSelector = "berth.dev/registry-credential=true";

// What the intake may take from the Secret a registryPasswordSecretRef names.
struct RegistryPasswordRead {
  std::optional<Secret> password;  // set only for an opted-in Secret with a non-empty key
  std::string version;  // the Secret's resourceVersion if it opted in, else "" (as if missing)
  std::string problem;  // when no password: the same text whatever the cause
};

// Turns the GET of Secret `namespace_`/`ref.name` into what the intake may use. A 404, a Secret
// without the opt-in label (value exactly "true") and an absent or empty key give the same
// `problem`; any other error comes back as the Error (the work queue retries).
Result<RegistryPasswordRead> registry_password_from(Result<KubeSecret> read,
                                                    const std::string& namespace_,
                                                    const SecretKeyRef& ref);

struct IntakeOptions {
  std::function<core::UnixMillis()> now;
  std::function<std::string()> new_id;
  // How long an AppService may wait in deletion for its agent before berth lets it go anyway.
  std::chrono::seconds deletion_timeout{300};
  // The resourceVersion of Secret namespace/name as the Secret informer last saw it ("" when it
  // has none): only a trigger to read the Secret again, never a source of its content.
  std::function<std::string(const std::string& namespace_, const std::string& name)> secret_version;
};

enum class IntakeResult {
  kReconcile,  // hand the app to the reconciler
  kDone,       // nothing for the reconciler (the app is gone or released)
};

class AppIntake {
 public:
  // `registry` checks a new password (and resolves the digest) before anything is stored.
  AppIntake(KubeStateStore& store, Transport& transport, core::DigestResolver& registry,
            IntakeOptions options);

  Result<IntakeResult> run(const std::string& id);

 private:
  Result<IntakeResult> run_deleting(const std::string& id, const AppSnapshot& snap);
  Status accept_spec(const std::string& id, const AppSnapshot& snap);
  Status refuse(const std::string& id, const AppSnapshot& snap, std::string condition,
                std::string reason, std::string message, const std::string& secret_version);

  KubeStateStore& store_;
  Typed<KubeSecret> secrets_;
  core::DigestResolver& registry_;
  IntakeOptions options_;
};

}  // namespace berth::kube
