// The store's group commit and statement cache against real database files: concurrent writes
// share commits, each writer still gets its own outcome, an acknowledged write survives kill -9,
// and repeated reads compile no SQL. Counts come from SqliteStore::stats(); a writer is held in
// its commit with set_write_batch_hook so that the others queue behind it deterministically.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>

#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "store/store_testing.h"
#include "support/wait.h"

using namespace berth;
using namespace berth::store_testing;
using namespace std::chrono_literals;

namespace {

// Holds the first group commit (the "holder" write) inside the hook until release(), so that the
// writes started meanwhile queue behind it and form the next group.
struct GcGate {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool released = false;
  std::vector<std::size_t> batches;  // the size of every group, in order

  void install(SqliteStore& s) {
    s.set_write_batch_hook([this](std::size_t n) {
      std::unique_lock lock(mu);
      batches.push_back(n);
      if (batches.size() == 1) {
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return released; });
      }
    });
  }
  bool wait_entered() {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 30s, [&] { return entered; });
  }
  void release() {
    std::lock_guard lock(mu);
    released = true;
    cv.notify_all();
  }
  std::vector<std::size_t> seen() {
    std::lock_guard lock(mu);
    return batches;
  }
};

// A redeploy of `c`'s service: new image, generation + 1, a new revision and deploy task.
core::Change gc_redeploy(const core::Change& c, const std::string& image, int number) {
  core::Change p;
  p.service = c.service;
  p.service.generation = c.service.generation + 1;
  p.service.config.image_ref = image;
  core::Revision r = *c.revision;
  r.id = crypto::random_uuid();
  r.number = number;
  r.config = p.service.config;
  p.service.desired_deployment_id = r.id;
  p.revision = r;
  core::Task t = *c.task;
  t.id = crypto::random_uuid();
  t.revision_id = r.id;
  p.task = t;
  return p;
}

}  // namespace

TEST_CASE("repeated reads and writes compile no SQL after their first call", "[store][cache]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  const std::string acct = add_account(*s, "alice");
  core::Change c = new_service(acct, "api");
  REQUIRE(s->create_service(c).ok());
  REQUIRE(s->get_service(acct, c.service.id).ok());  // warms the read's statements
  REQUIRE(s->next_revision_number(c.service.id).ok());
  REQUIRE(s->get_credential(c.service.id).ok());
  const store::StoreStats before = s->stats();
  for (int i = 0; i < 50; ++i) {
    REQUIRE(s->get_service(acct, c.service.id).ok());
    REQUIRE(s->next_revision_number(c.service.id).ok());
    REQUIRE(s->get_credential(c.service.id).ok());
  }
  const store::StoreStats after = s->stats();
  CHECK(after.statements_prepared == before.statements_prepared);
  CHECK(after.statements_reused >= before.statements_reused + 150);

  // A write path too: the second redeploy compiles nothing the first did not.
  REQUIRE(s->apply_change(gc_redeploy(c, "ghcr.io/acme/api:2", 2), 1).ok());
  c.service.generation = 2;
  const std::int64_t warm = s->stats().statements_prepared;
  REQUIRE(s->apply_change(gc_redeploy(c, "ghcr.io/acme/api:3", 3), 2).ok());
  CHECK(s->stats().statements_prepared == warm);
  CHECK(s->load_service(c.service.id)->config.image_ref == "ghcr.io/acme/api:3");
}

