// The connection's prepared-statement cache (statement_cache.h).
#include "store/statement_cache.h"

namespace berth::store::internal {

CachedStatement::~CachedStatement() {
  if (st_ == nullptr) return;
  // tryReset: sqlite3_reset repeats the last step's error, which the caller already saw.
  st_->tryReset();
  try {
    st_->clearBindings();  // bound text (a sealed credential, a hash) does not linger
  } catch (...) {          // sqlite3_clear_bindings cannot fail; SQLiteCpp still declares a throw
  }
  if (in_use_ != nullptr) *in_use_ = false;
}

CachedStatement Connection::prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    Entry& e = it->second;
    if (e.in_use) {
      counts_.prepared.fetch_add(1, std::memory_order_relaxed);
      return CachedStatement(std::make_unique<SQLite::Statement>(*this, sql));
    }
    counts_.reused.fetch_add(1, std::memory_order_relaxed);
    lru_.splice(lru_.begin(), lru_, e.lru);
    e.in_use = true;
    return CachedStatement(*e.st, &e.in_use);
  }
  // Compile before touching the cache: a syntax error (a bug) must leave it as it was.
  auto st = std::make_unique<SQLite::Statement>(*this, sql);
  counts_.prepared.fetch_add(1, std::memory_order_relaxed);
  // SQLite recompiles a cached statement after a schema change, but SQLiteCpp keeps the column
  // count and names it read at construction: a statement whose columns a schema change can
  // alter (`*`) would be read with stale ones. Such SQL is compiled on every use instead.
  if (sql.find('*') != std::string::npos && sql.find("count(*)") == std::string::npos) {
    return CachedStatement(std::move(st));
  }
  if (cache_.size() >= capacity_) evict_one();
  if (cache_.size() >= capacity_) return CachedStatement(std::move(st));  // all in use
  auto [pos, inserted] = cache_.emplace(sql, Entry{std::move(st), true, {}});
  (void)inserted;
  lru_.push_front(&pos->first);
  pos->second.lru = lru_.begin();
  return CachedStatement(*pos->second.st, &pos->second.in_use);
}

void Connection::evict_one() {
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    auto found = cache_.find(**it);
    if (found->second.in_use) continue;
    lru_.erase(std::next(it).base());
    cache_.erase(found);
    return;
  }
}

}  // namespace berth::store::internal
