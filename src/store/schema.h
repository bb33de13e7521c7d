#pragma once
// The store's schema as an ordered list of migrations. Migration N (1-based, `version`) is
// applied in one transaction together with the row `schema_version(version = N)`, so a crash
// leaves the database at N-1 or N, never between. Steps are never edited once released: a
// change is a new step at the end.
#include <span>

namespace berth::store {

struct Migration {
  int version;
  const char* description;
  const char* sql;  // one or more statements
};

std::span<const Migration> migrations();
int latest_schema_version();

}  // namespace berth::store
