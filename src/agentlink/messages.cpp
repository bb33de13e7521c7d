#include "agentlink/messages.h"

#include <limits>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace berth::agentlink {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxFrameBytes = 1024 * 1024;

json health_to_json(const core::HealthCheck& h) {
  return json{{"path", h.path},
              {"interval_seconds", h.interval_seconds},
              {"timeout_seconds", h.timeout_seconds},
              {"healthy_threshold", h.healthy_threshold}};
}

json log_to_json(const core::DeployLogEntry& e) {
  return json{{"step", e.step},     {"status", e.status},         {"message", e.message},
              {"detail", e.detail}, {"started_at", e.started_at}, {"duration_ms", e.duration_ms}};
}

json app_to_json(const ObservedApp& a) {
  return json{{"service_id", a.service_id},     {"revision_id", a.revision_id},
              {"image_digest", a.image_digest}, {"stable_port", a.stable_port},
              {"container", a.container},       {"healthy", a.healthy},
              {"last_task_id", a.last_task_id}};
}

// Returns the JSON body of one message; for a deploy with auth, the password is written into the
// tree and the caller must wipe it (see encode()).
json to_json(const Hello& m) {
  json apps = json::array();
  for (const auto& a : m.apps) apps.push_back(app_to_json(a));
  return json{{"type", "hello"},
              {"name", m.name},
              {"zone", m.zone},
              {"version", m.version},
              {"apps", std::move(apps)}};
}
json to_json(const DeployTask& m) {
  json j{{"type", "deploy"},
         {"task_id", m.task_id},
         {"service_id", m.service_id},
         {"revision_id", m.revision_id},
         {"revision", m.revision},
         {"image_ref", m.image_ref},
         {"image_digest", m.image_digest},
         {"pull_ref", m.pull_ref},
         {"container_port", m.container_port},
         {"env", m.env},
         {"health", health_to_json(m.health)}};
  if (m.auth) {
    // The single place a password becomes bytes on the link.
    j["auth"] = json{{"keys", m.auth->auth_keys},
                     {"username", m.auth->username},
                     {"password", std::string(m.auth->password.reveal())}};
  }
  return j;
}
json to_json(const RestartTask& m) {
  return json{{"type", "restart"}, {"task_id", m.task_id}, {"service_id", m.service_id}};
}
json to_json(const RemoveTask& m) {
  return json{{"type", "remove"}, {"task_id", m.task_id}, {"service_id", m.service_id}};
}
json to_json(const Ack& m) { return json{{"type", "ack"}, {"task_id", m.task_id}}; }
json to_json(const Progress& m) {
  json j{{"type", "progress"}, {"task_id", m.task_id}, {"entry", log_to_json(m.entry)}};
  if (m.pull) {
    j["pull"] = json{{"layers_done", m.pull->layers_done},
                     {"layers_total", m.pull->layers_total},
                     {"bytes_done", m.pull->bytes_done},
                     {"bytes_total", m.pull->bytes_total}};
  }
  return j;
}
json to_json(const TaskResult& m) {
  json logs = json::array();
  for (const auto& e : m.logs) logs.push_back(log_to_json(e));
  return json{{"type", "result"},
              {"task_id", m.task_id},
              {"service_id", m.service_id},
              {"revision_id", m.revision_id},
              {"ok", m.ok},
              {"error", m.error},
              {"image_digest", m.image_digest},
              {"stable_port", m.stable_port},
              {"logs", std::move(logs)}};
}
json to_json(const AppStatus& m) {
  return json{{"type", "status"},
              {"service_id", m.service_id},
              {"revision_id", m.revision_id},
              {"container", m.container},
              {"state", to_string(m.state)},
              {"detail", m.detail},
              {"observed_at_ms", m.observed_at_ms}};
}
json to_json(const Heartbeat& m) {
  return json{{"type", "heartbeat"}, {"sent_at_ms", m.sent_at_ms}};
}

// Strict reading: every failure names the offending field by its path in the frame. The
// exception never leaves this file; decode() turns it into an Error.
struct DecodeFailure {
  ErrorCode code;
  std::string message;
  std::string field;
};

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  throw DecodeFailure{ErrorCode::kInvalidArgument, "field " + field + " " + what, field};
}

std::string join(const std::string& path, const char* key) {
  return path.empty() ? std::string(key) : path + "." + key;
}

