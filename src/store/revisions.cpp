// The revisions table: history reads, inserts (through a Change), rollout outcomes and the
// pruning that keeps the history bounded (docs/store.md, "Bounded history").
#include <string>
#include <vector>

#include "store/codec.h"
#include "store/connection.h"
#include "store/tables.h"

namespace berth::store {
namespace {

using core::Revision;
using internal::Context;

constexpr const char* kRevisionColumns =
    "id, service_id, number, config, registry_host, reason, state, image_digest, deploy_logs, "
    "created_at, finished_at";

Result<Revision> read_revision(SQLite::Statement& st) {
  Revision r;
  r.id = st.getColumn("id").getString();
  r.service_id = st.getColumn("service_id").getString();
  r.number = st.getColumn("number").getInt64();
  auto config = decode_config(st.getColumn("config").getString());
  if (!config.ok()) return config.take_error();
  r.config = std::move(config).value();
  r.registry_host = st.getColumn("registry_host").getString();
  r.reason = st.getColumn("reason").getString();
  auto state = core::parse_revision_state(st.getColumn("state").getString());
  if (!state) return make_error(ErrorCode::kDataLoss, "a stored revision has an unknown state");
  r.state = *state;
  r.image_digest = st.getColumn("image_digest").getString();
  auto logs = decode_deploy_logs(st.getColumn("deploy_logs").getString());
  if (!logs.ok()) return logs.take_error();
  r.deploy_logs = std::move(logs).value();
  r.created_at = st.getColumn("created_at").getInt64();
  r.finished_at = st.getColumn("finished_at").getInt64();
  return r;
}

// The two histories a service keeps, each bounded on its own: revisions that served (rollback
// targets) and revisions that finished without serving. `superseded` is listed for the runtime
// that marks a revision replaced before it ran; a state the store does not know is never pruned.
constexpr const char* kSucceededStates = "('succeeded')";
constexpr const char* kNeverServedStates = "('failed', 'superseded')";

// Deletes the revisions of `service_id` in `states` beyond the newest `keep`, sparing the
// service's current and desired revisions and any revision an unfinished task still refers to
// (read from the stored rows, not from a caller's possibly stale record).
void prune_revisions(internal::Connection& db, const std::string& service_id, const char* states,
                     int keep) {
  auto prune = db.prepare(
      std::string("DELETE FROM revisions WHERE service_id = :service_id AND state IN ") + states +
      " AND id NOT IN (SELECT current_deployment_id FROM app_services "
      "WHERE id = :service_id UNION SELECT desired_deployment_id FROM app_services "
      "WHERE id = :service_id UNION SELECT revision_id FROM tasks "
      "WHERE service_id = :service_id AND state != 'done') "
      "AND id NOT IN (SELECT id FROM revisions WHERE service_id = :service_id "
      "AND state IN " +
      states + " ORDER BY number DESC LIMIT :keep)");
  prune.bind(":service_id", service_id);
  prune.bind(":keep", keep);
  prune.exec();
}

Error revision_not_found() {
  return make_error(ErrorCode::kNotFound, "the deployment does not exist");
}

}  // namespace

namespace internal {

Status insert_revision(internal::Connection& db, const Revision& r) {
  auto ins = db.prepare(std::string("INSERT INTO revisions (") + kRevisionColumns +
                        ") VALUES (:id, :service_id, :number, :config, :registry_host, "
                        ":reason, :state, :image_digest, :deploy_logs, :created_at, "
                        ":finished_at)");
  ins.bind(":id", r.id);
  ins.bind(":service_id", r.service_id);
  ins.bind(":number", static_cast<std::int64_t>(r.number));
  ins.bind(":config", encode_config(r.config));
  ins.bind(":registry_host", r.registry_host);
  ins.bind(":reason", r.reason);
  ins.bind(":state", core::to_string(r.state));
  ins.bind(":image_digest", r.image_digest);
  ins.bind(":deploy_logs", encode_deploy_logs(r.deploy_logs));
  ins.bind(":created_at", static_cast<std::int64_t>(r.created_at));
  ins.bind(":finished_at", static_cast<std::int64_t>(r.finished_at));
  ins.exec();
  return Status::Ok();
}

}  // namespace internal

Result<std::vector<Revision>> SqliteStore::list_revisions(std::string_view service_id,
                                                          bool include_failed) {
  return impl_->locked(Context{}, [&](internal::Connection& db) -> Result<std::vector<Revision>> {
    std::string sql = std::string("SELECT ") + kRevisionColumns +
                      " FROM revisions WHERE service_id = :service_id";
    if (!include_failed) sql += " AND state = 'succeeded'";
    sql += " ORDER BY number DESC";
    auto st = db.prepare(sql);
    st.bind(":service_id", std::string(service_id));
    std::vector<Revision> out;
    while (st.executeStep()) {
      auto r = read_revision(st);
      if (!r.ok()) return r.take_error();
      out.push_back(std::move(r).value());
    }
    return out;
  });
}

Result<Revision> SqliteStore::get_revision(std::string_view service_id,
                                           std::string_view revision_id) {
  return impl_->locked(Context{}, [&](internal::Connection& db) -> Result<Revision> {
    auto st = db.prepare(std::string("SELECT ") + kRevisionColumns +
                         " FROM revisions WHERE id = :id AND service_id = :service_id");
    st.bind(":id", std::string(revision_id));
    st.bind(":service_id", std::string(service_id));
    if (!st.executeStep()) return revision_not_found();
    return read_revision(st);
  });
}

namespace internal {

std::int64_t read_next_revision_number(Connection& db, std::string_view service_id) {
  auto st = db.prepare(
      "SELECT COALESCE(MAX(number), 0) + 1 FROM revisions WHERE service_id = :service_id");
  st.bind(":service_id", std::string(service_id));
  st.executeStep();
  return st.getColumn(0).getInt64();
}

}  // namespace internal

Result<std::int64_t> SqliteStore::next_revision_number(std::string_view service_id) {
  return impl_->locked(Context{}, [&](internal::Connection& db) -> Result<std::int64_t> {
    return internal::read_next_revision_number(db, service_id);
  });
}

Status SqliteStore::record_outcome(const Revision& revision, const core::AppService& service,
                                   int keep_succeeded) {
  if (revision.service_id != service.id) {
    return make_error(ErrorCode::kInvalidArgument, "the revision belongs to another app service");
  }
  return impl_->transaction(Context{}, [&](internal::Connection& db) -> Status {
    auto rev = db.prepare(
        "UPDATE revisions SET state = :state, image_digest = :image_digest, "
        "deploy_logs = :deploy_logs, finished_at = :finished_at "
        "WHERE id = :id AND service_id = :service_id");
    rev.bind(":state", core::to_string(revision.state));
    rev.bind(":image_digest", revision.image_digest);
    rev.bind(":deploy_logs", encode_deploy_logs(revision.deploy_logs));
    rev.bind(":finished_at", static_cast<std::int64_t>(revision.finished_at));
    rev.bind(":id", revision.id);
    rev.bind(":service_id", revision.service_id);
    if (rev.exec() == 0) return revision_not_found();

    if (Status st = internal::write_observed(db, service); !st.ok()) return st;

    if (keep_succeeded > 0) {
      prune_revisions(db, service.id, kSucceededStates, keep_succeeded);
      prune_revisions(db, service.id, kNeverServedStates, keep_succeeded);
    }
    return Status::Ok();
  });
}

}  // namespace berth::store
