#pragma once
// Ports: the interfaces the core's callers (the REST API, the runtime) use to reach state, and
// that adapters implement (src/store for SQLite in standalone mode; src/kube later for
// Kubernetes objects). Adapters never depend on each other: the composition root hands a
// concrete StateStore to the API and the runtime.
//
// Contract for every method:
//   - errors are values: kNotFound (missing, or owned by another account), kConflict (name
//     taken, or the expected generation moved), kUnavailable (busy/locked: retry),
//     kResourceExhausted (disk full), kPermissionDenied (read-only database), kDataLoss
//     (a sealed credential that cannot be opened);
//   - each mutating call is one transaction: it happens entirely or not at all;
//   - thread-safe: callers may call from several threads.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/secret.h"
#include "core/types.h"

namespace berth::core {

enum class TaskKind { kDeploy, kRestart, kRemove };
const char* to_string(TaskKind k);  // "deploy" | "restart" | "remove"
std::optional<TaskKind> parse_task_kind(std::string_view text);

enum class TaskState { kQueued, kSent, kDone };
const char* to_string(TaskState s);  // "queued" | "sent" | "done"
std::optional<TaskState> parse_task_state(std::string_view text);

// An entry of the task outbox: the durable intent "do KIND for SERVICE at REVISION". The API
// writes it in the same transaction as the change that caused it; the runtime assigns an
// agent, delivers it at least once, and marks it done when the agent reports the result. It
// never holds the password: the deploy message is built at send time from the sealed store.
struct Task {
  std::string id;  // UUID v4; the agent applies each id once
  std::string service_id;
  std::string revision_id;  // empty for remove
  TaskKind kind = TaskKind::kDeploy;
  TaskState state = TaskState::kQueued;
  std::string agent;  // empty until the runtime assigns one
  int attempts = 0;
  UnixMillis created_at = 0;
  UnixMillis updated_at = 0;
};

// What a change does to the stored credential.
struct CredentialWrite {
  enum class Action { kKeep, kReplace, kRemove };
  Action action = Action::kKeep;
  // kReplace only:
  std::string registry_host;
  std::string username;
  Secret password;
  UnixMillis set_at = 0;
  std::optional<UnixMillis> expires_at;
};

// One accepted change, committed atomically: the new service record, its new revision (when
// the change creates one), what happens to the credential, and the outbox task.
struct Change {
  AppService service;                // full new record (status, generation, updated_at set)
  std::optional<Revision> revision;  // the new pending revision, if any
  CredentialWrite credential;
  std::optional<Task> task;
};

// What a user change (PATCH, rollback) is built from: the account's service, its stored
// credential and the number the change's new revision takes (StateStore::read_for_change).
struct ChangeBasis {
  AppService service;
  std::optional<StoredCredential> credential;
  std::int64_t next_revision_number = 1;
};

struct AgentRecord {
  std::string name;
  std::string zone;
  std::string cert_fingerprint;  // SHA-256 of the agent's certificate (DER), hex
  UnixMillis last_seen = 0;
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // --- accounts and authentication ---------------------------------------------------------
  // Returns the account id. kUnauthenticated for an unknown name or wrong password (same
  // error, same work either way).
  virtual Result<std::string> authenticate_password(std::string_view account_name,
                                                    const Secret& password) = 0;
  virtual Result<std::string> authenticate_token(const Secret& token) = 0;

  // --- app services ------------------------------------------------------------------------
  // Who owns which field. A write carries a whole AppService that its caller read earlier, so
  // each kind of write stores only the fields its caller owns; the rest of the record it
  // carries may be stale and is ignored:
  //   - user-owned (the API's apply_change: PATCH, rollback, restart, DELETE): name, plan_name,
  //     zone, storage_size_gb, storage_tier, config, registry_host, desired_deployment_id,
  //     generation, status, updated_at;
  //   - runtime-owned (update_observed, record_outcome): agent, current_deployment_id, url,
  //     conditions, last_error, status, updated_at;
  //   - id, account_id and created_at never change after create_service.
  // status is written by both, with one exception: once a DELETE has set Deleting, only the
  // removal ends it; a runtime write that raced the DELETE leaves Deleting in place.
  //
  // Scoped to an account: another account's id is kNotFound.
  virtual Result<AppService> get_service(std::string_view account_id, std::string_view id) = 0;
  virtual Result<std::vector<AppService>> list_services(std::string_view account_id) = 0;
  // Unscoped, for the runtime.
  virtual Result<AppService> load_service(std::string_view id) = 0;
  virtual Result<std::vector<std::string>> list_service_ids() = 0;

