#include "store/codec.h"

#include <nlohmann/json.hpp>

namespace berth::store {
namespace {

using nlohmann::json;

// Invalid UTF-8 is replaced rather than thrown: a stored record must always be writable.
std::string text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json health_json(const core::HealthCheck& h) {
  return json{{"path", h.path},
              {"interval_seconds", h.interval_seconds},
              {"timeout_seconds", h.timeout_seconds},
              {"healthy_threshold", h.healthy_threshold}};
}

core::HealthCheck health_from(const json& j) {
  core::HealthCheck h;
  h.path = j.at("path").get<std::string>();
  h.interval_seconds = j.at("interval_seconds").get<int>();
  h.timeout_seconds = j.at("timeout_seconds").get<int>();
  h.healthy_threshold = j.at("healthy_threshold").get<int>();
  return h;
}

// Parses `text` and converts it with `from`; nlohmann's exceptions stop here.
template <typename T, typename F>
Result<T> decode(std::string_view text, const char* what, F from) {
  try {
    return from(json::parse(text));
  } catch (const json::exception&) {
    return make_error(ErrorCode::kDataLoss,
                      std::string("the stored ") + what + " is not valid berth JSON");
  }
}

}  // namespace

std::string encode_config(const core::AppConfig& c) {
  return json{{"image_ref", c.image_ref},
              {"container_port", c.container_port},
              {"env", c.env},
              {"custom_domains", c.custom_domains},
              {"registry_username", c.registry_username},
              {"health", health_json(c.health)}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<core::AppConfig> decode_config(std::string_view text) {
  return decode<core::AppConfig>(text, "app config", [](const json& j) {
    core::AppConfig c;
    c.image_ref = j.at("image_ref").get<std::string>();
    c.container_port = j.at("container_port").get<int>();
    c.env = j.at("env").get<std::map<std::string, std::string>>();
    c.custom_domains = j.at("custom_domains").get<std::vector<std::string>>();
    c.registry_username = j.at("registry_username").get<std::string>();
    c.health = health_from(j.at("health"));
    return c;
  });
}

std::string encode_env(const std::map<std::string, std::string>& env) { return text(json(env)); }

Result<std::map<std::string, std::string>> decode_env(std::string_view text) {
  return decode<std::map<std::string, std::string>>(text, "environment", [](const json& j) {
    return j.get<std::map<std::string, std::string>>();
  });
}

std::string encode_strings(const std::vector<std::string>& values) { return text(json(values)); }

Result<std::vector<std::string>> decode_strings(std::string_view text) {
  return decode<std::vector<std::string>>(
      text, "list", [](const json& j) { return j.get<std::vector<std::string>>(); });
}

std::string encode_health(const core::HealthCheck& health) { return text(health_json(health)); }

Result<core::HealthCheck> decode_health(std::string_view text) {
  return decode<core::HealthCheck>(text, "health check", health_from);
}

std::string encode_conditions(const std::vector<core::Condition>& conditions) {
  json out = json::array();
  for (const auto& c : conditions) {
    out.push_back({{"type", c.type},
                   {"status", c.status},
                   {"reason", c.reason},
                   {"message", c.message},
                   {"last_transition_time", c.last_transition_time}});
  }
  return text(out);
}

Result<std::vector<core::Condition>> decode_conditions(std::string_view text) {
  return decode<std::vector<core::Condition>>(text, "conditions", [](const json& j) {
    std::vector<core::Condition> out;
    for (const auto& e : j) {
      core::Condition c;
      c.type = e.at("type").get<std::string>();
      c.status = e.at("status").get<std::string>();
      c.reason = e.at("reason").get<std::string>();
      c.message = e.at("message").get<std::string>();
      c.last_transition_time = e.at("last_transition_time").get<core::UnixMillis>();
      out.push_back(std::move(c));
    }
    return out;
  });
}

std::string encode_deploy_logs(const std::vector<core::DeployLogEntry>& logs) {
  json out = json::array();
  for (const auto& l : logs) {
    out.push_back({{"step", l.step},
                   {"status", l.status},
                   {"message", l.message},
                   {"detail", l.detail},
                   {"started_at", l.started_at},
                   {"duration_ms", l.duration_ms}});
  }
  return text(out);
}

Result<std::vector<core::DeployLogEntry>> decode_deploy_logs(std::string_view text) {
  return decode<std::vector<core::DeployLogEntry>>(text, "deploy logs", [](const json& j) {
    std::vector<core::DeployLogEntry> out;
    for (const auto& e : j) {
      core::DeployLogEntry l;
      l.step = e.at("step").get<std::string>();
      l.status = e.at("status").get<std::string>();
      l.message = e.at("message").get<std::string>();
      l.detail = e.at("detail").get<std::string>();
      l.started_at = e.at("started_at").get<core::UnixMillis>();
      l.duration_ms = e.at("duration_ms").get<std::int64_t>();
      out.push_back(std::move(l));
    }
    return out;
  });
}

}  // namespace berth::store
