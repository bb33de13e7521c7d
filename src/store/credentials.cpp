// The credentials table: one sealed registry password per app service. The plaintext exists
// only in memory, sealed under credential_aad(service id, registry host, username) so that a
// row copied elsewhere, or read for another registry, does not open.
#include <optional>
#include <string>
#include <vector>

#include "store/connection.h"
#include "store/tables.h"

namespace berth::store {

using internal::Context;

namespace internal {

void bind_blob(SQLite::Statement& st, const char* name, const std::vector<std::uint8_t>& bytes) {
  st.bind(name, bytes.data(), static_cast<int>(bytes.size()));
}

std::vector<std::uint8_t> column_blob(const SQLite::Column& column) {
  const auto* p = static_cast<const std::uint8_t*>(column.getBlob());
  return std::vector<std::uint8_t>(p, p + column.getBytes());
}

Status write_credential(internal::Connection& db, const crypto::Keyring& keyring,
                        const std::string& service_id, const core::CredentialWrite& w) {
  switch (w.action) {
    case core::CredentialWrite::Action::kKeep:
      return Status::Ok();
    case core::CredentialWrite::Action::kRemove: {
      auto del = db.prepare("DELETE FROM credentials WHERE service_id = :service_id");
      del.bind(":service_id", service_id);
      del.exec();
      return Status::Ok();
    }
    case core::CredentialWrite::Action::kReplace: {
      if (w.password.empty()) {
        return make_error(ErrorCode::kValidation, "a registry credential needs a password");
      }
      auto blob =
          keyring.seal(w.password, crypto::credential_aad(service_id, w.registry_host, w.username));
      if (!blob.ok()) return blob.take_error();
      auto up = db.prepare(
          "INSERT INTO credentials (service_id, registry_host, username, "
          "key_id, nonce, ciphertext, set_at, expires_at) "
          "VALUES (:service_id, :registry_host, :username, :key_id, :nonce, "
          ":ciphertext, :set_at, :expires_at) "
          "ON CONFLICT(service_id) DO UPDATE SET "
          "registry_host = excluded.registry_host, "
          "username = excluded.username, key_id = excluded.key_id, "
          "nonce = excluded.nonce, ciphertext = excluded.ciphertext, "
          "set_at = excluded.set_at, expires_at = excluded.expires_at");
      up.bind(":service_id", service_id);
      up.bind(":registry_host", w.registry_host);
      up.bind(":username", w.username);
      up.bind(":key_id", blob->key_id);
      bind_blob(up, ":nonce", blob->nonce);
      bind_blob(up, ":ciphertext", blob->ciphertext);
      up.bind(":set_at", static_cast<std::int64_t>(w.set_at));
      if (w.expires_at) {
        up.bind(":expires_at", static_cast<std::int64_t>(*w.expires_at));
      } else {
        up.bind(":expires_at");
      }
      up.exec();
      return Status::Ok();
    }
  }
  return make_error(ErrorCode::kInternal, "store: an unknown credential action");
}

}  // namespace internal

namespace internal {

Result<std::optional<core::StoredCredential>> read_credential(Connection& db,
                                                              std::string_view service_id) {
  using Found = std::optional<core::StoredCredential>;
  auto st = db.prepare(
      "SELECT registry_host, username, set_at, expires_at FROM credentials "
      "WHERE service_id = :service_id");
  st.bind(":service_id", std::string(service_id));
  if (!st.executeStep()) return Found();
  core::StoredCredential c;
  c.registry_host = st.getColumn("registry_host").getString();
  c.username = st.getColumn("username").getString();
  c.set_at = st.getColumn("set_at").getInt64();
  if (!st.getColumn("expires_at").isNull()) c.expires_at = st.getColumn("expires_at").getInt64();
  return Found(std::move(c));
}

}  // namespace internal

Result<std::optional<core::StoredCredential>> SqliteStore::get_credential(
    std::string_view service_id) {
  return impl_->locked(Context{}, [&](internal::Connection& db) {
    return internal::read_credential(db, service_id);
  });
}

Result<Secret> SqliteStore::unseal_password(std::string_view service_id,
                                            std::string_view registry_host,
                                            std::string_view username) {
  return impl_->locked(Context{}, [&](internal::Connection& db) -> Result<Secret> {
    auto st = db.prepare(
        "SELECT registry_host, username, key_id, nonce, ciphertext "
        "FROM credentials WHERE service_id = :service_id");
    st.bind(":service_id", std::string(service_id));
    if (!st.executeStep()) {
      return make_error(ErrorCode::kNotFound, "the app service has no stored credential");
    }
    const std::string stored_host = st.getColumn("registry_host").getString();
    const std::string stored_username = st.getColumn("username").getString();
    if (stored_host != registry_host || stored_username != username) {
      return make_error(
          ErrorCode::kFailedPrecondition,
          "the stored registry credential is not for the registry and username being used");
    }
    crypto::SealedBlob blob;
    blob.key_id = st.getColumn("key_id").getString();
    blob.nonce = internal::column_blob(st.getColumn("nonce"));
    blob.ciphertext = internal::column_blob(st.getColumn("ciphertext"));
    auto plain = impl_->keyring->unseal(
        blob, crypto::credential_aad(service_id, stored_host, stored_username));
    if (!plain.ok()) {
      return make_error(ErrorCode::kDataLoss, "the stored registry password cannot be unsealed");
    }
    return std::move(plain).value();
  });
}

}  // namespace berth::store