  // Inserts change.service (kConflict when the account already has that name) with its
  // revision, credential and task.
  virtual Status create_service(const Change& change) = 0;
  // Writes the user-owned fields of change.service iff the stored generation equals
  // `expected_generation` (kConflict otherwise; a runtime write never moves the generation, so
  // it never makes a user write fail), and applies the rest of the change. Never writes the
  // runtime-owned fields: a deploy result or placement that landed after change.service was
  // read survives.
  virtual Status apply_change(const Change& change, std::int64_t expected_generation) = 0;
  // Forgets the service, its revisions, credential and tasks.
  virtual Status delete_service(std::string_view id) = 0;

  // --- revisions ---------------------------------------------------------------------------
  // Newest first. Only succeeded ones unless include_failed (pending ones are always listed
  // when include_failed).
  virtual Result<std::vector<Revision>> list_revisions(std::string_view service_id,
                                                       bool include_failed) = 0;
  virtual Result<Revision> get_revision(std::string_view service_id,
                                        std::string_view revision_id) = 0;
  virtual Result<std::int64_t> next_revision_number(std::string_view service_id) = 0;
  // get_service, get_credential and next_revision_number of one service in one trip to the
  // store (a store may answer them under one lock). Scoped to the account like get_service.
  // The number stays right until the change is written: every write that adds a revision also
  // moves the generation, so apply_change's generation check refuses a change built on a
  // number that was taken meanwhile.
  virtual Result<ChangeBasis> read_for_change(std::string_view account_id, std::string_view id) {
    auto service = get_service(account_id, id);
    if (!service.ok()) return service.take_error();
    auto credential = get_credential(id);
    if (!credential.ok()) return credential.take_error();
    auto number = next_revision_number(id);
    if (!number.ok()) return number.take_error();
    return ChangeBasis{std::move(service).value(), std::move(credential).value(), *number};
  }
  // Records a rollout outcome (state, digest, logs, finished_at) together with the
  // runtime-owned fields of `service`, in one transaction; never the user-owned ones, so an
  // outcome read before a PATCH cannot undo it, and never status out of Deleting. Prunes
  // history beyond `keep_succeeded`, counted separately for succeeded revisions and for those
  // that finished without serving (failed, superseded); never a pending revision, the current
  // or desired one, or one an unfinished task refers to. keep_succeeded < 1 prunes nothing.
  virtual Status record_outcome(const Revision& revision, const AppService& service,
                                int keep_succeeded) = 0;

  // Writes only the runtime-owned fields (status, url, current_deployment_id, agent,
  // conditions, last_error, updated_at), without a generation check, so that a status update
  // never undoes or blocks a concurrent user change; a service that is Deleting stays Deleting
  // (the other fields are still written). kNotFound when the service is gone.
  virtual Status update_observed(const AppService& service) = 0;

  // --- credentials -------------------------------------------------------------------------
  virtual Result<std::optional<StoredCredential>> get_credential(std::string_view service_id) = 0;
  // Unseals the stored password for the credential the caller checked: the stored credential
  // must be for exactly `registry_host` and `username`, otherwise kFailedPrecondition and
  // nothing is unsealed (a PATCH may have replaced the credential for another registry since
  // the plan was made; its password must never reach this registry). kNotFound when there is
  // none, kDataLoss when it cannot be opened.
  virtual Result<Secret> unseal_password(std::string_view service_id,
                                         std::string_view registry_host,
                                         std::string_view username) = 0;

  // --- task outbox -------------------------------------------------------------------------
  virtual Result<std::vector<Task>> pending_tasks(std::string_view service_id) = 0;
  // Writes the task's state, agent, attempts and updated_at. A task that is already done is
  // never changed again (a result may complete a task before the dispatcher marks it sent):
  // kFailedPrecondition, and nothing is written. kNotFound when the task does not exist.
  // Finished tasks are history: the store keeps the newest few per service and forgets older
  // ones, so a write for a long-finished task may be kNotFound rather than kFailedPrecondition.
  virtual Status update_task(const Task& task) = 0;

  // --- agents ------------------------------------------------------------------------------
  virtual Status upsert_agent(const AgentRecord& agent) = 0;
  virtual Result<std::vector<AgentRecord>> list_agents() = 0;
};

}  // namespace berth::core
