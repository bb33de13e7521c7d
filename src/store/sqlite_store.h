#pragma once
// SqliteStore: berth's standalone state in one SQLite database, DATA_DIR/berth.db (+ -wal,
// -shm), with registry passwords sealed under the master key DATA_DIR/master.key
// (docs/store.md has the schema, the durability settings and the key handling).
//
// Contract:
//   - Durability: every mutating call is one BEGIN IMMEDIATE transaction committed with
//     synchronous=FULL in WAL mode; when it returns ok the change survives a power cut or
//     kill -9. A failed call changed nothing.
//   - Secrets: a registry password enters the database only sealed (AES-256-GCM, associated
//     data = service id, registry host, username); account passwords only as scrypt hashes,
//     API token secrets only as SHA-256 (256 random bits need no slow hash). secure_delete is on,
//     so overwritten rows do not linger in free pages.
//   - Errors (never exceptions): busy/locked -> kUnavailable, disk full -> kResourceExhausted,
//     read-only or unopenable file -> kPermissionDenied, corrupt file or unopenable ciphertext
//     -> kDataLoss, a taken name -> kConflict, a missing row -> kNotFound.
//   - Threading: one connection guarded by a mutex; every method may be called from any
//     thread. Password/token hashing runs outside the lock. Writes that arrive while a commit
//     is in progress are committed together in one transaction (group commit), each in its
//     own savepoint: one write's error undoes only that write, and each returns only once the
//     commit carrying it is durable.
//   - Statements are prepared once per connection and reused (a bounded cache).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/secret.h"
#include "core/ports.h"

namespace berth::store {

struct StoreOptions {
  std::filesystem::path key_file;  // empty: DATA_DIR/master.key
  int busy_timeout_ms = 5000;
  // "Now" where the store needs it (token last_used_at, account created_at); empty: the
  // system clock in Unix milliseconds.
  std::function<core::UnixMillis()> clock;
  // Opens the database and key file without writing either (inspection; tests use it to
  // reach SQLITE_READONLY). Writes fail with kPermissionDenied; a database that needs a
  // migration cannot be opened read-only (kFailedPrecondition).
  bool read_only = false;
  // A cap on the database size in pages (0: none). Tests use it to simulate a full disk.
  std::int64_t max_page_count = 0;
  // Finished (done) tasks kept per service; older ones are deleted when a task finishes.
  // < 1 keeps every one.
  int keep_done_tasks = 10;
};

// Counters since open (stats()); cheap to read, no I/O, no lock held by a write.
struct StoreStats {
  std::int64_t statements_prepared = 0;  // SQL compiled: first uses and cache misses
  std::int64_t statements_reused = 0;    // statements taken from the cache
  std::int64_t commits = 0;              // write transactions committed
  std::int64_t writes_committed = 0;     // mutating calls those commits carried
  std::int64_t largest_batch = 0;        // the most writes one commit carried
  std::int64_t writes_waiting = 0;       // writes queued now for the next group commit
};

struct KeyRotation {
  std::string old_key_id;
  std::string new_key_id;
  int resealed = 0;  // credentials sealed again under the new key
};

class SqliteStore final : public core::StateStore {
 public:
  // Creates DATA_DIR (0700), the key file (0600) and the database (0600) when missing, applies
  // pending migrations, and completes a master-key rotation that a crash interrupted.
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& data_dir,
                                                   StoreOptions options = {});
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // --- core::StateStore -------------------------------------------------------------------
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
  Result<core::ChangeBasis> read_for_change(std::string_view account_id,
                                            std::string_view id) override;
  // apply_change writes only the user-owned columns (name, plan_name, zone, storage_size_gb,
  // storage_tier, status, the config columns, registry_host, desired_deployment_id,
  // generation, updated_at); update_observed and record_outcome only the runtime-owned ones
  // (agent, current_deployment_id, url, conditions, last_error, status, updated_at), and a
  // stored status of Deleting is kept (the CASE in write_observed). So a record read before
  // the other kind of write commits can never put back what that write changed.
  //
  // record_outcome keeps the newest `keep_succeeded` succeeded revisions and, separately, the
  // newest `keep_succeeded` that finished without serving (failed, superseded); pending
  // revisions, the current and desired ones and those an unfinished task refers to are never
  // pruned. keep_succeeded < 1 keeps every revision.
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

  // --- administration (CLI) ---------------------------------------------------------------
  // Creates an account; returns its id. kConflict when the name exists, kValidation for an
  // empty name or password.
  Result<std::string> add_account(std::string_view name, const Secret& password);
  // Issues an API token "berth_<id>_<secret>" for the account (kNotFound when unknown). The
  // full token is returned once; only the SHA-256 of <secret> is stored. A token stored by an
  // older berth as scrypt is refused by authenticate_token with a message saying to reissue.
  Result<Secret> create_token(std::string_view account_name, std::string_view label);
  // Generates a new master key and re-seals every credential under it (one transaction),
  // then retires the old key. A crash at any point is completed by the next open().
  Result<KeyRotation> rotate_master_key();
  std::string current_key_id() const;
  // Moves the WAL into the database file and truncates the WAL (backups, tests).
  Status checkpoint();
  int schema_version() const;
  // Why the database cannot be written, as the last write found it (the disk is full, the file
  // is read-only), until a write commits again; nullopt while writes succeed. Cheap (no I/O):
  // readiness checks call it on every /readyz.
  std::optional<std::string> write_blocked() const;
  StoreStats stats() const;
  // Called by the thread that commits a group of writes, before it begins the transaction,
  // with the number of writes in the group. For tests (to hold a commit while other writes
  // queue behind it); set before the store is shared, never while writes run.
  void set_write_batch_hook(std::function<void(std::size_t)> hook);
  // A real write that changes nothing (the header's user_version set to its own value, one
  // committed transaction): while write_blocked() is set and nothing else writes (an idle
  // controller), this is what notices that space came back, and clears it when it commits.
  Status probe_write();

 private:
  struct Impl;
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::store