class Obj {
 public:
  Obj(json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) fail(path_.empty() ? "(frame)" : path_, "must be an object");
  }

  json& at(const char* key) {
    auto it = j_.find(key);
    if (it == j_.end()) fail(join(path_, key), "is missing");
    return *it;
  }
  bool has(const char* key) const { return j_.contains(key); }
  std::string path(const char* key) const { return join(path_, key); }

  std::string str(const char* key) {
    json& v = at(key);
    if (!v.is_string()) fail(path(key), "must be a string");
    return v.get<std::string>();
  }
  bool boolean(const char* key) {
    json& v = at(key);
    if (!v.is_boolean()) fail(path(key), "must be a boolean");
    return v.get<bool>();
  }
  std::int64_t i64(const char* key) {
    json& v = at(key);
    if (v.is_number_unsigned()) {
      if (v.get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        fail(path(key), "is out of range");
      return static_cast<std::int64_t>(v.get<std::uint64_t>());
    }
    if (!v.is_number_integer()) fail(path(key), "must be an integer");
    return v.get<std::int64_t>();
  }
  int i32(const char* key) {
    const std::int64_t v = i64(key);
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
      fail(path(key), "is out of range");
    return static_cast<int>(v);
  }
  json& array(const char* key) {
    json& v = at(key);
    if (!v.is_array()) fail(path(key), "must be an array");
    return v;
  }
  std::vector<std::string> strings(const char* key) {
    json& arr = array(key);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < arr.size(); ++i) {
      if (!arr[i].is_string()) fail(path(key) + "[" + std::to_string(i) + "]", "must be a string");
      out.push_back(arr[i].get<std::string>());
    }
    return out;
  }

 private:
  json& j_;
  std::string path_;
};

core::HealthCheck health_from(json& j, const std::string& path) {
  Obj o(j, path);
  core::HealthCheck h;
  h.path = o.str("path");
  h.interval_seconds = o.i32("interval_seconds");
  h.timeout_seconds = o.i32("timeout_seconds");
  h.healthy_threshold = o.i32("healthy_threshold");
  return h;
}

core::DeployLogEntry log_from(json& j, const std::string& path) {
  Obj o(j, path);
  core::DeployLogEntry e;
  e.step = o.str("step");
  e.status = o.str("status");
  e.message = o.str("message");
  e.detail = o.str("detail");
  e.started_at = o.i64("started_at");
  e.duration_ms = o.i64("duration_ms");
  return e;
}

ObservedApp app_from(json& j, const std::string& path) {
  Obj o(j, path);
  ObservedApp a;
  a.service_id = o.str("service_id");
  a.revision_id = o.str("revision_id");
  a.image_digest = o.str("image_digest");
  a.stable_port = o.i32("stable_port");
  a.container = o.str("container");
  a.healthy = o.boolean("healthy");
  a.last_task_id = o.str("last_task_id");
  return a;
}

Hello hello_from(Obj& o) {
  Hello m;
  m.name = o.str("name");
  m.zone = o.str("zone");
  m.version = o.str("version");
  json& apps = o.array("apps");
  for (std::size_t i = 0; i < apps.size(); ++i)
    m.apps.push_back(app_from(apps[i], "apps[" + std::to_string(i) + "]"));
  return m;
}

DeployTask deploy_from(Obj& o) {
  DeployTask m;
  m.task_id = o.str("task_id");
  m.service_id = o.str("service_id");
  m.revision_id = o.str("revision_id");
  m.revision = o.i64("revision");
  m.image_ref = o.str("image_ref");
  m.image_digest = o.str("image_digest");
  m.pull_ref = o.str("pull_ref");
  m.container_port = o.i32("container_port");
  {
    json& env = o.at("env");
    if (!env.is_object()) fail("env", "must be an object");
    for (auto it = env.begin(); it != env.end(); ++it) {
      if (!it.value().is_string()) fail("env." + it.key(), "must be a string");
      m.env.emplace(it.key(), it.value().get<std::string>());
    }
  }
  m.health = health_from(o.at("health"), "health");
  if (o.has("auth") && !o.at("auth").is_null()) {
    Obj a(o.at("auth"), "auth");
    RegistryAuth auth;
    auth.auth_keys = a.strings("keys");
    auth.username = a.str("username");
    json& pw = a.at("password");
    if (!pw.is_string()) fail("auth.password", "must be a string");
    auto& bytes = pw.get_ref<std::string&>();
    auth.password = Secret(bytes);
    wipe_string(bytes);
    m.auth = std::move(auth);
  }
  return m;
}

