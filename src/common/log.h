#pragma once
// JSON-lines logging: one object per line with `ts`, `level`, a constant `msg` and variable data
// in fields. Field values are nlohmann::json, and berth::Secret has no JSON conversion, so a
// secret cannot be passed as a field by construction.
//
//   log::info("deploy started", {{"app", app_id}, {"revision", 3}});
//
// Thread-safe. Lines go to stderr unless a sink is installed (tests capture lines with one).
#include <functional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace berth::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using Sink = std::function<void(std::string_view line)>;

void set_level(Level level);
Level level();
// Parses "debug" | "info" | "warn" | "error"; returns false on anything else.
bool parse_level(std::string_view text, Level& out);
// Installs a sink; an empty function restores stderr. Returns the previous sink.
Sink set_sink(Sink sink);

void write(Level level, std::string_view msg, const nlohmann::json& fields);

inline void debug(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  write(Level::kDebug, msg, fields);
}
inline void info(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  write(Level::kInfo, msg, fields);
}
inline void warn(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  write(Level::kWarn, msg, fields);
}
inline void error(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  write(Level::kError, msg, fields);
}

}  // namespace berth::log
