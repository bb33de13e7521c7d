// The store connection's prepared-statement cache (src/store/statement_cache.h) on an in-memory
// database: statements are compiled once and reused, come back reset with no bindings, stay
// correct across a schema change, a failed step and a rollback, and the cache stays bounded.
#include <sqlite3.h>

#include <string>

#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>

#include "store/statement_cache.h"

using berth::store::internal::CachedStatement;
using berth::store::internal::Connection;

namespace {

std::int64_t prepared(const Connection& c) { return c.counts().prepared.load(); }
std::int64_t reused(const Connection& c) { return c.counts().reused.load(); }

// How many of the connection's statements are stepped and not yet reset (each holds a read
// snapshot open in WAL mode).
int busy_statements(Connection& c) {
  int n = 0;
  for (sqlite3_stmt* st = sqlite3_next_stmt(c.getHandle(), nullptr); st != nullptr;
       st = sqlite3_next_stmt(c.getHandle(), st)) {
    if (sqlite3_stmt_busy(st) != 0) ++n;
  }
  return n;
}

std::int64_t count_rows(Connection& c) {
  auto st = c.prepare("SELECT count(*) FROM t");
  REQUIRE(st.executeStep());
  return st.getColumn(0).getInt64();
}

void insert(Connection& c, int k, const std::string& v) {
  auto ins = c.prepare("INSERT INTO t (k, v) VALUES (:k, :v)");
  ins.bind(":k", k);
  ins.bind(":v", v);
  ins.exec();
}

}  // namespace