TEST_CASE("writes that queue behind a commit are committed together, each with its own result",
          "[store][group-commit]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  const std::string acct = add_account(*s, "alice");
  constexpr int kWriters = 8;
  std::vector<core::Change> services;
  for (int i = 0; i < kWriters + 1; ++i) {
    services.push_back(new_service(acct, "svc-" + std::to_string(i)));
    REQUIRE(s->create_service(services.back()).ok());
  }
  GcGate gate;
  gate.install(*s);
  const store::StoreStats before = s->stats();

  Status holder_status;
  std::thread holder([&] {
    holder_status = s->apply_change(gc_redeploy(services[0], "ghcr.io/acme/held:2", 2), 1);
  });
  REQUIRE(gate.wait_entered());

  // Queued behind the held commit: six good redeploys, one against a stale generation (the
  // store returns a conflict) and one new service with a taken name (SQLite throws a UNIQUE
  // violation half-way through the write). Only those two may fail.
  std::vector<Status> results(kWriters);
  std::vector<std::thread> writers;
  const core::Change dup = new_service(acct, "svc-3");
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] {
      const core::Change& c = services[i + 1];
      if (i == 2) {
        results[i] = s->apply_change(gc_redeploy(c, "ghcr.io/acme/stale:2", 2), 7);
      } else if (i == 5) {
        results[i] = s->create_service(dup);
      } else {
        results[i] = s->apply_change(gc_redeploy(c, "ghcr.io/acme/new:2", 2), 1);
      }
    });
  }
  REQUIRE(berth::testing::wait_until([&] { return s->stats().writes_waiting == kWriters; }, 30s));
  gate.release();
  holder.join();
  for (auto& w : writers) w.join();

  REQUIRE(holder_status.ok());
  for (int i = 0; i < kWriters; ++i) {
    INFO("writer " << i);
    if (i == 2) {
      REQUIRE_FALSE(results[i].ok());
      CHECK(results[i].error().code == ErrorCode::kConflict);
      CHECK(results[i].error().message ==
            "the app service was changed concurrently; re-read and retry");
    } else if (i == 5) {
      REQUIRE_FALSE(results[i].ok());
      CHECK(results[i].error().code == ErrorCode::kConflict);
      CHECK(results[i].error().message == "an app service with this name already exists");
    } else {
      CHECK(results[i].ok());
    }
  }
  // Two commits for nine writes: the held one, then the eight that queued in one group.
  const store::StoreStats after = s->stats();
  CHECK(gate.seen() == std::vector<std::size_t>{1, kWriters});
  CHECK(after.commits - before.commits == 2);
  CHECK(after.writes_committed - before.writes_committed == 1 + kWriters - 2);
  CHECK(after.largest_batch == kWriters - 2);
  CHECK(after.writes_waiting == 0);

  // What each writer was told is what the database holds, after a reopen.
  gate.release();
  s.reset();
  auto r = open_ok(tmp.data());
  CHECK(r->load_service(services[0].service.id)->config.image_ref == "ghcr.io/acme/held:2");
  for (int i = 0; i < kWriters; ++i) {
    INFO("writer " << i);
    const core::Change& c = services[i + 1];
    auto svc = r->load_service(c.service.id);
    REQUIRE(svc.ok());
    auto revs = r->list_revisions(c.service.id, true);
    REQUIRE(revs.ok());
    if (i == 2 || i == 5) {  // refused, or its writer created another service
      CHECK(svc->config.image_ref == c.service.config.image_ref);
      CHECK(svc->generation == 1);
      CHECK(revs->size() == 1);
    } else {
      CHECK(svc->config.image_ref == "ghcr.io/acme/new:2");
      CHECK(svc->generation == 2);
      CHECK(revs->size() == 2);
    }
  }
  // The failed create left nothing behind: not its service, revision, credential or task.
  CHECK(r->load_service(dup.service.id).error().code == ErrorCode::kNotFound);
  CHECK(r->get_revision(dup.service.id, dup.revision->id).error().code == ErrorCode::kNotFound);
  CHECK_FALSE(r->get_credential(dup.service.id)->has_value());
  CHECK(r->list_service_ids()->size() == kWriters + 1);
}

