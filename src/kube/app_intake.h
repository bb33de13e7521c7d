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
//     RegistryHostChanged, CredentialRejected, SecretNotFound, InvalidSpec) is shown in status and
//     as an event, nothing is deployed, and what runs keeps running.
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

namespace berth::kube {

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
