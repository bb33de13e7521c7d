// Bounded history against a real database file: revisions that never served and finished tasks
// are pruned, so a service that fails to deploy for weeks, or restarts thousands of times,
// keeps a small, constant number of rows.
#include <string>

#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>

#include "core/ports.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "store/store_testing.h"

using namespace berth;
using namespace berth::store_testing;

namespace {

int count_rows(const TempDir& tmp, const std::string& sql) {
  SQLite::Database db((tmp.data() / "berth.db").string(), SQLite::OPEN_READONLY);
  return db.execAndGet(sql).getInt();
}

// Queues revision `number` the way a PATCH does and returns it (pending).
core::Revision queue_revision(SqliteStore& s, const std::string& sid, std::int64_t number,
                              bool make_desired = true) {
  core::AppService svc = *s.load_service(sid);
  core::Change c;
  c.service = svc;
  c.service.generation = svc.generation + 1;
  c.service.status = core::ServiceStatus::kPendingModification;
  core::Revision r;
  r.id = crypto::random_uuid();
  r.service_id = sid;
  r.number = number;
  r.config = svc.config;
  r.config.image_ref = "ghcr.io/acme/api:" + std::to_string(number);
  r.registry_host = svc.registry_host;
  r.reason = "configuration update";
  r.created_at = 1000 + number;
  c.revision = r;
  if (make_desired) c.service.desired_deployment_id = r.id;
  REQUIRE(s.apply_change(c, svc.generation).ok());
  return r;
}

void finish(SqliteStore& s, core::Revision r, core::RevisionState state, int keep) {
  r.state = state;
  r.finished_at = r.created_at + 1;
  core::AppService svc = *s.load_service(r.service_id);
  svc.status = state == core::RevisionState::kSucceeded ? core::ServiceStatus::kRunning
                                                        : core::ServiceStatus::kFailed;
  if (state == core::RevisionState::kSucceeded) svc.current_deployment_id = r.id;
  REQUIRE(s.record_outcome(r, svc, keep).ok());
}

}  // namespace

TEST_CASE("A hundred failed deploys leave at most the kept count of failed revisions",
          "[store][history]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  core::Change create = new_service(add_account(*s, "alice"), "api");
  REQUIRE(s->create_service(create).ok());
  const std::string sid = create.service.id;
  constexpr int kKeep = 5;
  finish(*s, *create.revision, core::RevisionState::kSucceeded, kKeep);

  std::string last;
  for (int n = 2; n <= 101; ++n) {
    core::Revision r = queue_revision(*s, sid, n);
    finish(*s, r, core::RevisionState::kFailed, kKeep);
    last = r.id;
  }

  auto all = s->list_revisions(sid, true);
  REQUIRE(all.ok());
  int failed = 0;
  for (const auto& r : *all) {
    if (r.state == core::RevisionState::kFailed) {
      ++failed;
      CHECK(r.number > 101 - kKeep);  // the newest ones are kept
    }
  }
  CHECK(failed == kKeep);
  CHECK(count_rows(tmp, "SELECT count(*) FROM revisions WHERE state = 'failed'") == kKeep);
  // The revision that serves and the one last asked for are still there.
  CHECK(s->get_revision(sid, create.revision->id).ok());
  CHECK(s->get_revision(sid, last).ok());
  // Numbers are never reused after pruning.
  CHECK(*s->next_revision_number(sid) == 102);
}

