// Opening the store (data directory, lock, key, database, durability settings, migrations),
// and the one mapping from SQLite's failures to berth errors.
#include "store/connection.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <new>
#include <system_error>

#include "common/log.h"
#include "store/schema.h"

namespace berth::store {
namespace internal {
namespace {

Error map_sqlite(const SQLite::Exception& e, const Context& ctx) {
  const int extended = e.getExtendedErrorCode();
  if (extended < 0) {
    // SQLiteCpp's own errors (wrong column, misuse): a bug in the store.
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

}  // namespace

Error current_error(const Context& ctx) {
  try {
    throw;
  } catch (const SQLite::Exception& e) {
    return map_sqlite(e, ctx);
  } catch (const std::bad_alloc&) {
    return make_error(ErrorCode::kResourceExhausted, "out of memory");
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, std::string("store: ") + e.what());
  } catch (...) {
    return make_error(ErrorCode::kInternal, "store: an unknown exception");
  }
}

}  // namespace internal

namespace {

namespace fs = std::filesystem;

core::UnixMillis system_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SqliteStore::Impl::~Impl() {
  if (lock_fd >= 0) ::close(lock_fd);
}

core::UnixMillis SqliteStore::Impl::now() const {
  return options.clock ? options.clock() : system_now();
}

Status SqliteStore::Impl::open_files() {
  const bool ro = options.read_only;
  std::error_code ec;
  if (!fs::exists(data_dir, ec)) {
    if (ro) return make_error(ErrorCode::kNotFound, "the data directory does not exist");
    fs::create_directories(data_dir, ec);
    if (ec) return make_error(ErrorCode::kPermissionDenied, "the data directory cannot be created");
    // The directory holds the key and the database: nobody else may list or enter it.
    fs::permissions(data_dir, fs::perms::owner_all, ec);
    if (ec)
      return make_error(ErrorCode::kPermissionDenied, "the data directory mode cannot be set");
  }
  if (!ro) {
    lock_fd = ::open((data_dir / "berth.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (lock_fd < 0) {
      return make_error(ErrorCode::kPermissionDenied, "the data directory lock cannot be created");
    }
    if (::flock(lock_fd, LOCK_SH | LOCK_NB) != 0) {
      return make_error(
          ErrorCode::kUnavailable,
          "a master-key rotation is running on this data directory; retry when it finishes");
    }
  }
  auto ring = ro ? crypto::Keyring::load(key_file) : crypto::Keyring::load_or_create(key_file);
  if (!ring.ok()) return ring.take_error();
  keyring.emplace(std::move(ring).value());

  const fs::path db_path = data_dir / "berth.db";
  if (!ro && !fs::exists(db_path, ec)) {
    // SQLite gives -wal and -shm the mode of the database file: create it 0600 first.
    const int fd = ::open(db_path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
      return make_error(ErrorCode::kPermissionDenied, "the database file cannot be created");
    }
    if (fd >= 0) ::close(fd);
  }
  const int flags = ro ? SQLite::OPEN_READONLY : SQLite::OPEN_READWRITE;
  db.emplace(db_path, flags | SQLite::OPEN_NOFOLLOW, options.busy_timeout_ms);
  // Extended codes distinguish a UNIQUE violation from a foreign key one.
  sqlite3_extended_result_codes(db->getHandle(), 1);
  db->exec("PRAGMA foreign_keys = ON");
  if (!ro) {
    db->exec("PRAGMA secure_delete = ON");
    // WAL + synchronous=FULL: a commit returns after the WAL is fsynced, so an acknowledged
    // write survives a power cut, not just a process crash.
    const std::string mode = db->execAndGet("PRAGMA journal_mode = WAL").getString();
    if (mode != "wal") {
      return make_error(ErrorCode::kInternal, "the database cannot switch to WAL mode");
    }
    db->exec("PRAGMA synchronous = FULL");
  }
  // Touch the file: a non-database file fails here (kDataLoss), not on first use.
  db->execAndGet("SELECT count(*) FROM sqlite_master");
  if (Status st = migrate(); !st.ok()) return st;
  if (options.max_page_count > 0) {
    db->exec("PRAGMA max_page_count = " + std::to_string(options.max_page_count));
  }
  if (!ro) {
    auto completed = complete_rotation();
    if (!completed.ok()) return completed.take_error();
  }
  return Status::Ok();
}

Status SqliteStore::Impl::migrate() {
  version = 0;
  if (db->tableExists("schema_version")) {
    version = db->execAndGet("SELECT COALESCE(MAX(version), 0) FROM schema_version").getInt();
  }
  if (version > latest_schema_version()) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "the database schema is newer than this berth-controller; upgrade berth");
  }
  if (options.read_only) {
    if (version != latest_schema_version()) {
      return make_error(ErrorCode::kFailedPrecondition,
                        "the database needs a schema migration and was opened read-only");
    }
    return Status::Ok();
  }
  for (const Migration& m : migrations()) {
    if (m.version <= version) continue;
    SQLite::Transaction tx(*db, SQLite::TransactionBehavior::IMMEDIATE);
    db->exec(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
    db->exec(m.sql);
    SQLite::Statement ins(*db,
                          "INSERT INTO schema_version (version, applied_at) "
                          "VALUES (:version, :applied_at)");
    ins.bind(":version", m.version);
    ins.bind(":applied_at", static_cast<std::int64_t>(now()));
    ins.exec();
    tx.commit();
    log::info("store schema migrated", {{"version", m.version}, {"step", m.description}});
    version = m.version;
  }
  return Status::Ok();
}

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const fs::path& data_dir,
                                                       StoreOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->data_dir = data_dir;
  impl->key_file = options.key_file.empty() ? data_dir / "master.key" : options.key_file;
  impl->options = std::move(options);
  // Not through locked(): nobody else can reach this store yet. The one catch for the
  // library's exceptions is here.
  Status opened;
  try {
    opened = impl->open_files();
  } catch (...) {
    opened = internal::current_error(internal::Context{});
  }
  if (!opened.ok()) return opened.error();
  log::info("store opened", {{"data_dir", impl->data_dir.string()},
                             {"schema_version", impl->version},
                             {"key_id", impl->keyring->current_key_id()},
                             {"read_only", impl->options.read_only}});
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

Status SqliteStore::checkpoint() {
  return impl_->locked(internal::Context{}, [](internal::Connection& db) -> Status {
    SQLite::Statement st(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    st.executeStep();
    if (st.getColumn(0).getInt() != 0) {
      return make_error(ErrorCode::kUnavailable, "the checkpoint was blocked by a reader; retry");
    }
    return Status::Ok();
  });
}

int SqliteStore::schema_version() const {
  std::lock_guard lock(impl_->mu);
  return impl_->version;
}

std::optional<std::string> SqliteStore::write_blocked() const {
  std::lock_guard lock(impl_->write_mu);
  if (impl_->write_blocked.empty()) return std::nullopt;
  return impl_->write_blocked;
}

StoreStats SqliteStore::stats() const {
  StoreStats s;
  // The connection exists from open() on and is never replaced; its counters are atomic.
  s.statements_prepared = impl_->db->counts().prepared.load(std::memory_order_relaxed);
  s.statements_reused = impl_->db->counts().reused.load(std::memory_order_relaxed);
  s.commits = impl_->commits.load(std::memory_order_relaxed);
  s.writes_committed = impl_->writes_committed.load(std::memory_order_relaxed);
  s.largest_batch = impl_->largest_batch.load(std::memory_order_relaxed);
  {
    std::lock_guard q(impl_->group_mu);
    s.writes_waiting = static_cast<std::int64_t>(impl_->group_queue.size());
  }
  return s;
}

void SqliteStore::set_write_batch_hook(std::function<void(std::size_t)> hook) {
  impl_->on_write_batch = std::move(hook);
}

Status SqliteStore::probe_write() {
  // Through the group commit like every write: it may share a commit with others, and it
  // still clears write_blocked() only when that commit succeeds.
  return impl_->transaction(internal::Context{}, [](internal::Connection& db) -> Status {
    const int version = db.execAndGet("PRAGMA user_version").getInt();
    db.exec("PRAGMA user_version = " + std::to_string(version));
    return Status::Ok();
  });
}

void SqliteStore::Impl::note_write(const Error* failure) {
  // Only failures that say the database cannot take writes at all; a conflict, a busy lock or
  // a bad row says nothing about the next write.
  const bool blocks = failure != nullptr && (failure->code == ErrorCode::kResourceExhausted ||
                                             failure->code == ErrorCode::kPermissionDenied);
  std::lock_guard lock(write_mu);
  if (failure == nullptr) {
    write_blocked.clear();
  } else if (blocks) {
    write_blocked = failure->message;
  }
}

}  // namespace berth::store

namespace berth::store {

Status SqliteStore::Impl::commit_write(internal::WriteRequest& req) {
  std::unique_lock q(group_mu);
  group_queue.push_back(&req);
  while (!req.done) {
    if (group_leader) {
      group_cv.wait(q);
      continue;
    }
    group_leader = true;
    std::vector<internal::WriteRequest*> batch;
    while (!group_queue.empty() && batch.size() < kMaxWriteBatch) {
      batch.push_back(group_queue.front());
      group_queue.pop_front();
    }
    q.unlock();
    if (on_write_batch) on_write_batch(batch.size());
    run_batch(batch);
    q.lock();
    for (internal::WriteRequest* r : batch) r->done = true;
    group_leader = false;
    group_cv.notify_all();
  }
  return req.status;
}

void SqliteStore::Impl::run_batch(const std::vector<internal::WriteRequest*>& batch) {
  std::lock_guard lock(mu);
  sqlite3* handle = db->getHandle();
  const bool savepoints = batch.size() > 1;
  std::size_t next = 0;
  // Normally one pass. SQLite rolls a whole transaction back on some errors (disk full, I/O):
  // the writes before that point are then lost and fail with that error, and the writes after
  // it run in a new transaction.
  while (next < batch.size()) {
    std::vector<internal::WriteRequest*> applied;  // ok so far in this transaction
    try {
      db->prepare("BEGIN IMMEDIATE").exec();
    } catch (...) {
      // The write lock could not be had (another process holds it past busy_timeout): the
      // whole batch fails.
      for (; next < batch.size(); ++next) {
        batch[next]->status = internal::current_error(*batch[next]->ctx);
        note_write(&batch[next]->status.error());
      }
      return;
    }
    bool rolled_back = false;
    for (; next < batch.size() && !rolled_back; ++next) {
      internal::WriteRequest& r = *batch[next];
      bool threw = false;
      try {
        if (savepoints) db->prepare("SAVEPOINT berth_write").exec();
        r.status = r.run(*db);
      } catch (...) {
        r.status = internal::current_error(*r.ctx);
        threw = true;
      }
      if (sqlite3_get_autocommit(handle) != 0) {
        rolled_back = true;  // SQLite ended the transaction: everything in it is gone
        if (r.status.ok()) r.status = make_error(ErrorCode::kUnavailable, "the write was lost");
        for (internal::WriteRequest* a : applied) a->status = r.status;
        if (threw) note_write(&r.status.error());
        continue;  // on to the next write, in a new transaction
      }
      try {
        if (r.status.ok()) {
          if (savepoints) db->prepare("RELEASE berth_write").exec();
          applied.push_back(&r);
        } else if (savepoints) {
          db->prepare("ROLLBACK TO berth_write").exec();
          db->prepare("RELEASE berth_write").exec();
        }
      } catch (...) {
        // Undoing one write failed: nothing in this transaction can be trusted.
        Error e = internal::current_error(*r.ctx);
        r.status = e;
        for (internal::WriteRequest* a : applied) a->status = e;
        applied.clear();
        rolled_back = true;
      }
      if (threw && !r.status.ok()) note_write(&r.status.error());
    }
    if (rolled_back) {
      if (sqlite3_get_autocommit(handle) == 0) {
        try {
          db->exec("ROLLBACK");
        } catch (...) {  // the connection ends the transaction itself on close
        }
      }
      continue;  // `next` is past the write that ended it; the rest get a new transaction
    }
    if (applied.empty()) {
      try {
        db->exec("ROLLBACK");  // every write failed: nothing to commit
      } catch (...) {
      }
      continue;
    }
    try {
      db->prepare("COMMIT").exec();
      commits.fetch_add(1, std::memory_order_relaxed);
      writes_committed.fetch_add(static_cast<std::int64_t>(applied.size()),
                                 std::memory_order_relaxed);
      std::int64_t seen = largest_batch.load(std::memory_order_relaxed);
      const auto n = static_cast<std::int64_t>(applied.size());
      while (n > seen && !largest_batch.compare_exchange_weak(seen, n)) {
      }
      note_write(nullptr);
    } catch (...) {
      Error e = internal::current_error(*applied.front()->ctx);
      for (internal::WriteRequest* a : applied) a->status = e;
      note_write(&e);
      if (sqlite3_get_autocommit(handle) == 0) {
        try {
          db->exec("ROLLBACK");
        } catch (...) {
        }
      }
    }
  }
}

}  // namespace berth::store
