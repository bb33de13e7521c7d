#pragma once
// Internal to src/store: the store's SQLite connection with a cache of prepared statements.
//
// Why: compiling SQL text (sqlite3_prepare_v2: parse, resolve, plan) cost 2.7x executing it on
// the PATCH path (docs/benchmarks.md). Every statement the store runs is one of a fixed set of
// SQL strings, so each is compiled once per connection and reused: prepare() hands out the
// cached statement, and the CachedStatement it returns resets it and clears its bindings when
// it goes out of scope, so no statement outlives its call holding a read snapshot open.
//
// Contract: one thread at a time (the store's mutex guards the connection). The cache holds at
// most `capacity` statements; when full, the least recently used one not in use is finalized.
// The same SQL borrowed twice at once (a nested use) gets a second, uncached statement.
// A cached statement survives a schema change (SQLite recompiles it on its next step) only if
// its result columns are named in its text: SQLiteCpp keeps the column count and names of the
// first compile, so SQL with `*` (other than count(*)) is never cached.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include <SQLiteCpp/SQLiteCpp.h>

namespace berth::store::internal {

// One use of a prepared statement; behaves like the SQLite::Statement it wraps.
class CachedStatement {
 public:
  CachedStatement(SQLite::Statement& st, bool* in_use) : st_(&st), in_use_(in_use) {}
  explicit CachedStatement(std::unique_ptr<SQLite::Statement> owned)
      : st_(owned.get()), owned_(std::move(owned)) {}
  CachedStatement(CachedStatement&& other) noexcept
      : st_(std::exchange(other.st_, nullptr)),
        in_use_(std::exchange(other.in_use_, nullptr)),
        owned_(std::move(other.owned_)) {}
  CachedStatement(const CachedStatement&) = delete;
  CachedStatement& operator=(const CachedStatement&) = delete;
  CachedStatement& operator=(CachedStatement&&) = delete;
  ~CachedStatement();

  template <typename... A>
  void bind(A&&... args) {
    st_->bind(std::forward<A>(args)...);
  }
  int exec() { return st_->exec(); }
  bool executeStep() { return st_->executeStep(); }
  template <typename K>
  SQLite::Column getColumn(K key) const {
    return st_->getColumn(key);
  }
  operator SQLite::Statement&() { return *st_; }  // NOLINT(google-explicit-constructor)

 private:
  SQLite::Statement* st_;
  bool* in_use_ = nullptr;
  std::unique_ptr<SQLite::Statement> owned_;
};

struct StatementCounts {
  std::atomic<std::int64_t> prepared{0};  // SQL compiled: cache misses and nested uses
  std::atomic<std::int64_t> reused{0};    // cache hits
};

class Connection : public SQLite::Database {
 public:
  using SQLite::Database::Database;
  static constexpr std::size_t kDefaultCapacity = 64;

  // The statement for `sql`, compiled on first use and kept (see the file comment).
  CachedStatement prepare(const std::string& sql);
  const StatementCounts& counts() const { return counts_; }
  std::size_t cached() const { return cache_.size(); }
  void set_capacity(std::size_t n) { capacity_ = n < 1 ? 1 : n; }

 private:
  struct Entry {
    std::unique_ptr<SQLite::Statement> st;
    bool in_use = false;
    std::list<const std::string*>::iterator lru;
  };
  void evict_one();

  std::unordered_map<std::string, Entry> cache_;
  std::list<const std::string*> lru_;  // keys of cache_, most recently used first
  std::size_t capacity_ = kDefaultCapacity;
  StatementCounts counts_;
};

}  // namespace berth::store::internal
