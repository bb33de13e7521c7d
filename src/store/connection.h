#pragma once
// Internal to src/store (not part of its interface): the state behind a SqliteStore (one
// connection, the keyring, the data-directory lock) and how the library's exceptions become
// error values. Every SqliteStore source file includes it; nothing outside src/store may.
#include <filesystem>
#include <mutex>
#include <new>
#include <optional>
#include <string>

#include <SQLiteCpp/SQLiteCpp.h>

#include "common/result.h"
#include "core/ports.h"
#include "crypto/sealer.h"
#include "store/sqlite_store.h"

namespace berth::store {
namespace internal {

// Thrown inside the store only, to leave a transaction early with a value error; guarded()
// turns it back into a value. Nothing escapes SqliteStore's methods.
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

inline void check(const Status& s) {
  if (!s.ok()) throw StoreFailure{s.error()};
}

// What a UNIQUE/PRIMARY KEY violation means to the caller of the operation that hit it.
struct Context {
  const char* conflict = "the record already exists";
};

Error map_sqlite(const SQLite::Exception& e, const Context& ctx);

// Runs `body`, turning every exception of the store and of the libraries it calls into a value.
template <typename F>
auto guarded(const Context& ctx, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const StoreFailure& f) {
    return f.error;
  } catch (const SQLite::Exception& e) {
    return map_sqlite(e, ctx);
  } catch (const std::bad_alloc&) {
    return make_error(ErrorCode::kResourceExhausted, "out of memory");
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, std::string("store: ") + e.what());
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

  // --- schema ------------------------------------------------------------------------------
  int read_version();
  void migrate();

  // --- the parts of a Change besides the service row ---------------------------------------
  void write_credential(const std::string& service_id, const core::CredentialWrite& w);
  void insert_revision(const core::Revision& r);
  void insert_task(const core::Task& t);
  void apply_rest(const core::Change& change);

  // --- keys --------------------------------------------------------------------------------
  // Re-seals every credential not yet under `target_key_id` in one transaction: opened with
  // `opener` (which holds the old key), sealed with `sealer` (whose current key is the target).
  int reseal_all(const crypto::Keyring& opener, const crypto::Keyring& sealer);
  // A `.next` key file means a rotation began and did not finish: re-seal what is not under
  // the new key yet, then retire the old key. Idempotent.
  int complete_rotation();

  // --- accounts (accounts.cpp) -------------------------------------------------------------
  const std::string& dummy();
};

}  // namespace berth::store
