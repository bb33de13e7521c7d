#pragma once
// core::StateStore over Kubernetes objects: the port standalone mode implements with SQLite
// (src/store), implemented here so the same runtime::Reconciler and the same core rules drive
// Kubernetes mode (docs/kubernetes.md, "State model").
//
// Where each record lives:
//   service      the AppService: user-owned fields come from its spec (berth never writes spec);
//                runtime-owned ones (phase, agent, current revision, endpoint, conditions,
//                last error) are written to its status subresource. Service id = metadata.uid,
//                account = namespace.
//   revisions    one ControllerRevision each (revision_format.h); id = the object's name. The
//                desired revision is the highest-numbered one unless a redeploy chose another.
//                Outcome and deploy logs go into its annotations (data is immutable).
//   credential   the Secret `<app>-berth-credential` owned by the AppService, holding only the
//                AES-256-GCM ciphertext bound to (namespace/name, registry host, username).
//   tasks        memory only. A leader that starts derives the one durable intent from the
//                objects: a pending desired revision is a deploy task, whose id is a hash of the
//                app's uid and the revision's name, so every leader sends the same id and the
//                agent applies it once.
//   agents       memory only (the agent link is the source of truth).
//   accounts     none: authentication is the API server's job (kUnauthenticated).
//
// Reads come from memory: the AppService informer feeds observe()/observe_deleted(); an app's
// revisions and credential are read from the server once, the first time the app is used after
// this process started (or after a relist), and kept current by this store's own writes. Only the
// leader writes, so memory is authoritative for what berth owns while it leads.
//
// Threading: every method is safe from any thread; one mutex guards memory and is never held
// across a server request. Writes for one app come from one reconcile at a time (the work
// queue's per-key guarantee), which is what keeps a read-modify-write of one app consistent.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ports.h"
#include "core/progress.h"
#include "crypto/sealer.h"
#include "kube/revision_format.h"
#include "kube/transport.h"
#include "kube/types.h"

namespace berth::kube {

inline constexpr const char* kCleanupFinalizer = "berth.dev/cleanup";
inline constexpr const char* kSkipCleanupAnnotation = "berth.dev/skip-cleanup";
inline constexpr const char* kDeployLogsAnnotation = "berth.dev/deploy-logs";

// "<app>-berth-credential", cut and hashed like revision_name() when too long.
std::string credential_secret_name(std::string_view app_name);
// The Kubernetes phase of a core status: Pending, Progressing, Running, Failed, Deleting.
const char* phase_of(core::ServiceStatus status);
// An RFC 3339 time as the core's milliseconds since the epoch (0 when it does not parse).
core::UnixMillis unix_millis_of(std::string_view rfc3339);
// A spec -> the core's AppConfig (zone and plan separately on the AppService).
core::AppConfig app_config_of(const AppServiceSpec& spec);

// What the store tells the outside world as an Event (the composition root hands it to the
// EventRecorder): regarding the app, Normal or Warning, a CamelCase reason, a sentence.
struct StoreEvent {
  ObjectReference regarding;
  bool warning = false;
  std::string reason;
  std::string action;
  std::string note;
};

struct KubeStateStoreOptions {
  std::string default_zone = "local";
  std::function<core::UnixMillis()> now;
  std::function<void(const StoreEvent&)> on_event;  // may be empty
};

// A spec change berth refused (credentials or spec): shown in status until a later change is
// accepted or the spec returns to the desired revision's.
struct Refusal {
  std::string condition = "CredentialsResolved";  // or "SpecValid"
  std::string reason;                             // PasswordRequired, CredentialRejected, ...
  std::string message;
  std::int64_t generation = 0;  // the metadata.generation refused
  std::string secret_version;   // the referenced Secret's resourceVersion then ("" none)
  core::UnixMillis since = 0;   // set by the store: when this refusal was first shown
};

// What the intake needs to know about an app beyond core::AppService.
struct AppSnapshot {
  AppService object;  // the AppService as the informer last saw it
  core::AppService service;
  std::vector<core::Revision> revisions;       // number ascending
  std::vector<nlohmann::json> revision_specs;  // data.spec of each, same order
  std::optional<core::StoredCredential> credential;
  // The source of the sealed password: the user's Secret (name, key, resourceVersion).
  std::string credential_source_name;
  std::string credential_source_key;
  std::string credential_source_version;
  std::int64_t observed_generation = 0;
  std::optional<Refusal> refusal;
};

class KubeStateStore final : public core::StateStore {
 public:
  KubeStateStore(Transport& transport, KubeStateStoreOptions options);
  ~KubeStateStore() override;

  // The master key, once this process leads (the key Secret is read or created then). Call
  // before any reconcile starts; sealing and unsealing before it are kUnavailable.
  void set_keyring(crypto::Keyring keyring);