TEST_CASE("a group in which every write fails commits nothing and fails each one",
          "[store][group-commit]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  const std::string acct = add_account(*s, "alice");
  core::Change c = new_service(acct, "api");
  REQUIRE(s->create_service(c).ok());
  GcGate gate;
  gate.install(*s);
  const store::StoreStats before = s->stats();
  Status held;
  std::thread holder([&] { held = s->apply_change(gc_redeploy(c, "ghcr.io/acme/api:2", 2), 1); });
  REQUIRE(gate.wait_entered());
  std::vector<Status> results(3);
  std::vector<std::thread> writers;
  for (int i = 0; i < 3; ++i) {
    // All against generation 1, which the held write moves to 2.
    writers.emplace_back([&, i] {
      results[i] =
          s->apply_change(gc_redeploy(c, "ghcr.io/acme/late:" + std::to_string(i), 2 + i), 1);
    });
  }
  REQUIRE(berth::testing::wait_until([&] { return s->stats().writes_waiting == 3; }, 30s));
  gate.release();
  holder.join();
  for (auto& w : writers) w.join();
  REQUIRE(held.ok());
  for (const Status& st : results) {
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == ErrorCode::kConflict);
  }
  CHECK(s->stats().commits - before.commits == 1);
  CHECK(s->load_service(c.service.id)->config.image_ref == "ghcr.io/acme/api:2");
  CHECK(s->list_revisions(c.service.id, true)->size() == 2);
  // And the store writes normally afterwards.
  c.service.generation = 2;
  CHECK(s->apply_change(gc_redeploy(c, "ghcr.io/acme/api:3", 3), 2).ok());
}

TEST_CASE("a full disk in the middle of a group fails only the writes it reached, honestly",
          "[store][group-commit][errors]") {
  TempDir tmp;
  std::string acct;
  {
    auto s = open_ok(tmp.data());
    acct = add_account(*s, "alice");
  }
  StoreOptions o;
  o.max_page_count = 60;
  auto s = open_ok(tmp.data(), o);
  GcGate gate;
  gate.install(*s);
  core::Change first = new_service(acct, "first");
  Status held;
  std::thread holder([&] { held = s->create_service(first); });
  REQUIRE(gate.wait_entered());
  // Far more than fits in 60 pages: SQLite reports SQLITE_FULL part-way through the group.
  constexpr int kWriters = 24;
  std::vector<core::Change> changes;
  for (int i = 0; i < kWriters; ++i) {
    changes.push_back(new_service(acct, "svc-" + std::to_string(i)));
    changes.back().service.config.env["BIG"] = std::string(20000, 'z');
  }
  std::vector<Status> results(kWriters);
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] { results[i] = s->create_service(changes[i]); });
  }
  REQUIRE(berth::testing::wait_until([&] { return s->stats().writes_waiting == kWriters; }, 30s));
  gate.release();
  holder.join();
  for (auto& w : writers) w.join();
  REQUIRE(held.ok());
  int ok = 0;
  int full = 0;
  for (const Status& st : results) {
    if (st.ok()) {
      ++ok;
    } else {
      CHECK(st.error().code == ErrorCode::kResourceExhausted);
      ++full;
    }
  }
  CHECK(full > 0);
  // Every write told ok is there after a reopen, and no write told it failed is.
  s.reset();
  auto r = open_ok(tmp.data());
  for (int i = 0; i < kWriters; ++i) {
    INFO("writer " << i << ": " << (results[i].ok() ? "ok" : results[i].error().message));
    auto svc = r->load_service(changes[i].service.id);
    CHECK(svc.ok() == results[i].ok());
    if (results[i].ok()) CHECK(r->list_revisions(changes[i].service.id, true)->size() == 1);
  }
  CHECK(static_cast<int>(r->list_service_ids()->size()) == ok + 1);
  {
    SQLite::Database db((tmp.data() / "berth.db").string(), SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("PRAGMA integrity_check").getString() == "ok");
  }
}

