// The app_services table: reads, create, the user's changes (apply_change, delete) and the
// runtime's observed state (update_observed). Who may write which column is the contract in
// core/ports.h; the UPDATE statements below list exactly those columns.
#include <string>
#include <vector>

#include "store/codec.h"
#include "store/connection.h"
#include "store/tables.h"

namespace berth::store {
namespace {

using core::AppService;
using internal::Context;

constexpr const char* kServiceColumns =
    "id, account_id, name, plan_name, zone, storage_size_gb, storage_tier, status, image_ref, "
    "container_port, env, custom_domains, registry_username, health, registry_host, url, "
    "current_deployment_id, desired_deployment_id, agent, conditions, last_error, generation, "
    "created_at, updated_at";

std::string select_services(const char* where) {
  return std::string("SELECT ") + kServiceColumns + " FROM app_services " + where;
}

Result<AppService> read_service(SQLite::Statement& st) {
  AppService s;
  s.id = st.getColumn("id").getString();
  s.account_id = st.getColumn("account_id").getString();
  s.name = st.getColumn("name").getString();
  s.plan_name = st.getColumn("plan_name").getString();
  s.zone = st.getColumn("zone").getString();
  s.storage_size_gb = st.getColumn("storage_size_gb").getInt();
  s.storage_tier = st.getColumn("storage_tier").getString();
  auto status = core::parse_service_status(st.getColumn("status").getString());
  if (!status)
    return make_error(ErrorCode::kDataLoss, "a stored app service has an unknown status");
  s.status = *status;
  s.config.image_ref = st.getColumn("image_ref").getString();
  s.config.container_port = st.getColumn("container_port").getInt();
  auto env = decode_env(st.getColumn("env").getString());
  if (!env.ok()) return env.take_error();
  s.config.env = std::move(env).value();
  auto domains = decode_strings(st.getColumn("custom_domains").getString());
  if (!domains.ok()) return domains.take_error();
  s.config.custom_domains = std::move(domains).value();
  s.config.registry_username = st.getColumn("registry_username").getString();
  auto health = decode_health(st.getColumn("health").getString());
  if (!health.ok()) return health.take_error();
  s.config.health = std::move(health).value();
  s.registry_host = st.getColumn("registry_host").getString();
  s.url = st.getColumn("url").getString();
  s.current_deployment_id = st.getColumn("current_deployment_id").getString();
  s.desired_deployment_id = st.getColumn("desired_deployment_id").getString();
  s.agent = st.getColumn("agent").getString();
  auto conditions = decode_conditions(st.getColumn("conditions").getString());
  if (!conditions.ok()) return conditions.take_error();
  s.conditions = std::move(conditions).value();
  s.last_error = st.getColumn("last_error").getString();
  s.generation = st.getColumn("generation").getInt64();
  s.created_at = st.getColumn("created_at").getInt64();
  s.updated_at = st.getColumn("updated_at").getInt64();
  return s;
}

Result<std::vector<AppService>> read_services(SQLite::Statement& st) {
  std::vector<AppService> out;
  while (st.executeStep()) {
    auto s = read_service(st);
    if (!s.ok()) return s.take_error();
    out.push_back(std::move(s).value());
  }
  return out;
}

// The columns a user write owns (apply_change), bound by name.
void bind_user_owned(SQLite::Statement& st, const AppService& s) {
  st.bind(":name", s.name);
  st.bind(":plan_name", s.plan_name);
  st.bind(":zone", s.zone);
  st.bind(":storage_size_gb", s.storage_size_gb);
  st.bind(":storage_tier", s.storage_tier);
  st.bind(":status", core::to_string(s.status));
  st.bind(":image_ref", s.config.image_ref);
  st.bind(":container_port", s.config.container_port);
  st.bind(":env", encode_env(s.config.env));
  st.bind(":custom_domains", encode_strings(s.config.custom_domains));
  st.bind(":registry_username", s.config.registry_username);
  st.bind(":health", encode_health(s.config.health));
  st.bind(":registry_host", s.registry_host);
  st.bind(":desired_deployment_id", s.desired_deployment_id);
  st.bind(":generation", static_cast<std::int64_t>(s.generation));
  st.bind(":updated_at", static_cast<std::int64_t>(s.updated_at));
}

// The columns the runtime owns, bound by name.
void bind_runtime_owned(SQLite::Statement& st, const AppService& s) {
  st.bind(":url", s.url);
  st.bind(":current_deployment_id", s.current_deployment_id);
  st.bind(":agent", s.agent);
  st.bind(":conditions", encode_conditions(s.conditions));
  st.bind(":last_error", s.last_error);
}

// The revision, credential and task of a change, after its service row.
Status apply_rest(internal::Connection& db, const crypto::Keyring& keyring,
                  const core::Change& change) {
  const std::string& sid = change.service.id;
  if (change.revision) {
    if (change.revision->service_id != sid) {
      return make_error(ErrorCode::kInvalidArgument, "the revision belongs to another app service");
    }
    if (Status st = internal::insert_revision(db, *change.revision); !st.ok()) return st;
  }
  if (Status st = internal::write_credential(db, keyring, sid, change.credential); !st.ok()) {
    return st;
  }
  if (change.task) {
    if (change.task->service_id != sid) {
      return make_error(ErrorCode::kInvalidArgument, "the task belongs to another app service");
    }
    if (Status st = internal::insert_task(db, *change.task); !st.ok()) return st;
  }
  return Status::Ok();
}

Error not_found() { return make_error(ErrorCode::kNotFound, "the app service does not exist"); }

constexpr Context kNameTaken{"an app service with this name already exists"};

}  // namespace

namespace internal {

Status write_observed(internal::Connection& db, const AppService& service) {
  // A service the user is deleting stays Deleting: the runtime's record may have been read
  // before the DELETE, and only the removal may end that state.
  auto up = db.prepare(
      "UPDATE app_services SET "
      "status = CASE WHEN status = :deleting THEN status ELSE :status END, "
      "url = :url, current_deployment_id = :current_deployment_id, "
      "agent = :agent, conditions = :conditions, last_error = :last_error, "
      "updated_at = :updated_at WHERE id = :id");
  bind_runtime_owned(up, service);
  up.bind(":deleting", core::to_string(core::ServiceStatus::kDeleting));
  up.bind(":status", core::to_string(service.status));
  up.bind(":updated_at", static_cast<std::int64_t>(service.updated_at));
  up.bind(":id", service.id);
  if (up.exec() == 0) return not_found();
  return Status::Ok();
}

}  // namespace internal

Result<AppService> SqliteStore::get_service(std::string_view account_id, std::string_view id) {
  return impl_->locked(Context{}, [&](internal::Connection& db) -> Result<AppService> {
    auto st = db.prepare(select_services("WHERE id = :id AND account_id = :account_id"));
    st.bind(":id", std::string(id));
    st.bind(":account_id", std::string(account_id));
    if (!st.executeStep()) return not_found();
    return read_service(st);
  });
}

// One lock for the three reads a PATCH or rollback is built from (ports.h).
Result<core::ChangeBasis> SqliteStore::read_for_change(std::string_view account_id,
                                                       std::string_view id) {
  return impl_->locked(Context{}, [&](internal::Connection& db) -> Result<core::ChangeBasis> {
    core::ChangeBasis basis;
    {
      auto st = db.prepare(select_services("WHERE id = :id AND account_id = :account_id"));
      st.bind(":id", std::string(id));
      st.bind(":account_id", std::string(account_id));
      if (!st.executeStep()) return not_found();
      auto service = read_service(st);
      if (!service.ok()) return service.take_error();
      basis.service = std::move(service).value();
    }
    auto credential = internal::read_credential(db, id);
    if (!credential.ok()) return credential.take_error();
    basis.credential = std::move(credential).value();
    basis.next_revision_number = internal::read_next_revision_number(db, id);
    return basis;
  });
}

Result<std::vector<AppService>> SqliteStore::list_services(std::string_view account_id) {
  return impl_->locked(Context{}, [&](internal::Connection& db) {
    auto st = db.prepare(select_services("WHERE account_id = :account_id ORDER BY created_at, id"));
    st.bind(":account_id", std::string(account_id));
    return read_services(st);
  });
}

Result<AppService> SqliteStore::load_service(std::string_view id) {
  return impl_->locked(Context{}, [&](internal::Connection& db) -> Result<AppService> {
    auto st = db.prepare(select_services("WHERE id = :id"));
    st.bind(":id", std::string(id));
    if (!st.executeStep()) return not_found();
    return read_service(st);
  });
}

Result<std::vector<std::string>> SqliteStore::list_service_ids() {
  return impl_->locked(Context{}, [](internal::Connection& db) -> Result<std::vector<std::string>> {
    auto st = db.prepare("SELECT id FROM app_services ORDER BY id");
    std::vector<std::string> out;
    while (st.executeStep()) out.push_back(st.getColumn(0).getString());
    return out;
  });
}

Status SqliteStore::create_service(const core::Change& change) {
  return impl_->transaction(kNameTaken, [&](internal::Connection& db) -> Status {
    const AppService& s = change.service;
    auto ins =
        db.prepare(std::string("INSERT INTO app_services (") + kServiceColumns +
                   ") VALUES (:id, :account_id, :name, :plan_name, :zone, :storage_size_gb, "
                   ":storage_tier, :status, :image_ref, :container_port, :env, :custom_domains, "
                   ":registry_username, :health, :registry_host, :url, :current_deployment_id, "
                   ":desired_deployment_id, :agent, :conditions, :last_error, :generation, "
                   ":created_at, :updated_at)");
    ins.bind(":id", s.id);
    ins.bind(":account_id", s.account_id);
    ins.bind(":created_at", static_cast<std::int64_t>(s.created_at));
    bind_user_owned(ins, s);
    bind_runtime_owned(ins, s);
    ins.exec();
    return apply_rest(db, *impl_->keyring, change);
  });
}

Status SqliteStore::apply_change(const core::Change& change, std::int64_t expected_generation) {
  return impl_->transaction(kNameTaken, [&](internal::Connection& db) -> Status {
    const AppService& s = change.service;
    auto cur = db.prepare(
        "SELECT generation FROM app_services "
        "WHERE id = :id AND account_id = :account_id");
    cur.bind(":id", s.id);
    cur.bind(":account_id", s.account_id);
    if (!cur.executeStep()) return not_found();
    if (cur.getColumn(0).getInt64() != expected_generation) {
      return make_error(ErrorCode::kConflict,
                        "the app service was changed concurrently; re-read and retry");
    }
    // Only what the user owns: the runtime's columns (agent, current_deployment_id, url,
    // conditions, last_error) may have moved since `s` was read, and writing the read values
    // back would undo a deploy result or a placement that landed in between.
    auto up = db.prepare(
        "UPDATE app_services SET name = :name, plan_name = :plan_name, "
        "zone = :zone, storage_size_gb = :storage_size_gb, "
        "storage_tier = :storage_tier, status = :status, "
        "image_ref = :image_ref, container_port = :container_port, env = :env, "
        "custom_domains = :custom_domains, "
        "registry_username = :registry_username, health = :health, "
        "registry_host = :registry_host, "
        "desired_deployment_id = :desired_deployment_id, "
        "generation = :generation, updated_at = :updated_at "
        "WHERE id = :id AND account_id = :account_id");
    bind_user_owned(up, s);
    up.bind(":id", s.id);
    up.bind(":account_id", s.account_id);
    up.exec();
    return apply_rest(db, *impl_->keyring, change);
  });
}

Status SqliteStore::delete_service(std::string_view id) {
  return impl_->transaction(Context{}, [&](internal::Connection& db) -> Status {
    // Revisions, the credential and tasks go with it (ON DELETE CASCADE).
    auto del = db.prepare("DELETE FROM app_services WHERE id = :id");
    del.bind(":id", std::string(id));
    if (del.exec() == 0) return not_found();
    return Status::Ok();
  });
}

Status SqliteStore::update_observed(const AppService& service) {
  return impl_->transaction(
      Context{}, [&](internal::Connection& db) { return internal::write_observed(db, service); });
}

}  // namespace berth::store
