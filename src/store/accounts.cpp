// Accounts and API tokens: authentication, account creation, token issue.
#include <optional>
#include <string>

#include <SQLiteCpp/SQLiteCpp.h>

#include "common/log.h"
#include "crypto/password.h"
#include "store/connection.h"

namespace berth::store {

using internal::Context;
using internal::fail;
using internal::guarded;
using internal::unwrap;

const std::string& SqliteStore::Impl::dummy() {
  if (dummy_hash.empty()) {
    dummy_hash = unwrap(crypto::hash_password(Secret("berth-timing-equaliser")));
  }
  return dummy_hash;
}

// --- accounts and authentication -------------------------------------------------------------

Result<std::string> SqliteStore::authenticate_password(std::string_view account_name,
                                                       const Secret& password) {
  struct Found {
    std::string id, hash;
  };
  auto found = guarded(Context{}, [&]() -> Result<Found> {
    std::lock_guard lock(impl_->mu);
    auto st = impl_->db->prepare("SELECT id, password_hash FROM accounts WHERE name = ?");
    st.bind(1, std::string(account_name));
    if (st.executeStep()) return Found{st.getColumn(0).getString(), st.getColumn(1).getString()};
    return Found{"", impl_->dummy()};
  });
  if (!found.ok()) return found.take_error();
  // scrypt outside the lock: it is the slow part and touches no shared state.
  const bool match = crypto::verify_password(password, found->hash);
  if (!match || found->id.empty()) {
    return make_error(ErrorCode::kUnauthenticated, "the account name or password is wrong");
  }
  return found->id;
}

// Matches no secret: the digest of nothing is not all zeros.
constexpr std::string_view kNoTokenHash =
    "sha256$0000000000000000000000000000000000000000000000000000000000000000";

Result<std::string> SqliteStore::authenticate_token(const Secret& token) {
  std::string token_id;
  Secret secret;
  const bool shaped = crypto::split_token(token, token_id, secret);
  struct Found {
    std::string account_id, hash;
    std::optional<core::UnixMillis> last_used;
  };
  auto found = guarded(Context{}, [&]() -> Result<Found> {
    std::lock_guard lock(impl_->mu);
    if (shaped) {
      auto st = impl_->db->prepare(
          "SELECT account_id, secret_hash, last_used_at FROM api_tokens "
          "WHERE id = ?");
      st.bind(1, token_id);
      if (st.executeStep()) {
        Found f{st.getColumn(0).getString(), st.getColumn(1).getString(), std::nullopt};
        if (!st.getColumn(2).isNull()) f.last_used = st.getColumn(2).getInt64();
        return f;
      }
    }
    // An unknown id still hashes and compares (the same few microseconds as a hit).
    return Found{"", std::string(kNoTokenHash), std::nullopt};
  });
  if (!found.ok()) return found.take_error();
  if (crypto::is_legacy_token_hash(found->hash)) {
    // Issued before tokens were SHA-256: the secret is needed to re-hash it and the store
    // never had it, so these tokens are refused with the remedy (docs/api.md).
    return make_error(ErrorCode::kUnauthenticated,
                      "this API token was issued by an older berth and is no longer accepted; "
                      "issue a new one with `berth-controller token create`");
  }
  const bool match = crypto::verify_token_secret(secret, found->hash);
  if (!match || found->account_id.empty()) {
    return make_error(ErrorCode::kUnauthenticated, "the API token is not valid");
  }
  // last_used_at is advisory: written at most once a minute so that every API request is not
  // an fsync, and a failure to write it does not fail the request.
  const core::UnixMillis now = impl_->now();
  if (!found->last_used || now - *found->last_used >= 60'000) {
    // Through the group commit: under concurrent requests it shares a commit with other writes
    // instead of paying an fsync of its own.
    Status touched = impl_->transaction(Context{}, [&](internal::Connection& db) -> Status {
      auto up = db.prepare("UPDATE api_tokens SET last_used_at = ? WHERE id = ?");
      up.bind(1, static_cast<std::int64_t>(now));
      up.bind(2, token_id);
      up.exec();
      return Status::Ok();
    });
    if (!touched.ok()) {
      log::warn("store token last_used_at not recorded",
                {{"token_id", token_id}, {"error", touched.error().message}});
    }
  }
  return found->account_id;
}

Result<std::string> SqliteStore::add_account(std::string_view name, const Secret& password) {
  if (name.empty()) return make_error(ErrorCode::kValidation, "the account name is empty", "name");
  if (password.empty()) {
    return make_error(ErrorCode::kValidation, "the account password is empty", "password");
  }
  auto hash = crypto::hash_password(password);
  if (!hash.ok()) return hash.take_error();
  const std::string id = crypto::random_uuid();
  return guarded(Context{"an account with this name already exists"}, [&]() -> Result<std::string> {
    std::lock_guard lock(impl_->mu);
    SQLite::Transaction tx(*impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement ins(*impl_->db,
                          "INSERT INTO accounts (id, name, password_hash, created_at) "
                          "VALUES (?, ?, ?, ?)");
    ins.bind(1, id);
    ins.bind(2, std::string(name));
    ins.bind(3, *hash);
    ins.bind(4, static_cast<std::int64_t>(impl_->now()));
    ins.exec();
    tx.commit();
    log::info("store account added", {{"account", id}});
    return id;
  });
}

Result<Secret> SqliteStore::create_token(std::string_view account_name, std::string_view label) {
  auto token = crypto::generate_token();
  if (!token.ok()) return token.take_error();
  const std::string hash = crypto::hash_token_secret(token->secret);
  return guarded(Context{"a token with this id already exists"}, [&]() -> Result<Secret> {
    std::lock_guard lock(impl_->mu);
    SQLite::Transaction tx(*impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement find(*impl_->db, "SELECT id FROM accounts WHERE name = ?");
    find.bind(1, std::string(account_name));
    if (!find.executeStep()) fail(ErrorCode::kNotFound, "no account has this name");
    const std::string account_id = find.getColumn(0).getString();
    SQLite::Statement ins(*impl_->db,
                          "INSERT INTO api_tokens (id, account_id, label, secret_hash, "
                          "created_at, last_used_at) VALUES (?, ?, ?, ?, ?, NULL)");
    ins.bind(1, token->id);
    ins.bind(2, account_id);
    ins.bind(3, std::string(label));
    ins.bind(4, hash);
    ins.bind(5, static_cast<std::int64_t>(impl_->now()));
    ins.exec();
    tx.commit();
    log::info("store token created", {{"account", account_id}, {"token_id", token->id}});
    return token->full;
  });
}

}  // namespace berth::store
