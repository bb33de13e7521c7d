#pragma once
// Internal to src/store: the row-level steps one table's file offers the others, for use inside
// a transaction that the caller opened (SqliteStore::Impl::transaction). Each returns an error
// as a value; SQLiteCpp's exceptions pass through to that transaction's single catch.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>

#include "common/result.h"
#include "core/ports.h"
#include "crypto/sealer.h"
#include "store/statement_cache.h"

namespace berth::store::internal {

// services.cpp: the runtime-owned columns of a service (see ports.h); kNotFound when gone.
Status write_observed(Connection& db, const core::AppService& service);

// revisions.cpp
Status insert_revision(Connection& db, const core::Revision& revision);
std::int64_t read_next_revision_number(Connection& db, std::string_view service_id);

// credentials.cpp: kKeep writes nothing; kReplace seals the password under `keyring`.
Status write_credential(Connection& db, const crypto::Keyring& keyring,
                        const std::string& service_id, const core::CredentialWrite& write);
Result<std::optional<core::StoredCredential>> read_credential(Connection& db,
                                                              std::string_view service_id);
void bind_blob(SQLite::Statement& st, const char* name, const std::vector<std::uint8_t>& bytes);
std::vector<std::uint8_t> column_blob(const SQLite::Column& column);

// tasks.cpp
Status insert_task(Connection& db, const core::Task& task);

}  // namespace berth::store::internal
