// The master key: rotation (re-sealing every credential under a new key) and the completion of
// a rotation that a crash interrupted (docs/store.md, "Keys and secrets").
#include <sys/file.h>

#include <string>
#include <vector>

#include "common/log.h"
#include "store/connection.h"
#include "store/tables.h"

namespace berth::store {
namespace {

namespace fs = std::filesystem;
using internal::Context;

fs::path next_key_path(const fs::path& key_file) {
  fs::path p = key_file;
  p += ".next";
  return p;
}

}  // namespace

Result<int> SqliteStore::Impl::reseal_all(const crypto::Keyring& opener,
                                          const crypto::Keyring& sealer) {
  struct Row {
    std::string service_id, host, username;
    crypto::SealedBlob blob;
  };
  SQLite::Transaction tx(*db, SQLite::TransactionBehavior::IMMEDIATE);
  std::vector<Row> rows;
  {
    SQLite::Statement st(*db,
                         "SELECT service_id, registry_host, username, key_id, nonce, "
                         "ciphertext FROM credentials WHERE key_id != :key_id");
    st.bind(":key_id", sealer.current_key_id());
    while (st.executeStep()) {
      Row r;
      r.service_id = st.getColumn("service_id").getString();
      r.host = st.getColumn("registry_host").getString();
      r.username = st.getColumn("username").getString();
      r.blob.key_id = st.getColumn("key_id").getString();
      r.blob.nonce = internal::column_blob(st.getColumn("nonce"));
      r.blob.ciphertext = internal::column_blob(st.getColumn("ciphertext"));
      rows.push_back(std::move(r));
    }
  }
  SQLite::Statement up(*db,
                       "UPDATE credentials SET key_id = :key_id, nonce = :nonce, "
                       "ciphertext = :ciphertext WHERE service_id = :service_id");
  for (const Row& r : rows) {
    const std::string aad = crypto::credential_aad(r.service_id, r.host, r.username);
    auto plain = opener.unseal(r.blob, aad);
    if (!plain.ok()) {
      // Returning rolls the transaction back: nothing is half re-sealed.
      return make_error(
          ErrorCode::kDataLoss,
          "a stored registry password cannot be unsealed; the master key rotation stopped");
    }
    auto fresh = sealer.seal(*plain, aad);
    if (!fresh.ok()) return fresh.take_error();
    up.reset();
    up.bind(":key_id", fresh->key_id);
    internal::bind_blob(up, ":nonce", fresh->nonce);
    internal::bind_blob(up, ":ciphertext", fresh->ciphertext);
    up.bind(":service_id", r.service_id);
    up.exec();
  }
  tx.commit();
  return static_cast<int>(rows.size());
}

Result<int> SqliteStore::Impl::complete_rotation() {
  const fs::path next = next_key_path(key_file);
  if (!fs::exists(next)) return 0;
  auto target = crypto::Keyring::load(next);
  if (!target.ok()) return target.take_error();
  auto resealed = reseal_all(*keyring, *target);
  if (!resealed.ok()) return resealed;
  if (Status st = keyring->finish_rotation(); !st.ok()) return st.error();
  auto reloaded = crypto::Keyring::load(key_file);
  if (!reloaded.ok()) return reloaded.take_error();
  keyring.reset();
  keyring.emplace(std::move(reloaded).value());
  log::info("store master key rotation completed",
            {{"key_id", keyring->current_key_id()}, {"resealed", *resealed}});
  return resealed;
}

Result<KeyRotation> SqliteStore::rotate_master_key() {
  return impl_->locked(Context{}, [&](SQLite::Database&) -> Result<KeyRotation> {
    Impl& s = *impl_;
    if (s.options.read_only) {
      return make_error(ErrorCode::kPermissionDenied, "the store is read-only");
    }
    if (::flock(s.lock_fd, LOCK_EX | LOCK_NB) != 0) {
      // A failed conversion may drop the shared lock (flock(2)): take it back.
      ::flock(s.lock_fd, LOCK_SH);
      return make_error(ErrorCode::kFailedPrecondition,
                        "another berth process (berth-controller serve?) has this data directory "
                        "open; stop it before rotating the master key");
    }
    struct Relock {
      int fd;
      ~Relock() { ::flock(fd, LOCK_SH); }
    } relock{s.lock_fd};
    // An interrupted rotation first: begin_rotation would overwrite its .next key, which may
    // already seal committed credentials.
    if (auto done = s.complete_rotation(); !done.ok()) return done.take_error();
    KeyRotation out;
    out.old_key_id = s.keyring->current_key_id();
    if (Status st = s.keyring->begin_rotation(); !st.ok()) return st.error();
    out.new_key_id = s.keyring->current_key_id();
    auto resealed = s.reseal_all(*s.keyring, *s.keyring);
    if (!resealed.ok()) return resealed.take_error();
    out.resealed = *resealed;
    if (Status st = s.keyring->finish_rotation(); !st.ok()) return st.error();
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

}  // namespace berth::store
