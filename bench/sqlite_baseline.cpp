// berth-bench-sqlite: what the disk and SQLite allow for durable single-row writes, the baseline
// of berth-bench-api's PATCH figure. A plain program on the sqlite3 C API, no berth code: it
// opens DIR/raw.db with the pragmas src/store/connection.cpp sets on the store's write connection
// (foreign_keys=ON, secure_delete=ON, journal_mode=WAL, synchronous=FULL), prepares one INSERT
// once, and runs COUNT transactions of BEGIN IMMEDIATE / one INSERT of a 512-byte row / COMMIT.
//
// Usage: berth-bench-sqlite --dir DIR --count N
// Prints one line: "transactions N seconds S per_second R". Exits non-zero on any SQLite error.
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

[[noreturn]] void fail(sqlite3* db, const char* what) {
  std::fprintf(stderr, "berth-bench-sqlite: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  std::exit(1);
}

void exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(db, sql);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  long count = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--dir")
      dir = argv[i + 1];
    else if (a == "--count")
      count = std::atol(argv[i + 1]);
  }
  if (dir.empty() || count <= 0) {
    std::fprintf(stderr, "usage: berth-bench-sqlite --dir DIR --count N\n");
    return 2;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open((dir + "/raw.db").c_str(), &db) != SQLITE_OK) fail(db, "open");
  exec(db, "PRAGMA foreign_keys = ON");
  exec(db, "PRAGMA secure_delete = ON");
  exec(db, "PRAGMA journal_mode = WAL");
  exec(db, "PRAGMA synchronous = FULL");
  exec(db, "CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  sqlite3_stmt* ins = nullptr;
  if (sqlite3_prepare_v2(db, "INSERT INTO rows (body) VALUES (?1)", -1, &ins, nullptr) !=
      SQLITE_OK) {
    fail(db, "prepare");
  }
  const std::string body(512, 'x');  // about a revision row's size
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < count; ++i) {
    exec(db, "BEGIN IMMEDIATE");
    sqlite3_bind_text(ins, 1, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) fail(db, "insert");
    sqlite3_reset(ins);
    exec(db, "COMMIT");
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sqlite3_finalize(ins);
  sqlite3_close(db);
  std::printf("transactions %ld seconds %.6f per_second %.3f\n", count, s, count / s);
  return 0;
}
