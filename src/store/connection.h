#pragma once
// Internal to src/store (not part of its interface): the state behind a SqliteStore (one
// connection, the keyring, the data-directory lock), the two ways a method reaches the
// connection, and how the library's exceptions become error values. Every SqliteStore source
// file includes it; nothing outside src/store may.
//
// How a method is written: it calls impl.locked(ctx, body) to read, or
// impl.transaction(ctx, body) to write. `body` takes the Connection and prepares its statements
// with conn.prepare(sql) (cached per connection, statement_cache.h). It returns Result/Status;
// an error it returns undoes everything it wrote.
//
// Group commit: writes from several threads that arrive while a commit is in progress are
// committed together. The first waiting writer becomes the leader: it takes every queued write
// (up to kMaxWriteBatch), runs each body in its own SAVEPOINT inside one BEGIN IMMEDIATE
// transaction (a body's error rolls back only its savepoint), commits once, and only then lets
// each writer return. So a write returns ok only after the fsync of the commit that carries
// it, as before; N writers that queue behind one commit pay for one more fsync, not N. SQLiteCpp
// reports failures only by throwing; those exceptions (and std::bad_alloc) are caught in exactly
// one place per call, in these two functions, and mapped by current_error(). Project code never
// throws.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>

#include "common/result.h"
#include "core/ports.h"
#include "crypto/sealer.h"
#include "store/sqlite_store.h"
#include "store/statement_cache.h"

namespace berth::store {
namespace internal {

// What a UNIQUE/PRIMARY KEY violation means to the caller of the operation that hit it.
struct Context {
  const char* conflict = "the record already exists";
};

// The error for the exception being handled; call only inside a catch block.
Error current_error(const Context& ctx);

// --- accounts.cpp only ----------------------------------------------------------------------
// The account and token functions are kept as they were written (a change to tokens is being
// made beside this one): they still leave a transaction early by throwing StoreFailure through
// fail()/unwrap(), which guarded() turns back into a value. New code returns errors instead.
struct StoreFailure {
  Error error;
};

[[noreturn]] inline void fail(ErrorCode code, std::string message) {
  throw StoreFailure{make_error(code, std::move(message))};
}

template <typename T>
T unwrap(Result<T> r) {
  if (!r.ok()) throw StoreFailure{r.take_error()};
  return std::move(r).value();
}

template <typename F>
auto guarded(const Context& ctx, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const StoreFailure& f) {
    return f.error;
  } catch (...) {
    return current_error(ctx);
  }
}

// One write waiting for the group commit that carries it.
struct WriteRequest {
  const Context* ctx = nullptr;
  // Runs the write inside the group's transaction. Its error (or exception) undoes only its
  // own savepoint.
  std::function<Status(Connection&)> run;
  Status status;      // the outcome, set by the leader
  bool done = false;  // guarded by Impl::group_mu
};

}  // namespace internal

struct SqliteStore::Impl {
  std::filesystem::path data_dir;
  std::filesystem::path key_file;
  StoreOptions options;
  std::optional<internal::Connection> db;
  std::optional<crypto::Keyring> keyring;
  int version = 0;
  mutable std::mutex mu;
  // Verified against when an account or token id is unknown, so that a miss costs the same
  // scrypt work as a hit. Computed on first use.
  std::string dummy_hash;
  // DATA_DIR/berth.lock, held shared by every open store (serve, the admin commands) and
  // exclusively during a master-key rotation: a rotation while `serve` runs would leave the
  // running process sealing under a retired key.
  int lock_fd = -1;

  ~Impl();

  core::UnixMillis now() const;

  // Runs body(db) under the mutex, without a transaction (reads; steps that open their own).
  template <typename F>
  auto locked(const internal::Context& ctx, F&& body)
      -> decltype(body(std::declval<internal::Connection&>())) {
    try {
      std::lock_guard lock(mu);
      return body(*db);
    } catch (...) {
      return internal::current_error(ctx);
    }
  }

  // Runs body(db) as one write: committed (durably) iff body returns ok, and returns only once
  // that commit is done; possibly in one transaction with other threads' writes (group commit,
  // above). body may run on another writer's thread.
  template <typename F>
  auto transaction(const internal::Context& ctx, F&& body)
      -> decltype(body(std::declval<internal::Connection&>())) {
    using R = decltype(body(std::declval<internal::Connection&>()));
    std::optional<R> out;
    internal::WriteRequest req;
    req.ctx = &ctx;
    req.run = [&](internal::Connection& c) -> Status {
      out.emplace(body(c));
      return out->ok() ? Status::Ok() : Status(out->error());
    };
    Status committed = commit_write(req);
    if (out && !out->ok()) return std::move(*out);
    if (!committed.ok()) return committed.error();
    return std::move(*out);
  }

  // --- group commit (connection.cpp) -------------------------------------------------------
  static constexpr std::size_t kMaxWriteBatch = 64;
  // Queues `req`, leads a group commit when no other writer does, and returns req's outcome
  // once the commit carrying it is done.
  Status commit_write(internal::WriteRequest& req);
  // Under mu: one transaction for `batch`, each body in its own savepoint.
  void run_batch(const std::vector<internal::WriteRequest*>& batch);
  std::mutex group_mu;
  std::condition_variable group_cv;
  std::deque<internal::WriteRequest*> group_queue;  // guarded by group_mu
  bool group_leader = false;                        // guarded by group_mu
  std::atomic<std::int64_t> commits{0};             // transactions committed
  std::atomic<std::int64_t> writes_committed{0};    // writes those commits carried
  std::atomic<std::int64_t> largest_batch{0};
  std::function<void(std::size_t)> on_write_batch;  // SqliteStore::set_write_batch_hook

  // What SqliteStore::write_blocked() reports: the last write's failure when it says the
  // database cannot be written (disk full, read-only); cleared by a committed write.
  void note_write(const Error* failure);
  mutable std::mutex write_mu;
  std::string write_blocked;  // guarded by write_mu; empty: writable as far as we know

  // --- connection.cpp ----------------------------------------------------------------------
  Status open_files();  // directory, lock, key, database, pragmas, migrations
  Status migrate();

  // --- keys.cpp ----------------------------------------------------------------------------
  // Re-seals every credential not yet under `sealer`'s current key in one transaction: opened
  // with `opener` (which holds the old key), sealed with `sealer`. Returns how many.
  Result<int> reseal_all(const crypto::Keyring& opener, const crypto::Keyring& sealer);
  // A `.next` key file means a rotation began and did not finish: re-seal what is not under
  // the new key yet, then retire the old key. Idempotent.
  Result<int> complete_rotation();

  // --- accounts.cpp ------------------------------------------------------------------------
  const std::string& dummy();
};

}  // namespace berth::store