Message message_from(Obj& o, const std::string& type) {
  if (type == "hello") return hello_from(o);
  if (type == "deploy") return deploy_from(o);
  if (type == "restart") return RestartTask{o.str("task_id"), o.str("service_id")};
  if (type == "remove") return RemoveTask{o.str("task_id"), o.str("service_id")};
  if (type == "ack") return Ack{o.str("task_id")};
  if (type == "progress") {
    Progress m;
    m.task_id = o.str("task_id");
    m.entry = log_from(o.at("entry"), "entry");
    if (o.has("pull") && !o.at("pull").is_null()) {
      Obj p(o.at("pull"), "pull");
      PullCounts c;
      c.layers_done = p.i32("layers_done");
      c.layers_total = p.i32("layers_total");
      c.bytes_done = p.i64("bytes_done");
      c.bytes_total = p.i64("bytes_total");
      if (c.layers_done < 0 || c.layers_total < 0 || c.bytes_done < 0 || c.bytes_total < 0)
        fail("pull", "counts must not be negative");
      m.pull = c;
    }
    return m;
  }
  if (type == "result") {
    TaskResult m;
    m.task_id = o.str("task_id");
    m.service_id = o.str("service_id");
    m.revision_id = o.str("revision_id");
    m.ok = o.boolean("ok");
    m.error = o.str("error");
    m.image_digest = o.str("image_digest");
    m.stable_port = o.i32("stable_port");
    json& logs = o.array("logs");
    for (std::size_t i = 0; i < logs.size(); ++i)
      m.logs.push_back(log_from(logs[i], "logs[" + std::to_string(i) + "]"));
    return m;
  }
  if (type == "status") {
    AppStatus m;
    m.service_id = o.str("service_id");
    m.revision_id = o.str("revision_id");
    m.container = o.str("container");
    const std::string state = o.str("state");
    auto parsed = parse_app_state(state);
    if (!parsed) fail("state", "must be one of running, unhealthy, missing");
    m.state = *parsed;
    m.detail = o.str("detail");
    m.observed_at_ms = o.i64("observed_at_ms");
    return m;
  }
  if (type == "heartbeat") return Heartbeat{o.i64("sent_at_ms")};
  throw DecodeFailure{ErrorCode::kInvalidArgument, "unknown message type \"" + type + "\"", "type"};
}

// Wipes every string under a deploy frame's auth object after the tree was consumed.
void wipe_auth(json& j) {
  auto it = j.find("auth");
  if (it == j.end() || !it->is_object()) return;
  auto pw = it->find("password");
  if (pw != it->end() && pw->is_string()) wipe_string(pw->get_ref<std::string&>());
}

}  // namespace

const char* to_string(AppState s) {
  switch (s) {
    case AppState::kRunning:
      return "running";
    case AppState::kUnhealthy:
      return "unhealthy";
    case AppState::kMissing:
      return "missing";
  }
  return "running";
}

std::optional<AppState> parse_app_state(std::string_view text) {
  if (text == "running") return AppState::kRunning;
  if (text == "unhealthy") return AppState::kUnhealthy;
  if (text == "missing") return AppState::kMissing;
  return std::nullopt;
}

bool agent_may_send(const Message& m) {
  return std::holds_alternative<Hello>(m) || std::holds_alternative<Ack>(m) ||
         std::holds_alternative<Progress>(m) || std::holds_alternative<TaskResult>(m) ||
         std::holds_alternative<AppStatus>(m) || std::holds_alternative<Heartbeat>(m);
}

bool controller_may_send(const Message& m) {
  return std::holds_alternative<DeployTask>(m) || std::holds_alternative<RestartTask>(m) ||
         std::holds_alternative<RemoveTask>(m) || std::holds_alternative<Heartbeat>(m);
}

std::string encode(const Message& message) {
  json j = std::visit([](const auto& m) { return to_json(m); }, message);
  j["v"] = kProtocolVersion;
  std::string frame = j.dump();
  wipe_auth(j);
  return frame;
}

Result<Message> decode(std::string_view frame) {
  if (frame.size() > kMaxFrameBytes) {
    return make_error(ErrorCode::kPayloadTooLarge, "frame of " + std::to_string(frame.size()) +
                                                       " bytes exceeds the 1 MiB limit");
  }
  json j = json::parse(frame, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error(ErrorCode::kInvalidArgument, "frame is not valid JSON");
  try {
    Obj o(j, "");
    json& v = o.at("v");
    if (!v.is_number_integer() || v.get<std::int64_t>() != kProtocolVersion) {
      wipe_auth(j);
      return make_error(ErrorCode::kInvalidArgument,
                        "unsupported protocol version " + v.dump() + " (expected " +
                            std::to_string(kProtocolVersion) + ")",
                        "v");
    }
    Message m = message_from(o, o.str("type"));
    wipe_auth(j);
    return m;
  } catch (const DecodeFailure& f) {
    wipe_auth(j);
    return make_error(f.code, f.message, f.field);
  } catch (const json::exception& e) {
    wipe_auth(j);
    return make_error(ErrorCode::kInvalidArgument, std::string("frame is malformed: ") + e.what());
  }
}

}  // namespace berth::agentlink
