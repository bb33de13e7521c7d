#pragma once
// Internal to src/store (not part of its interface): the state behind a SqliteStore (one
// connection, the keyring, the data-directory lock), the two ways a method reaches the
// connection, and how the library's exceptions become error values. Every SqliteStore source
// file includes it; nothing outside src/store may.
//
// How a method is written: it calls impl.locked(ctx, body) to read, or
// impl.transaction(ctx, body) to write. `body` returns Result/Status; an error it returns rolls
// the transaction back. SQLiteCpp reports failures only by throwing; those exceptions (and
// std::bad_alloc) are caught in exactly one place per call, in these two functions, and mapped
// by current_error(). Project code never throws.
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <SQLiteCpp/SQLiteCpp.h>

#include "common/result.h"
#include "core/ports.h"
#include "crypto/sealer.h"
#include "store/sqlite_store.h"

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

}  // namespace internal

struct SqliteStore::Impl {
  std::filesystem::path data_dir;
  std::filesystem::path key_file;
  StoreOptions options;
  std::optional<SQLite::Database> db;
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
      -> decltype(body(std::declval<SQLite::Database&>())) {
    try {
      std::lock_guard lock(mu);
      return body(*db);
    } catch (...) {
      return internal::current_error(ctx);
    }
  }

  // Runs body(db) under the mutex in one BEGIN IMMEDIATE transaction, committed iff body
  // returns ok (the write lock is taken up front: no read-then-upgrade deadlock).
  template <typename F>
  auto transaction(const internal::Context& ctx, F&& body)
      -> decltype(body(std::declval<SQLite::Database&>())) {
    try {
      std::lock_guard lock(mu);
      SQLite::Transaction tx(*db, SQLite::TransactionBehavior::IMMEDIATE);
      auto out = body(*db);
      if (out.ok()) {
        tx.commit();
        note_write(nullptr);
      }
      return out;
    } catch (...) {
      Error error = internal::current_error(ctx);
      note_write(&error);
      return error;
    }
  }

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
