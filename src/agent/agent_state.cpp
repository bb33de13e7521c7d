#include "agent/agent_state.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <sys/stat.h>

#include <mutex>
#include <nlohmann/json.hpp>

namespace berth::agent {
namespace {

constexpr int kKeptTasks = 1000;

Error db_error(const std::exception& e, const char* what) {
  const std::string msg = e.what();
  ErrorCode code = ErrorCode::kInternal;
  if (msg.find("locked") != std::string::npos || msg.find("busy") != std::string::npos)
    code = ErrorCode::kUnavailable;
  else if (msg.find("malformed") != std::string::npos ||
           msg.find("not a database") != std::string::npos)
    code = ErrorCode::kDataLoss;
  else if (msg.find("full") != std::string::npos)
    code = ErrorCode::kResourceExhausted;
  else if (msg.find("readonly") != std::string::npos ||
           msg.find("unable to open") != std::string::npos)
    code = ErrorCode::kPermissionDenied;
  return make_error(code, std::string("Agent state: ") + what + " failed: " + msg + ".");
}

nlohmann::json log_to_json(const core::DeployLogEntry& e) {
  return {{"step", e.step},     {"status", e.status},         {"message", e.message},
          {"detail", e.detail}, {"started_at", e.started_at}, {"duration_ms", e.duration_ms}};
}

core::DeployLogEntry log_from_json(const nlohmann::json& j) {
  core::DeployLogEntry e;
  e.step = j.value("step", "");
  e.status = j.value("status", "");
  e.message = j.value("message", "");
  e.detail = j.value("detail", "");
  e.started_at = j.value("started_at", std::int64_t{0});
  e.duration_ms = j.value("duration_ms", std::int64_t{0});
  return e;
}

std::string result_to_json(const agentlink::TaskResult& r) {
  nlohmann::json logs = nlohmann::json::array();
  for (const auto& e : r.logs) logs.push_back(log_to_json(e));
  return nlohmann::json{{"task_id", r.task_id},
                        {"service_id", r.service_id},
                        {"revision_id", r.revision_id},
                        {"ok", r.ok},
                        {"error", r.error},
                        {"image_digest", r.image_digest},
                        {"stable_port", r.stable_port},
                        {"logs", logs}}
      .dump();
}

agentlink::TaskResult result_from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  agentlink::TaskResult r;
  r.task_id = j.value("task_id", "");
  r.service_id = j.value("service_id", "");
  r.revision_id = j.value("revision_id", "");
  r.ok = j.value("ok", false);
  r.error = j.value("error", "");
  r.image_digest = j.value("image_digest", "");
  r.stable_port = j.value("stable_port", 0);
  if (j.contains("logs"))
    for (const auto& e : j["logs"]) r.logs.push_back(log_from_json(e));
  return r;
}

constexpr const char* kAppColumns =
    "service_id, stable_port, revision_id, revision, container, backend_port, image_digest, "
    "previous_revision, pending_container, container_port, health_path, health_interval, "
    "health_timeout, health_threshold, last_task_id";

AppRecord read_app(SQLite::Statement& q) {
  AppRecord a;
  a.service_id = q.getColumn(0).getString();
  a.stable_port = q.getColumn(1).getInt();
  a.revision_id = q.getColumn(2).getString();
  a.revision = q.getColumn(3).getInt64();
  a.container = q.getColumn(4).getString();
  a.backend_port = q.getColumn(5).getInt();
  a.image_digest = q.getColumn(6).getString();
  a.previous_revision = q.getColumn(7).getString();
  a.pending_container = q.getColumn(8).getString();
  a.container_port = q.getColumn(9).getInt();
  a.health.path = q.getColumn(10).getString();
  a.health.interval_seconds = q.getColumn(11).getInt();
  a.health.timeout_seconds = q.getColumn(12).getInt();
  a.health.healthy_threshold = q.getColumn(13).getInt();
  a.last_task_id = q.getColumn(14).getString();
  return a;
}

void write_app(SQLite::Database& db, const AppRecord& a) {
  SQLite::Statement q(db, std::string("INSERT OR REPLACE INTO apps (") + kAppColumns +
                              ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  q.bind(1, a.service_id);
  q.bind(2, a.stable_port);
  q.bind(3, a.revision_id);
  q.bind(4, static_cast<std::int64_t>(a.revision));
  q.bind(5, a.container);
  q.bind(6, a.backend_port);
  q.bind(7, a.image_digest);
  q.bind(8, a.previous_revision);
  q.bind(9, a.pending_container);
  q.bind(10, a.container_port);
  q.bind(11, a.health.path);
  q.bind(12, a.health.interval_seconds);
  q.bind(13, a.health.timeout_seconds);
  q.bind(14, a.health.healthy_threshold);
  q.bind(15, a.last_task_id);
  q.exec();
}

}  // namespace

struct AgentState::Impl {
  explicit Impl(const std::string& path)
      : db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX) {}
  std::mutex mu;
  SQLite::Database db;
};

