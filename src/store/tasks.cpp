// The tasks table: the outbox of work for agents. Tasks are inserted only with the change that
// causes them (a Change); the runtime moves them queued -> sent -> done; finished ones beyond
// the newest few per service are deleted (docs/store.md, "Bounded history").
#include <string>
#include <vector>

#include "store/connection.h"
#include "store/tables.h"

namespace berth::store {
namespace {

using core::Task;
using internal::Context;

Result<Task> read_task(SQLite::Statement& st) {
  Task t;
  t.id = st.getColumn("id").getString();
  t.service_id = st.getColumn("service_id").getString();
  t.revision_id = st.getColumn("revision_id").getString();
  auto kind = core::parse_task_kind(st.getColumn("kind").getString());
  auto state = core::parse_task_state(st.getColumn("state").getString());
  if (!kind || !state) {
    return make_error(ErrorCode::kDataLoss, "a stored task has an unknown kind or state");
  }
  t.kind = *kind;
  t.state = *state;
  t.agent = st.getColumn("agent").getString();
  t.attempts = st.getColumn("attempts").getInt();
  t.created_at = st.getColumn("created_at").getInt64();
  t.updated_at = st.getColumn("updated_at").getInt64();
  return t;
}

// Finished tasks are history nobody reads; the newest `keep` stay so that a late write for a
// task that just finished still learns it is done rather than unknown.
void prune_done(internal::Connection& db, const std::string& service_id, int keep) {
  auto prune = db.prepare(
      "DELETE FROM tasks WHERE service_id = :service_id AND state = 'done' "
      "AND id NOT IN (SELECT id FROM tasks WHERE service_id = :service_id "
      "AND state = 'done' ORDER BY updated_at DESC, rowid DESC "
      "LIMIT :keep)");
  prune.bind(":service_id", service_id);
  prune.bind(":keep", keep);
  prune.exec();
}

}  // namespace

namespace internal {

Status insert_task(internal::Connection& db, const Task& t) {
  auto ins = db.prepare(
      "INSERT INTO tasks (id, service_id, revision_id, kind, state, agent, "
      "attempts, created_at, updated_at) VALUES (:id, :service_id, "
      ":revision_id, :kind, :state, :agent, :attempts, :created_at, "
      ":updated_at)");
  ins.bind(":id", t.id);
  ins.bind(":service_id", t.service_id);
  ins.bind(":revision_id", t.revision_id);
  ins.bind(":kind", core::to_string(t.kind));
  ins.bind(":state", core::to_string(t.state));
  ins.bind(":agent", t.agent);
  ins.bind(":attempts", t.attempts);
  ins.bind(":created_at", static_cast<std::int64_t>(t.created_at));
  ins.bind(":updated_at", static_cast<std::int64_t>(t.updated_at));
  ins.exec();
  return Status::Ok();
}

}  // namespace internal

Result<std::vector<Task>> SqliteStore::pending_tasks(std::string_view service_id) {
  return impl_->locked(Context{}, [&](internal::Connection& db) -> Result<std::vector<Task>> {
    auto st = db.prepare(
        "SELECT id, service_id, revision_id, kind, state, agent, attempts, "
        "created_at, updated_at FROM tasks WHERE service_id = :service_id "
        "AND state != 'done' ORDER BY created_at, id");
    st.bind(":service_id", std::string(service_id));
    std::vector<Task> out;
    while (st.executeStep()) {
      auto t = read_task(st);
      if (!t.ok()) return t.take_error();
      out.push_back(std::move(t).value());
    }
    return out;
  });
}

Status SqliteStore::update_task(const Task& task) {
  return impl_->transaction(Context{}, [&](internal::Connection& db) -> Status {
    auto up = db.prepare(
        "UPDATE tasks SET state = :state, agent = :agent, attempts = :attempts, "
        "updated_at = :updated_at "
        "WHERE id = :id AND service_id = :service_id AND state != 'done'");
    up.bind(":state", core::to_string(task.state));
    up.bind(":agent", task.agent);
    up.bind(":attempts", task.attempts);
    up.bind(":updated_at", static_cast<std::int64_t>(task.updated_at));
    up.bind(":id", task.id);
    up.bind(":service_id", task.service_id);
    if (up.exec() == 0) {
      auto probe = db.prepare("SELECT 1 FROM tasks WHERE id = :id AND service_id = :service_id");
      probe.bind(":id", task.id);
      probe.bind(":service_id", task.service_id);
      if (probe.executeStep()) {
        return make_error(ErrorCode::kFailedPrecondition, "the task is already done");
      }
      return make_error(ErrorCode::kNotFound, "the task does not exist");
    }
    if (task.state == core::TaskState::kDone && impl_->options.keep_done_tasks > 0) {
      prune_done(db, task.service_id, impl_->options.keep_done_tasks);
    }
    return Status::Ok();
  });
}

}  // namespace berth::store