TEST_CASE("The current and desired revisions are never pruned, however old", "[store][history]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  core::Change create = new_service(add_account(*s, "alice"), "api");
  REQUIRE(s->create_service(create).ok());
  const std::string sid = create.service.id;
  finish(*s, *create.revision, core::RevisionState::kSucceeded, 1);
  // Revision 2 fails and stays the desired one (a retry of it is what the user asked for)...
  core::Revision desired = queue_revision(*s, sid, 2);
  finish(*s, desired, core::RevisionState::kFailed, 1);
  // ...while newer revisions are written and fail without becoming desired.
  for (int n = 3; n <= 6; ++n) {
    finish(*s, queue_revision(*s, sid, n, false), core::RevisionState::kFailed, 1);
  }
  // And newer successes push revision 1 out of the kept succeeded ones while it still serves.
  for (int n = 7; n <= 9; ++n) {
    core::Revision r = queue_revision(*s, sid, n, false);
    r.state = core::RevisionState::kSucceeded;
    r.finished_at = r.created_at + 1;
    core::AppService svc = *s->load_service(sid);  // current stays revision 1
    REQUIRE(s->record_outcome(r, svc, 1).ok());
  }

  CHECK(s->get_revision(sid, create.revision->id).ok());
  CHECK(s->get_revision(sid, desired.id).ok());
  auto all = s->list_revisions(sid, true);
  REQUIRE(all.ok());
  // current (1), desired (2), the newest failed (6), the newest succeeded (9).
  std::vector<std::int64_t> numbers;
  for (const auto& r : *all) numbers.push_back(r.number);
  CHECK(numbers == std::vector<std::int64_t>{9, 6, 2, 1});
}

TEST_CASE("Pending revisions are never pruned", "[store][history]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  core::Change create = new_service(add_account(*s, "alice"), "api");
  REQUIRE(s->create_service(create).ok());
  const std::string sid = create.service.id;
  core::Revision waiting = queue_revision(*s, sid, 2, false);
  for (int n = 3; n <= 8; ++n) {
    finish(*s, queue_revision(*s, sid, n), core::RevisionState::kFailed, 1);
  }
  CHECK(s->get_revision(sid, create.revision->id)->state == core::RevisionState::kPending);
  CHECK(s->get_revision(sid, waiting.id)->state == core::RevisionState::kPending);
}

TEST_CASE("A thousand finished tasks do not accumulate", "[store][history]") {
  TempDir tmp;
  StoreOptions o;
  o.keep_done_tasks = 4;
  auto s = open_ok(tmp.data(), o);
  core::Change create = new_service(add_account(*s, "alice"), "api");
  REQUIRE(s->create_service(create).ok());
  const std::string sid = create.service.id;
  core::Task first = create.task.value();
  first.state = core::TaskState::kDone;
  REQUIRE(s->update_task(first).ok());

  // A restart (a task, no revision) over and over: each one is queued, sent and finished.
  core::Task last;
  for (int i = 0; i < 1000; ++i) {
    core::AppService svc = *s->load_service(sid);
    core::Change c;
    c.service = svc;
    c.service.generation = svc.generation + 1;
    core::Task t;
    t.id = crypto::random_uuid();
    t.service_id = sid;
    t.revision_id = create.revision->id;
    t.kind = core::TaskKind::kRestart;
    t.created_at = t.updated_at = 10'000 + 2 * i;
    c.task = t;
    REQUIRE(s->apply_change(c, svc.generation).ok());
    t.state = core::TaskState::kDone;
    t.updated_at += 1;
    REQUIRE(s->update_task(t).ok());
    last = t;
  }
  // One more that is still open is never pruned.
  core::AppService svc = *s->load_service(sid);
  core::Change c;
  c.service = svc;
  c.service.generation = svc.generation + 1;
  core::Task open;
  open.id = crypto::random_uuid();
  open.service_id = sid;
  open.kind = core::TaskKind::kRemove;
  open.created_at = open.updated_at = 1;  // older than every done one
  c.task = open;
  REQUIRE(s->apply_change(c, svc.generation).ok());

  CHECK(count_rows(tmp, "SELECT count(*) FROM tasks WHERE state = 'done'") <= 4);
  auto pending = s->pending_tasks(sid);
  REQUIRE(pending.ok());
  REQUIRE(pending->size() == 1);
  CHECK(pending->front().id == open.id);
  // The newest finished task is still known as done: a late "sent" mark is refused as such,
  // not mistaken for a task that never existed.
  core::Task late = last;
  late.state = core::TaskState::kSent;
  CHECK(s->update_task(late).error().code == ErrorCode::kFailedPrecondition);
}