AgentState::AgentState(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentState::~AgentState() = default;

Result<std::unique_ptr<AgentState>> AgentState::open(const std::string& path) {
  try {
    auto impl = std::make_unique<Impl>(path);
    impl->db.setBusyTimeout(5000);
    if (path != ":memory:") {
      impl->db.exec("PRAGMA journal_mode=WAL");
      ::chmod(path.c_str(), 0600);  // no secrets inside, but nobody else's business either
    }
    impl->db.exec("PRAGMA synchronous=FULL");
    impl->db.exec(
        "CREATE TABLE IF NOT EXISTS apps ("
        " service_id TEXT PRIMARY KEY, stable_port INTEGER NOT NULL DEFAULT 0,"
        " revision_id TEXT NOT NULL DEFAULT '', revision INTEGER NOT NULL DEFAULT 0,"
        " container TEXT NOT NULL DEFAULT '', backend_port INTEGER NOT NULL DEFAULT 0,"
        " image_digest TEXT NOT NULL DEFAULT '', previous_revision TEXT NOT NULL DEFAULT '',"
        " pending_container TEXT NOT NULL DEFAULT '', container_port INTEGER NOT NULL DEFAULT 0,"
        " health_path TEXT NOT NULL DEFAULT '', health_interval INTEGER NOT NULL DEFAULT 5,"
        " health_timeout INTEGER NOT NULL DEFAULT 3, health_threshold INTEGER NOT NULL DEFAULT 1,"
        " last_task_id TEXT NOT NULL DEFAULT '')");
    impl->db.exec(
        "CREATE TABLE IF NOT EXISTS tasks ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL UNIQUE,"
        " service_id TEXT NOT NULL, kind TEXT NOT NULL, result TEXT NOT NULL)");
    return std::unique_ptr<AgentState>(new AgentState(std::move(impl)));
  } catch (const std::exception& e) {
    return db_error(e, "opening the database");
  }
}

Result<std::optional<agentlink::TaskResult>> AgentState::recorded_result(
    const std::string& task_id) {
  std::lock_guard lock(impl_->mu);
  try {
    SQLite::Statement q(impl_->db, "SELECT result FROM tasks WHERE task_id = ?");
    q.bind(1, task_id);
    if (!q.executeStep()) return std::optional<agentlink::TaskResult>{};
    return std::optional<agentlink::TaskResult>(result_from_json(q.getColumn(0).getString()));
  } catch (const nlohmann::json::exception&) {
    return make_error(ErrorCode::kDataLoss,
                      "Agent state: a recorded task result is not valid JSON.");
  } catch (const std::exception& e) {
    return db_error(e, "reading a task result");
  }
}

Result<std::optional<AppRecord>> AgentState::app(const std::string& service_id) {
  std::lock_guard lock(impl_->mu);
  try {
    SQLite::Statement q(impl_->db,
                        std::string("SELECT ") + kAppColumns + " FROM apps WHERE service_id = ?");
    q.bind(1, service_id);
    if (!q.executeStep()) return std::optional<AppRecord>{};
    return std::optional<AppRecord>(read_app(q));
  } catch (const std::exception& e) {
    return db_error(e, "reading an app");
  }
}

Result<std::vector<AppRecord>> AgentState::apps() {
  std::lock_guard lock(impl_->mu);
  try {
    SQLite::Statement q(impl_->db,
                        std::string("SELECT ") + kAppColumns + " FROM apps ORDER BY service_id");
    std::vector<AppRecord> out;
    while (q.executeStep()) out.push_back(read_app(q));
    return out;
  } catch (const std::exception& e) {
    return db_error(e, "listing apps");
  }
}

Status AgentState::put_app(const AppRecord& app) {
  std::lock_guard lock(impl_->mu);
  try {
    write_app(impl_->db, app);
    return Status::Ok();
  } catch (const std::exception& e) {
    return db_error(e, "writing an app");
  }
}

Status AgentState::finish_task(const agentlink::TaskResult& result, const std::string& kind,
                               const std::optional<AppRecord>& app, bool forget) {
  std::lock_guard lock(impl_->mu);
  try {
    SQLite::Transaction tx(impl_->db);
    if (forget) {
      SQLite::Statement d(impl_->db, "DELETE FROM apps WHERE service_id = ?");
      d.bind(1, result.service_id);
      d.exec();
    } else if (app) {
      write_app(impl_->db, *app);
    }
    SQLite::Statement q(
        impl_->db,
        "INSERT OR REPLACE INTO tasks (task_id, service_id, kind, result) VALUES (?,?,?,?)");
    q.bind(1, result.task_id);
    q.bind(2, result.service_id);
    q.bind(3, kind);
    q.bind(4, result_to_json(result));
    q.exec();
    SQLite::Statement prune(impl_->db,
                            "DELETE FROM tasks WHERE seq <= (SELECT MAX(seq) FROM tasks) - ?");
    prune.bind(1, kKeptTasks);
    prune.exec();
    tx.commit();
    return Status::Ok();
  } catch (const std::exception& e) {
    return db_error(e, "recording a task result");
  }
}

}  // namespace berth::agent
