#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <system_error>

#include <SQLiteCpp/SQLiteCpp.h>

#include "common/log.h"
#include "crypto/password.h"
#include "crypto/sealer.h"
#include "store/codec.h"
#include "store/connection.h"
#include "store/schema.h"

namespace berth::store {

using internal::check;
using internal::Context;
using internal::fail;
using internal::guarded;
using internal::unwrap;

namespace {

namespace fs = std::filesystem;
using core::AppService;
using core::Revision;
using core::Task;

core::UnixMillis system_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

fs::path next_key_path(const fs::path& key_file) {
  fs::path p = key_file;
  p += ".next";
  return p;
}

void bind_blob(SQLite::Statement& st, int index, const std::vector<std::uint8_t>& bytes) {
  st.bind(index, bytes.data(), static_cast<int>(bytes.size()));
}

std::vector<std::uint8_t> column_blob(const SQLite::Column& c) {
  const auto* p = static_cast<const std::uint8_t*>(c.getBlob());
  return std::vector<std::uint8_t>(p, p + c.getBytes());
}

constexpr const char* kServiceColumns =
    "id, account_id, name, plan_name, zone, storage_size_gb, storage_tier, status, image_ref, "
    "container_port, env, custom_domains, registry_username, health, registry_host, url, "
    "current_deployment_id, desired_deployment_id, agent, conditions, last_error, generation, "
    "created_at, updated_at";

AppService read_service(SQLite::Statement& st) {
  AppService s;
  s.id = st.getColumn(0).getString();
  s.account_id = st.getColumn(1).getString();
  s.name = st.getColumn(2).getString();
  s.plan_name = st.getColumn(3).getString();
  s.zone = st.getColumn(4).getString();
  s.storage_size_gb = st.getColumn(5).getInt();
  s.storage_tier = st.getColumn(6).getString();
  auto status = core::parse_service_status(st.getColumn(7).getString());
  if (!status) fail(ErrorCode::kDataLoss, "a stored app service has an unknown status");
  s.status = *status;
  s.config.image_ref = st.getColumn(8).getString();
  s.config.container_port = st.getColumn(9).getInt();
  s.config.env = unwrap(decode_env(st.getColumn(10).getString()));
  s.config.custom_domains = unwrap(decode_strings(st.getColumn(11).getString()));
  s.config.registry_username = st.getColumn(12).getString();
  s.config.health = unwrap(decode_health(st.getColumn(13).getString()));
  s.registry_host = st.getColumn(14).getString();
  s.url = st.getColumn(15).getString();
  s.current_deployment_id = st.getColumn(16).getString();
  s.desired_deployment_id = st.getColumn(17).getString();
  s.agent = st.getColumn(18).getString();
  s.conditions = unwrap(decode_conditions(st.getColumn(19).getString()));
  s.last_error = st.getColumn(20).getString();
  s.generation = st.getColumn(21).getInt64();
  s.created_at = st.getColumn(22).getInt64();
  s.updated_at = st.getColumn(23).getInt64();
  return s;
}

constexpr const char* kRevisionColumns =
    "id, service_id, number, config, registry_host, reason, state, image_digest, deploy_logs, "
    "created_at, finished_at";

Revision read_revision(SQLite::Statement& st) {
  Revision r;
  r.id = st.getColumn(0).getString();
  r.service_id = st.getColumn(1).getString();
  r.number = st.getColumn(2).getInt64();
  r.config = unwrap(decode_config(st.getColumn(3).getString()));
  r.registry_host = st.getColumn(4).getString();
  r.reason = st.getColumn(5).getString();
  auto state = core::parse_revision_state(st.getColumn(6).getString());
  if (!state) fail(ErrorCode::kDataLoss, "a stored revision has an unknown state");
  r.state = *state;
  r.image_digest = st.getColumn(7).getString();
  r.deploy_logs = unwrap(decode_deploy_logs(st.getColumn(8).getString()));
  r.created_at = st.getColumn(9).getInt64();
  r.finished_at = st.getColumn(10).getInt64();
  return r;
}

Task read_task(SQLite::Statement& st) {
  Task t;
  t.id = st.getColumn(0).getString();
  t.service_id = st.getColumn(1).getString();
  t.revision_id = st.getColumn(2).getString();
  auto kind = core::parse_task_kind(st.getColumn(3).getString());
  auto state = core::parse_task_state(st.getColumn(4).getString());
  if (!kind || !state) fail(ErrorCode::kDataLoss, "a stored task has an unknown kind or state");
  t.kind = *kind;
  t.state = *state;
  t.agent = st.getColumn(5).getString();
  t.attempts = st.getColumn(6).getInt();
  t.created_at = st.getColumn(7).getInt64();
  t.updated_at = st.getColumn(8).getInt64();
  return t;
}

// Binds every column of kServiceColumns, in order, starting at index 1.
void bind_service(SQLite::Statement& st, const AppService& s) {
  st.bind(1, s.id);
  st.bind(2, s.account_id);
  st.bind(3, s.name);
  st.bind(4, s.plan_name);
  st.bind(5, s.zone);
  st.bind(6, s.storage_size_gb);
  st.bind(7, s.storage_tier);
  st.bind(8, core::to_string(s.status));
  st.bind(9, s.config.image_ref);
  st.bind(10, s.config.container_port);
  st.bind(11, encode_env(s.config.env));
  st.bind(12, encode_strings(s.config.custom_domains));
  st.bind(13, s.config.registry_username);
  st.bind(14, encode_health(s.config.health));
  st.bind(15, s.registry_host);
  st.bind(16, s.url);
  st.bind(17, s.current_deployment_id);
  st.bind(18, s.desired_deployment_id);
  st.bind(19, s.agent);
  st.bind(20, encode_conditions(s.conditions));
  st.bind(21, s.last_error);
  st.bind(22, static_cast<std::int64_t>(s.generation));
  st.bind(23, static_cast<std::int64_t>(s.created_at));
  st.bind(24, static_cast<std::int64_t>(s.updated_at));
}

}  // namespace

namespace internal {

Error map_sqlite(const SQLite::Exception& e, const Context& ctx) {
  const int extended = e.getExtendedErrorCode();
  if (extended < 0) {
    // SQLiteCpp's own errors (wrong column, misuse): a bug in this file.
    return make_error(ErrorCode::kInternal, std::string("store: ") + e.what());
  }
  switch (extended & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return make_error(ErrorCode::kUnavailable, "the database is busy; retry later");
    case SQLITE_FULL:
      return make_error(ErrorCode::kResourceExhausted, "the database disk is full");
    case SQLITE_READONLY:
      return make_error(ErrorCode::kPermissionDenied, "the database is read-only");
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return make_error(ErrorCode::kPermissionDenied, "the database file cannot be opened");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return make_error(ErrorCode::kDataLoss,
                        "the database file is corrupt or not a berth database");
    case SQLITE_IOERR:
      return make_error(ErrorCode::kUnavailable, "an I/O error occurred on the database");
    case SQLITE_CONSTRAINT:
      if (extended == SQLITE_CONSTRAINT_UNIQUE || extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return make_error(ErrorCode::kConflict, ctx.conflict);
      }
      if (extended == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return make_error(ErrorCode::kFailedPrecondition,
                          "the account or app service it refers to does not exist");
      }
      return make_error(ErrorCode::kInvalidArgument, "the record breaks a database constraint");
    default:
      return make_error(ErrorCode::kInternal, std::string("store: ") + e.what());
  }
}

}  // namespace internal

SqliteStore::Impl::~Impl() {
  if (lock_fd >= 0) ::close(lock_fd);
}

core::UnixMillis SqliteStore::Impl::now() const {
  return options.clock ? options.clock() : system_now();
}

// --- schema ------------------------------------------------------------------------------
int SqliteStore::Impl::read_version() {
  if (!db->tableExists("schema_version")) return 0;
  SQLite::Statement st(*db, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
  st.executeStep();
  return st.getColumn(0).getInt();
}

void SqliteStore::Impl::migrate() {
  version = read_version();
  if (version > latest_schema_version()) {
    fail(ErrorCode::kFailedPrecondition,
         "the database schema is newer than this berth-controller; upgrade berth");
  }
  if (options.read_only) {
    if (version != latest_schema_version()) {
      fail(ErrorCode::kFailedPrecondition,
           "the database needs a schema migration and was opened read-only");
    }
    return;
  }
  for (const Migration& m : migrations()) {
    if (m.version <= version) continue;
    SQLite::Transaction tx(*db, SQLite::TransactionBehavior::IMMEDIATE);
    db->exec(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
    db->exec(m.sql);
    SQLite::Statement ins(*db, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)");
    ins.bind(1, m.version);
    ins.bind(2, static_cast<std::int64_t>(now()));
    ins.exec();
    tx.commit();
    log::info("store schema migrated", {{"version", m.version}, {"step", m.description}});
    version = m.version;
  }
}

// --- credentials -------------------------------------------------------------------------
void SqliteStore::Impl::write_credential(const std::string& service_id,
                                         const core::CredentialWrite& w) {
  switch (w.action) {
    case core::CredentialWrite::Action::kKeep:
      return;
    case core::CredentialWrite::Action::kRemove: {
      SQLite::Statement del(*db, "DELETE FROM credentials WHERE service_id = ?");
      del.bind(1, service_id);
      del.exec();
      return;
    }
    case core::CredentialWrite::Action::kReplace: {
      if (w.password.empty()) {
        fail(ErrorCode::kValidation, "a registry credential needs a password");
      }
      crypto::SealedBlob blob = unwrap(keyring->seal(
          w.password, crypto::credential_aad(service_id, w.registry_host, w.username)));
      SQLite::Statement up(*db,
                           "INSERT INTO credentials (service_id, registry_host, username, "
                           "key_id, nonce, ciphertext, set_at, expires_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                           "ON CONFLICT(service_id) DO UPDATE SET "
                           "registry_host = excluded.registry_host, "
                           "username = excluded.username, key_id = excluded.key_id, "
                           "nonce = excluded.nonce, ciphertext = excluded.ciphertext, "
                           "set_at = excluded.set_at, expires_at = excluded.expires_at");
      up.bind(1, service_id);
      up.bind(2, w.registry_host);
      up.bind(3, w.username);
      up.bind(4, blob.key_id);
      bind_blob(up, 5, blob.nonce);
      bind_blob(up, 6, blob.ciphertext);
      up.bind(7, static_cast<std::int64_t>(w.set_at));
      if (w.expires_at) {
        up.bind(8, static_cast<std::int64_t>(*w.expires_at));
      } else {
        up.bind(8);
      }
      up.exec();
      return;
    }
  }
}

void SqliteStore::Impl::insert_revision(const Revision& r) {
  SQLite::Statement ins(*db, std::string("INSERT INTO revisions (") + kRevisionColumns +
                                 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  ins.bind(1, r.id);
  ins.bind(2, r.service_id);
  ins.bind(3, static_cast<std::int64_t>(r.number));
  ins.bind(4, encode_config(r.config));
  ins.bind(5, r.registry_host);
  ins.bind(6, r.reason);
  ins.bind(7, core::to_string(r.state));
  ins.bind(8, r.image_digest);
  ins.bind(9, encode_deploy_logs(r.deploy_logs));
  ins.bind(10, static_cast<std::int64_t>(r.created_at));
  ins.bind(11, static_cast<std::int64_t>(r.finished_at));
  ins.exec();
}

void SqliteStore::Impl::insert_task(const Task& t) {
  SQLite::Statement ins(*db,
                        "INSERT INTO tasks (id, service_id, revision_id, kind, state, agent, "
                        "attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  ins.bind(1, t.id);
  ins.bind(2, t.service_id);
  ins.bind(3, t.revision_id);
  ins.bind(4, core::to_string(t.kind));
  ins.bind(5, core::to_string(t.state));
  ins.bind(6, t.agent);
  ins.bind(7, t.attempts);
  ins.bind(8, static_cast<std::int64_t>(t.created_at));
  ins.bind(9, static_cast<std::int64_t>(t.updated_at));
  ins.exec();
}

void SqliteStore::Impl::apply_rest(const core::Change& change) {
  const std::string& sid = change.service.id;
  if (change.revision) {
    if (change.revision->service_id != sid) {
      fail(ErrorCode::kInvalidArgument, "the revision belongs to another app service");
    }
    insert_revision(*change.revision);
  }
  write_credential(sid, change.credential);
  if (change.task) {
    if (change.task->service_id != sid) {
      fail(ErrorCode::kInvalidArgument, "the task belongs to another app service");
    }
    insert_task(*change.task);
  }
}

// Re-seals every credential not yet under `target_key_id` in one transaction: opened with
// `opener` (which holds the old key), sealed with `sealer` (whose current key is the target).
int SqliteStore::Impl::reseal_all(const crypto::Keyring& opener, const crypto::Keyring& sealer) {
  struct Row {
    std::string service_id, host, username;
    crypto::SealedBlob blob;
  };
  SQLite::Transaction tx(*db, SQLite::TransactionBehavior::IMMEDIATE);
  std::vector<Row> rows;
  {
    SQLite::Statement st(*db,
                         "SELECT service_id, registry_host, username, key_id, nonce, "
                         "ciphertext FROM credentials WHERE key_id != ?");
    st.bind(1, sealer.current_key_id());
    while (st.executeStep()) {
      Row r;
      r.service_id = st.getColumn(0).getString();
      r.host = st.getColumn(1).getString();
      r.username = st.getColumn(2).getString();
      r.blob.key_id = st.getColumn(3).getString();
      r.blob.nonce = column_blob(st.getColumn(4));
      r.blob.ciphertext = column_blob(st.getColumn(5));
      rows.push_back(std::move(r));
    }
  }
  SQLite::Statement up(*db,
                       "UPDATE credentials SET key_id = ?, nonce = ?, ciphertext = ? "
                       "WHERE service_id = ?");
  for (const Row& r : rows) {
    const std::string aad = crypto::credential_aad(r.service_id, r.host, r.username);
    auto plain = opener.unseal(r.blob, aad);
    if (!plain.ok()) {
      fail(ErrorCode::kDataLoss,
           "a stored registry password cannot be unsealed; the master key rotation stopped");
    }
    crypto::SealedBlob fresh = unwrap(sealer.seal(*plain, aad));
    up.reset();
    up.bind(1, fresh.key_id);
    bind_blob(up, 2, fresh.nonce);
    bind_blob(up, 3, fresh.ciphertext);
    up.bind(4, r.service_id);
    up.exec();
  }
  tx.commit();
  return static_cast<int>(rows.size());
}

// A `.next` key file means a rotation began and did not finish: re-seal what is not under
// the new key yet, then retire the old key. Idempotent.
int SqliteStore::Impl::complete_rotation() {
  const fs::path next = next_key_path(key_file);
  if (!fs::exists(next)) return 0;
  crypto::Keyring target = unwrap(crypto::Keyring::load(next));
  const int n = reseal_all(*keyring, target);
  check(keyring->finish_rotation());
  keyring.reset();
  keyring.emplace(unwrap(crypto::Keyring::load(key_file)));
  log::info("store master key rotation completed",
            {{"key_id", keyring->current_key_id()}, {"resealed", n}});
  return n;
}

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const fs::path& data_dir,
                                                       StoreOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->data_dir = data_dir;
  impl->key_file = options.key_file.empty() ? data_dir / "master.key" : options.key_file;
  impl->options = std::move(options);
  Impl& s = *impl;
  const bool ro = s.options.read_only;

  Status opened = guarded(Context{}, [&]() -> Status {
    std::error_code ec;
    if (!fs::exists(s.data_dir, ec)) {
      if (ro) fail(ErrorCode::kNotFound, "the data directory does not exist");
      fs::create_directories(s.data_dir, ec);
      if (ec) fail(ErrorCode::kPermissionDenied, "the data directory cannot be created");
      // The directory holds the key and the database: nobody else may list or enter it.
      fs::permissions(s.data_dir, fs::perms::owner_all, ec);
      if (ec) fail(ErrorCode::kPermissionDenied, "the data directory mode cannot be set");
    }
    if (!ro) {
      s.lock_fd = ::open((s.data_dir / "berth.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
      if (s.lock_fd < 0)
        fail(ErrorCode::kPermissionDenied, "the data directory lock cannot be created");
      if (::flock(s.lock_fd, LOCK_SH | LOCK_NB) != 0) {
        fail(ErrorCode::kUnavailable,
             "a master-key rotation is running on this data directory; retry when it finishes");
      }
    }
    s.keyring.emplace(unwrap(ro ? crypto::Keyring::load(s.key_file)
                                : crypto::Keyring::load_or_create(s.key_file)));

    const fs::path db_path = s.data_dir / "berth.db";
    if (!ro && !fs::exists(db_path, ec)) {
      // SQLite gives -wal and -shm the mode of the database file: create it 0600 first.
      const int fd = ::open(db_path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
      if (fd < 0 && errno != EEXIST) {
        fail(ErrorCode::kPermissionDenied, "the database file cannot be created");
      }
      if (fd >= 0) ::close(fd);
    }
    const int flags = ro ? SQLite::OPEN_READONLY : SQLite::OPEN_READWRITE;
    s.db.emplace(db_path, flags | SQLite::OPEN_NOFOLLOW, s.options.busy_timeout_ms);
    // Extended codes distinguish a UNIQUE violation from a foreign key one.
    sqlite3_extended_result_codes(s.db->getHandle(), 1);
    s.db->exec("PRAGMA foreign_keys = ON");
    if (!ro) {
      s.db->exec("PRAGMA secure_delete = ON");
      // WAL + synchronous=FULL: a commit returns after the WAL is fsynced, so an acknowledged
      // write survives a power cut, not just a process crash.
      const std::string mode = s.db->execAndGet("PRAGMA journal_mode = WAL").getString();
      if (mode != "wal") fail(ErrorCode::kInternal, "the database cannot switch to WAL mode");
      s.db->exec("PRAGMA synchronous = FULL");
    }
    // Touch the file: a non-database file fails here (kDataLoss), not on first use.
    s.db->execAndGet("SELECT count(*) FROM sqlite_master");
    s.migrate();
    if (s.options.max_page_count > 0) {
      s.db->exec("PRAGMA max_page_count = " + std::to_string(s.options.max_page_count));
    }
    if (!ro) s.complete_rotation();
    return Status::Ok();
  });
  if (!opened.ok()) return opened.error();
  log::info("store opened", {{"data_dir", s.data_dir.string()},
                             {"schema_version", s.version},
                             {"key_id", s.keyring->current_key_id()},
                             {"read_only", ro}});
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

// --- app services -----------------------------------------------------------------------------

Result<AppService> SqliteStore::get_service(std::string_view account_id, std::string_view id) {
  return guarded(Context{}, [&]() -> Result<AppService> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(*impl_->db, std::string("SELECT ") + kServiceColumns +
                                         " FROM app_services WHERE id = ? AND account_id = ?");
    st.bind(1, std::string(id));
    st.bind(2, std::string(account_id));
    if (!st.executeStep()) fail(ErrorCode::kNotFound, "the app service does not exist");
    return read_service(st);
  });
}

Result<std::vector<AppService>> SqliteStore::list_services(std::string_view account_id) {
  return guarded(Context{}, [&]() -> Result<std::vector<AppService>> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(*impl_->db, std::string("SELECT ") + kServiceColumns +
                                         " FROM app_services WHERE account_id = ? "
                                         "ORDER BY created_at, id");
    st.bind(1, std::string(account_id));
    std::vector<AppService> out;
    while (st.executeStep()) out.push_back(read_service(st));
    return out;
  });
}

Result<AppService> SqliteStore::load_service(std::string_view id) {
  return guarded(Context{}, [&]() -> Result<AppService> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(
        *impl_->db, std::string("SELECT ") + kServiceColumns + " FROM app_services WHERE id = ?");
    st.bind(1, std::string(id));
    if (!st.executeStep()) fail(ErrorCode::kNotFound, "the app service does not exist");
    return read_service(st);
  });
}

Result<std::vector<std::string>> SqliteStore::list_service_ids() {
  return guarded(Context{}, [&]() -> Result<std::vector<std::string>> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(*impl_->db, "SELECT id FROM app_services ORDER BY id");
    std::vector<std::string> out;
    while (st.executeStep()) out.push_back(st.getColumn(0).getString());
    return out;
  });
}

Status SqliteStore::create_service(const core::Change& change) {
  return guarded(Context{"an app service with this name already exists"}, [&]() -> Status {
    std::lock_guard lock(impl_->mu);
    SQLite::Transaction tx(*impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement ins(*impl_->db,
                          std::string("INSERT INTO app_services (") + kServiceColumns +
                              ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                              "?, ?, ?, ?, ?, ?)");
    bind_service(ins, change.service);
    ins.exec();
    impl_->apply_rest(change);
    tx.commit();
    return Status::Ok();
  });
}

Status SqliteStore::apply_change(const core::Change& change, std::int64_t expected_generation) {
  return guarded(Context{"an app service with this name already exists"}, [&]() -> Status {
    std::lock_guard lock(impl_->mu);
    SQLite::Transaction tx(*impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement cur(*impl_->db,
                          "SELECT generation FROM app_services WHERE id = ? AND account_id = ?");
    cur.bind(1, change.service.id);
    cur.bind(2, change.service.account_id);
    if (!cur.executeStep()) fail(ErrorCode::kNotFound, "the app service does not exist");
    if (cur.getColumn(0).getInt64() != expected_generation) {
      fail(ErrorCode::kConflict, "the app service was changed concurrently; re-read and retry");
    }
    // Only what the user owns: the runtime's columns (agent, current_deployment_id, url,
    // conditions, last_error) may have moved since `change.service` was read, and writing the
    // read values back would undo a deploy result or a placement that landed in between.
    SQLite::Statement up(*impl_->db,
                         "UPDATE app_services SET name = :name, plan_name = :plan_name, "
                         "zone = :zone, storage_size_gb = :storage_size_gb, "
                         "storage_tier = :storage_tier, status = :status, "
                         "image_ref = :image_ref, container_port = :container_port, env = :env, "
                         "custom_domains = :custom_domains, "
                         "registry_username = :registry_username, health = :health, "
                         "registry_host = :registry_host, "
                         "desired_deployment_id = :desired_deployment_id, "
                         "generation = :generation, updated_at = :updated_at "
                         "WHERE id = :id AND account_id = :account_id");
    const AppService& s = change.service;
    up.bind(":name", s.name);
    up.bind(":plan_name", s.plan_name);
    up.bind(":zone", s.zone);
    up.bind(":storage_size_gb", s.storage_size_gb);
    up.bind(":storage_tier", s.storage_tier);
    up.bind(":status", core::to_string(s.status));
    up.bind(":image_ref", s.config.image_ref);
    up.bind(":container_port", s.config.container_port);
    up.bind(":env", encode_env(s.config.env));
    up.bind(":custom_domains", encode_strings(s.config.custom_domains));
    up.bind(":registry_username", s.config.registry_username);
    up.bind(":health", encode_health(s.config.health));
    up.bind(":registry_host", s.registry_host);
    up.bind(":desired_deployment_id", s.desired_deployment_id);
    up.bind(":generation", static_cast<std::int64_t>(s.generation));
    up.bind(":updated_at", static_cast<std::int64_t>(s.updated_at));
    up.bind(":id", s.id);
    up.bind(":account_id", s.account_id);
    up.exec();
    impl_->apply_rest(change);
    tx.commit();
    return Status::Ok();
  });
}

Status SqliteStore::delete_service(std::string_view id) {
  return guarded(Context{}, [&]() -> Status {
    std::lock_guard lock(impl_->mu);
    SQLite::Transaction tx(*impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    // Revisions, the credential and tasks go with it (ON DELETE CASCADE).
    SQLite::Statement del(*impl_->db, "DELETE FROM app_services WHERE id = ?");
    del.bind(1, std::string(id));
    if (del.exec() == 0) fail(ErrorCode::kNotFound, "the app service does not exist");
    tx.commit();
    return Status::Ok();
  });
}

// --- revisions --------------------------------------------------------------------------------

Result<std::vector<Revision>> SqliteStore::list_revisions(std::string_view service_id,
                                                          bool include_failed) {
  return guarded(Context{}, [&]() -> Result<std::vector<Revision>> {
    std::lock_guard lock(impl_->mu);
    std::string sql =
        std::string("SELECT ") + kRevisionColumns + " FROM revisions WHERE service_id = ?";
    if (!include_failed) sql += " AND state = 'succeeded'";
    sql += " ORDER BY number DESC";
    SQLite::Statement st(*impl_->db, sql);
    st.bind(1, std::string(service_id));
    std::vector<Revision> out;
    while (st.executeStep()) out.push_back(read_revision(st));
    return out;
  });
}

Result<Revision> SqliteStore::get_revision(std::string_view service_id,
                                           std::string_view revision_id) {
  return guarded(Context{}, [&]() -> Result<Revision> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(*impl_->db, std::string("SELECT ") + kRevisionColumns +
                                         " FROM revisions WHERE id = ? AND service_id = ?");
    st.bind(1, std::string(revision_id));
    st.bind(2, std::string(service_id));
    if (!st.executeStep()) fail(ErrorCode::kNotFound, "the deployment does not exist");
    return read_revision(st);
  });
}

Result<std::int64_t> SqliteStore::next_revision_number(std::string_view service_id) {
  return guarded(Context{}, [&]() -> Result<std::int64_t> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(*impl_->db,
                         "SELECT COALESCE(MAX(number), 0) + 1 FROM revisions WHERE service_id = ?");
    st.bind(1, std::string(service_id));
    st.executeStep();
    return st.getColumn(0).getInt64();
  });
}

namespace {
// The runtime-observed columns of an app service (record_outcome and update_observed). A
// service the user is deleting stays Deleting: the runtime's record may have been read before
// the DELETE, and only the removal may end that state.
void write_observed(SQLite::Database& db, const AppService& service) {
  SQLite::Statement svc(db,
                        "UPDATE app_services SET "
                        "status = CASE WHEN status = :deleting THEN status ELSE :status END, "
                        "url = :url, current_deployment_id = :current_deployment_id, "
                        "agent = :agent, conditions = :conditions, last_error = :last_error, "
                        "updated_at = :updated_at WHERE id = :id");
  svc.bind(":deleting", core::to_string(core::ServiceStatus::kDeleting));
  svc.bind(":status", core::to_string(service.status));
  svc.bind(":url", service.url);
  svc.bind(":current_deployment_id", service.current_deployment_id);
  svc.bind(":agent", service.agent);
  svc.bind(":conditions", encode_conditions(service.conditions));
  svc.bind(":last_error", service.last_error);
  svc.bind(":updated_at", static_cast<std::int64_t>(service.updated_at));
  svc.bind(":id", service.id);
  if (svc.exec() == 0) fail(ErrorCode::kNotFound, "the app service does not exist");
}
}  // namespace

namespace {
// The two histories a service keeps, each bounded on its own: revisions that served (rollback
// targets) and revisions that finished without serving. `superseded` is listed for the runtime
// that marks a revision replaced before it ran; a state the store does not know is never pruned.
constexpr const char* kSucceededStates = "('succeeded')";
constexpr const char* kNeverServedStates = "('failed', 'superseded')";

// Deletes the revisions of `service_id` in `states` beyond the newest `keep`, sparing the
// service's current and desired revisions and any revision an unfinished task still refers to
// (read from the stored rows, not from a caller's possibly stale record).
void prune_revisions(SQLite::Database& db, const std::string& service_id, const char* states,
                     int keep) {
  SQLite::Statement prune(
      db, std::string("DELETE FROM revisions WHERE service_id = :service_id AND state IN ") +
              states +
              " AND id NOT IN (SELECT current_deployment_id FROM app_services "
              "WHERE id = :service_id UNION SELECT desired_deployment_id FROM app_services "
              "WHERE id = :service_id UNION SELECT revision_id FROM tasks "
              "WHERE service_id = :service_id AND state != 'done') "
              "AND id NOT IN (SELECT id FROM revisions WHERE service_id = :service_id "
              "AND state IN " +
              states + " ORDER BY number DESC LIMIT :keep)");
  prune.bind(":service_id", service_id);
  prune.bind(":keep", keep);
  prune.exec();
}
}  // namespace

Status SqliteStore::update_observed(const AppService& service) {
  return guarded(Context{}, [&]() -> Status {
    std::lock_guard lock(impl_->mu);
    SQLite::Transaction tx(*impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    write_observed(*impl_->db, service);
    tx.commit();
    return Status::Ok();
  });
}

Status SqliteStore::record_outcome(const Revision& revision, const AppService& service,
                                   int keep_succeeded) {
  return guarded(Context{}, [&]() -> Status {
    if (revision.service_id != service.id) {
      fail(ErrorCode::kInvalidArgument, "the revision belongs to another app service");
    }
    std::lock_guard lock(impl_->mu);
    SQLite::Transaction tx(*impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement rev(*impl_->db,
                          "UPDATE revisions SET state = ?, image_digest = ?, deploy_logs = ?, "
                          "finished_at = ? WHERE id = ? AND service_id = ?");
    rev.bind(1, core::to_string(revision.state));
    rev.bind(2, revision.image_digest);
    rev.bind(3, encode_deploy_logs(revision.deploy_logs));
    rev.bind(4, static_cast<std::int64_t>(revision.finished_at));
    rev.bind(5, revision.id);
    rev.bind(6, revision.service_id);
    if (rev.exec() == 0) fail(ErrorCode::kNotFound, "the deployment does not exist");

    write_observed(*impl_->db, service);

    if (keep_succeeded > 0) {
      prune_revisions(*impl_->db, service.id, kSucceededStates, keep_succeeded);
      prune_revisions(*impl_->db, service.id, kNeverServedStates, keep_succeeded);
    }
    tx.commit();
    return Status::Ok();
  });
}

// --- credentials ------------------------------------------------------------------------------

Result<std::optional<core::StoredCredential>> SqliteStore::get_credential(
    std::string_view service_id) {
  return guarded(Context{}, [&]() -> Result<std::optional<core::StoredCredential>> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(*impl_->db,
                         "SELECT registry_host, username, set_at, expires_at FROM credentials "
                         "WHERE service_id = ?");
    st.bind(1, std::string(service_id));
    if (!st.executeStep()) return std::optional<core::StoredCredential>();
    core::StoredCredential c;
    c.registry_host = st.getColumn(0).getString();
    c.username = st.getColumn(1).getString();
    c.set_at = st.getColumn(2).getInt64();
    if (!st.getColumn(3).isNull()) c.expires_at = st.getColumn(3).getInt64();
    return std::optional<core::StoredCredential>(std::move(c));
  });
}

Result<Secret> SqliteStore::unseal_password(std::string_view service_id,
                                            std::string_view registry_host,
                                            std::string_view username) {
  return guarded(Context{}, [&]() -> Result<Secret> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(*impl_->db,
                         "SELECT registry_host, username, key_id, nonce, ciphertext "
                         "FROM credentials WHERE service_id = ?");
    st.bind(1, std::string(service_id));
    if (!st.executeStep()) fail(ErrorCode::kNotFound, "the app service has no stored credential");
    if (st.getColumn(0).getString() != registry_host || st.getColumn(1).getString() != username) {
      fail(ErrorCode::kFailedPrecondition,
           "the stored registry credential is not for the registry and username being used");
    }
    crypto::SealedBlob blob;
    blob.key_id = st.getColumn(2).getString();
    blob.nonce = column_blob(st.getColumn(3));
    blob.ciphertext = column_blob(st.getColumn(4));
    auto plain =
        impl_->keyring->unseal(blob, crypto::credential_aad(service_id, st.getColumn(0).getString(),
                                                            st.getColumn(1).getString()));
    if (!plain.ok()) {
      fail(ErrorCode::kDataLoss, "the stored registry password cannot be unsealed");
    }
    return std::move(plain).value();
  });
}

// --- task outbox ------------------------------------------------------------------------------

Result<std::vector<Task>> SqliteStore::pending_tasks(std::string_view service_id) {
  return guarded(Context{}, [&]() -> Result<std::vector<Task>> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(*impl_->db,
                         "SELECT id, service_id, revision_id, kind, state, agent, attempts, "
                         "created_at, updated_at FROM tasks WHERE service_id = ? "
                         "AND state != 'done' ORDER BY created_at, id");
    st.bind(1, std::string(service_id));
    std::vector<Task> out;
    while (st.executeStep()) out.push_back(read_task(st));
    return out;
  });
}

Status SqliteStore::update_task(const Task& task) {
  return guarded(Context{}, [&]() -> Status {
    std::lock_guard lock(impl_->mu);
    SQLite::Transaction tx(*impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement up(*impl_->db,
                         "UPDATE tasks SET state = ?, agent = ?, attempts = ?, updated_at = ? "
                         "WHERE id = ? AND service_id = ? AND state != 'done'");
    up.bind(1, core::to_string(task.state));
    up.bind(2, task.agent);
    up.bind(3, task.attempts);
    up.bind(4, static_cast<std::int64_t>(task.updated_at));
    up.bind(5, task.id);
    up.bind(6, task.service_id);
    if (up.exec() == 0) {
      SQLite::Statement probe(*impl_->db, "SELECT 1 FROM tasks WHERE id = ? AND service_id = ?");
      probe.bind(1, task.id);
      probe.bind(2, task.service_id);
      if (probe.executeStep()) fail(ErrorCode::kFailedPrecondition, "the task is already done");
      fail(ErrorCode::kNotFound, "the task does not exist");
    }
    if (task.state == core::TaskState::kDone && impl_->options.keep_done_tasks > 0) {
      // Finished tasks are history nobody reads; the newest few stay so that a late write for
      // a task that just finished still learns it is done rather than unknown.
      SQLite::Statement prune(*impl_->db,
                              "DELETE FROM tasks WHERE service_id = :service_id "
                              "AND state = 'done' AND id NOT IN (SELECT id FROM tasks "
                              "WHERE service_id = :service_id AND state = 'done' "
                              "ORDER BY updated_at DESC, rowid DESC LIMIT :keep)");
      prune.bind(":service_id", task.service_id);
      prune.bind(":keep", impl_->options.keep_done_tasks);
      prune.exec();
    }
    tx.commit();
    return Status::Ok();
  });
}

// --- agents -----------------------------------------------------------------------------------

Status SqliteStore::upsert_agent(const core::AgentRecord& agent) {
  return guarded(Context{}, [&]() -> Status {
    std::lock_guard lock(impl_->mu);
    SQLite::Transaction tx(*impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement up(*impl_->db,
                         "INSERT INTO agents (name, zone, cert_fingerprint, last_seen) "
                         "VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                         "zone = excluded.zone, cert_fingerprint = excluded.cert_fingerprint, "
                         "last_seen = excluded.last_seen");
    up.bind(1, agent.name);
    up.bind(2, agent.zone);
    up.bind(3, agent.cert_fingerprint);
    up.bind(4, static_cast<std::int64_t>(agent.last_seen));
    up.exec();
    tx.commit();
    return Status::Ok();
  });
}

Result<std::vector<core::AgentRecord>> SqliteStore::list_agents() {
  return guarded(Context{}, [&]() -> Result<std::vector<core::AgentRecord>> {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(
        *impl_->db, "SELECT name, zone, cert_fingerprint, last_seen FROM agents ORDER BY name");
    std::vector<core::AgentRecord> out;
    while (st.executeStep()) {
      out.push_back(core::AgentRecord{st.getColumn(0).getString(), st.getColumn(1).getString(),
                                      st.getColumn(2).getString(), st.getColumn(3).getInt64()});
    }
    return out;
  });
}

// --- administration ---------------------------------------------------------------------------

Result<KeyRotation> SqliteStore::rotate_master_key() {
  return guarded(Context{}, [&]() -> Result<KeyRotation> {
    std::lock_guard lock(impl_->mu);
    if (impl_->options.read_only) fail(ErrorCode::kPermissionDenied, "the store is read-only");
    if (::flock(impl_->lock_fd, LOCK_EX | LOCK_NB) != 0) {
      // A failed conversion may drop the shared lock (flock(2)): take it back.
      ::flock(impl_->lock_fd, LOCK_SH);
      fail(ErrorCode::kFailedPrecondition,
           "another berth process (berth-controller serve?) has this data directory open; stop "
           "it before rotating the master key");
    }
    struct Relock {
      int fd;
      ~Relock() { ::flock(fd, LOCK_SH); }
    } relock{impl_->lock_fd};
    // An interrupted rotation first: begin_rotation would overwrite its .next key, which may
    // already seal committed credentials.
    impl_->complete_rotation();
    KeyRotation out;
    out.old_key_id = impl_->keyring->current_key_id();
    check(impl_->keyring->begin_rotation());
    out.new_key_id = impl_->keyring->current_key_id();
    out.resealed = impl_->reseal_all(*impl_->keyring, *impl_->keyring);
    check(impl_->keyring->finish_rotation());
    log::info("store master key rotated", {{"old_key_id", out.old_key_id},
                                           {"new_key_id", out.new_key_id},
                                           {"resealed", out.resealed}});
    return out;
  });
}

std::string SqliteStore::current_key_id() const {
  std::lock_guard lock(impl_->mu);
  return impl_->keyring->current_key_id();
}

Status SqliteStore::checkpoint() {
  return guarded(Context{}, [&]() -> Status {
    std::lock_guard lock(impl_->mu);
    SQLite::Statement st(*impl_->db, "PRAGMA wal_checkpoint(TRUNCATE)");
    st.executeStep();
    if (st.getColumn(0).getInt() != 0) {
      fail(ErrorCode::kUnavailable, "the checkpoint was blocked by a reader; retry");
    }
    return Status::Ok();
  });
}

int SqliteStore::schema_version() const {
  std::lock_guard lock(impl_->mu);
  return impl_->version;
}

}  // namespace berth::store