  // --- informer feed (the AppService informer's handlers) ---
  void observe(const AppService& app);
  void observe_deleted(const AppService& app);
  // Forget what was loaded from the server for every app (a new term as leader re-reads it).
  void reset_loaded();
  // Reads every app's revisions and sealed credential with one list of each per namespace
  // ("" = all) instead of two requests per app: what a new leader does before it reconciles.
  // An app whose objects do not parse is left to load on its own (and report) later.
  Status preload(const std::vector<std::string>& namespaces);
  // The ids of apps whose spec references Secret namespace/name (a Secret event enqueues them).
  std::vector<std::string> apps_referencing_secret(const std::string& namespace_,
                                                   const std::string& name) const;

  // "namespace", "name" of an app for log lines (empty strings when unknown).
  std::pair<std::string, std::string> name_of(const std::string& id) const;

  // --- for the intake (app_intake.h) ---
  Result<AppSnapshot> snapshot(const std::string& id);
  // Records that the intake looked at `generation` (status.observedGeneration), with or without
  // a refusal, and writes status when that changes it.
  Status set_observed(const std::string& id, std::int64_t generation,
                      std::optional<Refusal> refusal);
  // The source the next kReplace credential write came from (kept with the sealed Secret).
  void set_credential_source(const std::string& id, const std::string& name, const std::string& key,
                             const std::string& version);
  // The spec (JSON, as in the AppService) that the next revision created for `id` records.
  void set_revision_spec(const std::string& id, const nlohmann::json& spec);
  // The user's Secret was read at `version` and its content equals the sealed password.
  void note_secret_seen(const std::string& id, const std::string& version);
  // Unseals the stored password whatever its host and user (to compare it with the user's
  // Secret). kNotFound when none is stored.
  Result<Secret> unseal_stored(const std::string& id);
  // Adds the cleanup finalizer when missing (metadata update, 409 retried).
  Status ensure_finalizer(const std::string& id);
  // Writes status.progress of the app (merge patch of that key only, so it never races the
  // rest of status); nullopt removes it. Blocks on one API request: callers write from
  // kube::ProgressWriter's worker, which throttles and orders the writes.
  Status write_progress(const std::string& id, const std::optional<core::RolloutProgress>& p);
  void emit(const std::string& id, bool warning, const std::string& reason,
            const std::string& note);

  // --- core::StateStore ---
  Result<std::string> authenticate_password(std::string_view account_name,
                                            const Secret& password) override;
  Result<std::string> authenticate_token(const Secret& token) override;
  Result<core::AppService> get_service(std::string_view account_id, std::string_view id) override;
  Result<std::vector<core::AppService>> list_services(std::string_view account_id) override;
  Result<core::AppService> load_service(std::string_view id) override;
  Result<std::vector<std::string>> list_service_ids() override;
  Status create_service(const core::Change& change) override;
  Status apply_change(const core::Change& change, std::int64_t expected_generation) override;
  Status delete_service(std::string_view id) override;
  Result<std::vector<core::Revision>> list_revisions(std::string_view service_id,
                                                     bool include_failed) override;
  Result<core::Revision> get_revision(std::string_view service_id,
                                      std::string_view revision_id) override;
  Result<std::int64_t> next_revision_number(std::string_view service_id) override;
  Status record_outcome(const core::Revision& revision, const core::AppService& service,
                        int keep_succeeded) override;
  Status update_observed(const core::AppService& service) override;
  Result<std::optional<core::StoredCredential>> get_credential(
      std::string_view service_id) override;
  Result<Secret> unseal_password(std::string_view service_id, std::string_view registry_host,
                                 std::string_view username) override;
  Result<std::vector<core::Task>> pending_tasks(std::string_view service_id) override;
  Status update_task(const core::Task& task) override;
  Status upsert_agent(const core::AgentRecord& agent) override;
  Result<std::vector<core::AgentRecord>> list_agents() override;

 private:
  struct Entry;
  struct Loaded;
  using EntryPtr = std::shared_ptr<Entry>;

  Status fill(const AppService& object, const std::vector<nlohmann::json>& revision_items,
              const std::optional<KubeSecret>& secret, Loaded& out);
  void install(Entry& e, Loaded&& loaded);  // mu_ held

  EntryPtr find(std::string_view id) const;
  Result<EntryPtr> loaded(std::string_view id);
  Status load(Entry& e);
  core::AppService service_view(const Entry& e) const;
  nlohmann::json status_of(const Entry& e) const;
  Status write_status(Entry& e);
  Status write_credential(Entry& e, const core::CredentialWrite& w);
  Status create_revision(Entry& e, core::Revision& revision);
  Status commit(const std::string& id, const core::Change& change,
                std::optional<std::int64_t> expected_generation);
  void prune(Entry& e, int keep_succeeded);
  ObjectReference regarding_of(const Entry& e) const;

  std::optional<crypto::Keyring> keyring_;
  KubeStateStoreOptions options_;
  Typed<AppService> apps_;
  Typed<KubeSecret> secrets_;
  ResourceClient revisions_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, EntryPtr> by_uid_;
  std::map<std::string, std::string> uid_by_key_;  // "namespace/name" -> uid
  // "namespace/secret" -> apps whose spec references it.
  std::map<std::string, std::set<std::string>> by_secret_;
  std::map<std::string, core::AgentRecord> agents_;
};

}  // namespace berth::kube