TEST_CASE("a statement is compiled once and reused on every later call", "[store][cache]") {
  Connection c(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  c.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
  for (int i = 0; i < 20; ++i) insert(c, i, "v" + std::to_string(i));
  CHECK(count_rows(c) == 20);
  // Two distinct SQL texts: compiled once each, every other use a cache hit.
  CHECK(prepared(c) == 2);
  CHECK(reused(c) == 19);
  CHECK(c.cached() == 2);
}

TEST_CASE("a reused statement comes back reset and with no bindings left", "[store][cache]") {
  Connection c(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  c.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
  insert(c, 1, "one");
  insert(c, 2, "two");
  const std::string sql = "SELECT v FROM t WHERE k >= :k ORDER BY k";
  {
    auto st = c.prepare(sql);
    st.bind(":k", 1);
    REQUIRE(st.executeStep());  // stepped once, not to the end: the read stays open...
    CHECK(st.getColumn(0).getString() == "one");
    CHECK(busy_statements(c) == 1);
  }
  auto again = c.prepare(sql);
  // ... until the use ends: reset (no snapshot held), and the old binding is gone (NULL matches
  // no row), so a value bound for one call can neither leak into nor linger after the next.
  CHECK(busy_statements(c) == 0);
  CHECK_FALSE(again.executeStep());
  CHECK(reused(c) >= 1);
}

TEST_CASE("the same statement borrowed twice at once gets a second, uncached one",
          "[store][cache]") {
  Connection c(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  c.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
  insert(c, 1, "one");
  insert(c, 2, "two");
  const std::string sql = "SELECT v FROM t WHERE k = :k";
  auto outer = c.prepare(sql);
  outer.bind(":k", 1);
  {
    auto inner = c.prepare(sql);
    inner.bind(":k", 2);
    REQUIRE(inner.executeStep());
    CHECK(inner.getColumn(0).getString() == "two");
  }
  REQUIRE(outer.executeStep());
  CHECK(outer.getColumn(0).getString() == "one");
  CHECK(c.cached() == 2);  // the INSERT and the outer SELECT; the nested copy was not kept
}

TEST_CASE("a cached statement stays correct after the schema changes under it", "[store][cache]") {
  Connection c(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  c.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
  insert(c, 1, "one");
  const std::string sql = "SELECT v, k FROM t ORDER BY k";
  auto first = [&] {
    auto st = c.prepare(sql);
    REQUIRE(st.executeStep());
    return st.getColumn(0).getString() + "/" + std::to_string(st.getColumn(1).getInt());
  };
  CHECK(first() == "one/1");
  const std::int64_t compiled = prepared(c);
  // A migration adds a column before the ones the statement reads: SQLite recompiles the cached
  // statement on its next step (sqlite3_prepare_v2 statements re-prepare on SQLITE_SCHEMA) and
  // it still reads v and k, not the new column's position.
  c.exec("ALTER TABLE t RENAME TO t_old");
  c.exec("CREATE TABLE t (extra TEXT DEFAULT 'x', k INTEGER PRIMARY KEY, v TEXT)");
  c.exec("INSERT INTO t (k, v) SELECT k, v FROM t_old");
  CHECK(first() == "one/1");
  // A table dropped under a cached statement fails that use as an error, not a crash, and the
  // statement works again once the table is back.
  c.exec("DROP TABLE t");
  {
    auto st = c.prepare(sql);
    CHECK_THROWS_AS(st.executeStep(), SQLite::Exception);
  }
  c.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
  insert(c, 7, "seven");
  CHECK(first() == "seven/7");
  CHECK(prepared(c) == compiled);  // recompiled by SQLite inside the cached statements
}

TEST_CASE("SQL whose columns a schema change can alter is never cached", "[store][cache]") {
  Connection c(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  c.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
  insert(c, 1, "one");
  auto columns = [&] {
    auto st = c.prepare("SELECT * FROM t");
    REQUIRE(st.executeStep());
    return static_cast<SQLite::Statement&>(st).getColumnCount();
  };
  CHECK(columns() == 2);
  c.exec("ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'x'");
  // Cached, SQLiteCpp would still report 2 columns of the first compile.
  CHECK(columns() == 3);
  CHECK(c.cached() == 1);  // only the INSERT
  // count(*) has one column whatever the table holds: cached.
  CHECK(count_rows(c) == 1);
  CHECK(c.cached() == 2);
}

TEST_CASE("a cached statement is safe to reuse after a failed step and after a rollback",
          "[store][cache]") {
  Connection c(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  c.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
  insert(c, 1, "one");
  // A constraint violation: the statement that hit it goes back to the cache reset.
  CHECK_THROWS_AS(insert(c, 1, "again"), SQLite::Exception);
  insert(c, 2, "two");
  CHECK(count_rows(c) == 2);
  // Writes through cached statements inside a transaction that is rolled back are undone, and
  // the same statements then write again outside it.
  c.exec("BEGIN IMMEDIATE");
  insert(c, 3, "three");
  CHECK(count_rows(c) == 3);
  c.exec("ROLLBACK");
  CHECK(count_rows(c) == 2);
  insert(c, 3, "three");
  CHECK(count_rows(c) == 3);
  // A savepoint rolled back (how one write of a group commit is undone) likewise.
  c.exec("BEGIN IMMEDIATE");
  c.exec("SAVEPOINT w");
  insert(c, 4, "four");
  c.exec("ROLLBACK TO w");
  c.exec("RELEASE w");
  insert(c, 5, "five");
  c.exec("COMMIT");
  CHECK(count_rows(c) == 4);
  CHECK(prepared(c) == 2);
}

TEST_CASE("the cache holds at most its capacity and evicts the least recently used",
          "[store][cache]") {
  Connection c(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  c.set_capacity(3);
  auto select = [&](int n) {
    auto st = c.prepare("SELECT " + std::to_string(n));
    REQUIRE(st.executeStep());
    CHECK(st.getColumn(0).getInt() == n);
  };
  select(1);
  select(2);
  select(3);
  select(1);  // 1 is now the most recently used; 2 the least
  CHECK(prepared(c) == 3);
  select(4);  // evicts 2
  CHECK(c.cached() == 3);
  select(1);
  select(3);
  CHECK(prepared(c) == 4);  // 1 and 3 were kept
  select(2);
  CHECK(prepared(c) == 5);  // 2 was not
  CHECK(c.cached() == 3);
  // Statements in use are never evicted: with every entry borrowed, a new one is uncached.
  auto a = c.prepare("SELECT 2");
  auto b = c.prepare("SELECT 3");
  auto d = c.prepare("SELECT 1");
  select(9);
  CHECK(c.cached() == 3);
  select(9);
  CHECK(prepared(c) == 7);
}