TEST_CASE("kill -9 right after acknowledgements from concurrent writers loses none of them",
          "[store][group-commit][crash]") {
  TempDir tmp;
  std::string acct;
  {
    auto s = open_ok(tmp.data());
    acct = add_account(*s, "alice");
  }
  // Four writer threads create services; each acknowledges a service as soon as create_service
  // returns ok, with the largest group so far ("id largest"). Killed once enough writes are
  // acknowledged and at least one commit carried several of them; the child is then mid-write
  // on its other threads.
  auto largest_of = [](const std::string& line) {
    return std::stoll(line.substr(line.find(' ') + 1));
  };
  const std::vector<std::string> lines = acks_until_killed(
      [&](const Ack& ack) {
        auto opened = SqliteStore::open(tmp.data());
        if (!opened.ok()) ::_exit(3);
        auto& s = *opened.value();
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
          threads.emplace_back([&, t] {
            for (int i = 0;; ++i) {
              core::Change c = new_service(acct, "w" + std::to_string(t) + "-" + std::to_string(i));
              if (!s.create_service(c).ok()) ::_exit(4);
              ack(c.service.id + " " + std::to_string(s.stats().largest_batch));
            }
          });
        }
        for (auto& th : threads) th.join();
      },
      [&](const std::vector<std::string>& so_far) {
        if (so_far.size() > 2000) return true;  // bound: groups never formed (checked below)
        std::int64_t most = 0;
        for (const auto& l : so_far) most = std::max<std::int64_t>(most, largest_of(l));
        return so_far.size() >= 40 && most >= 2;
      });
  std::set<std::string> acked;
  std::int64_t largest = 0;
  for (const auto& line : lines) {
    acked.insert(line.substr(0, line.find(' ')));
    largest = std::max<std::int64_t>(largest, largest_of(line));
  }
  CHECK(largest >= 2);  // the writes really were group-committed

  {
    SQLite::Database db((tmp.data() / "berth.db").string(), SQLite::OPEN_READWRITE);
    CHECK(db.execAndGet("PRAGMA integrity_check").getString() == "ok");
  }
  auto s = open_ok(tmp.data());
  auto ids = s->list_service_ids();
  REQUIRE(ids.ok());
  for (const auto& id : acked) {
    INFO("acknowledged " << id);
    REQUIRE(s->load_service(id).ok());
    CHECK(s->list_revisions(id, true)->size() == 1);
    CHECK(unseal(*s, id)->reveal() == kCanary);
  }
  // Each service that exists is whole: its revision was written in the same write.
  for (const auto& id : *ids) CHECK(s->list_revisions(id, true)->size() == 1);
  CHECK(ids->size() >= acked.size());
}

TEST_CASE("read_for_change returns the service, its credential and the next revision number",
          "[store][cache]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  const std::string acct = add_account(*s, "alice");
  const std::string other = add_account(*s, "bob");
  core::Change c = new_service(acct, "api");
  REQUIRE(s->create_service(c).ok());
  REQUIRE(s->apply_change(gc_redeploy(c, "ghcr.io/acme/api:2", 2), 1).ok());
  auto basis = s->read_for_change(acct, c.service.id);
  REQUIRE(basis.ok());
  CHECK(basis->service.id == c.service.id);
  CHECK(basis->service.generation == 2);
  CHECK(basis->service.config.image_ref == "ghcr.io/acme/api:2");
  REQUIRE(basis->credential.has_value());
  CHECK(basis->credential->registry_host == "ghcr.io");
  CHECK(basis->credential->username == "bot");
  CHECK(basis->next_revision_number == 3);
  // The same answers as the three separate reads.
  CHECK(*s->next_revision_number(c.service.id) == basis->next_revision_number);
  CHECK(s->get_service(acct, c.service.id)->updated_at == basis->service.updated_at);
  // Scoped to the account, like get_service.
  CHECK(s->read_for_change(other, c.service.id).error().code == ErrorCode::kNotFound);
  CHECK(s->read_for_change(acct, "no-such-id").error().code == ErrorCode::kNotFound);
  // A service without a credential has none.
  core::Change pub = new_service(acct, "public", "");
  REQUIRE(s->create_service(pub).ok());
  auto open = s->read_for_change(acct, pub.service.id);
  REQUIRE(open.ok());
  CHECK_FALSE(open->credential.has_value());
  CHECK(open->next_revision_number == 2);
}
