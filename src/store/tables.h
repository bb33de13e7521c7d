#pragma once
// Internal to src/store: the row-level steps one table's file offers the others, for use inside
// a transaction that the caller opened (SqliteStore::Impl::transaction). Each returns an error
// as a value; SQLiteCpp's exceptions pass through to that transaction's single catch.
#include <string>
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

// credentials.cpp: kKeep writes nothing; kReplace seals the password under `keyring`.
Status write_credential(Connection& db, const crypto::Keyring& keyring,
                        const std::string& service_id, const core::CredentialWrite& write);
void bind_blob(SQLite::Statement& st, const char* name, const std::vector<std::uint8_t>& bytes);
std::vector<std::uint8_t> column_blob(const SQLite::Column& column);

// tasks.cpp
Status insert_task(Connection& db, const core::Task& task);

}  // namespace berth::store::internal
