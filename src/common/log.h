#pragma once
// JSON-lines logging: one object per line with `ts`, `level`, a constant `msg` and variable data
// in fields. Field values are nlohmann::json, and berth::Secret has no JSON conversion, so a
// secret cannot be passed as a field by construction.
//
//   log::info("deploy started", {{"app", app_id}, {"revision", 3}});
//
// Thread-safe. Lines go to stderr unless a sink is installed (tests capture lines with one).
//
// Format::kText renders the same line for a person at a terminal instead (`--log-format text`):
//
//   2026-11-28T00:17:05.123Z INFO deploy started app=8c1f... revision=3 reason="image changed"
//
// The library's default is JSON whatever stderr is, so a test or a tool that parses lines never
// depends on where it runs; the binaries choose with default_format() (text on a TTY).
//
// Context that every line of a unit of work should carry (the reconcile_id of one reconcile, the
// namespace and name of the object it handles) is set once with a ScopedFields on the stack
// instead of being passed to every call:
//
//   log::ScopedFields scope({{"reconcile_id", id}});
//   log::info("deploy started", {{"revision", 3}});   // carries reconcile_id too
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace berth::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

enum class Format { kJson = 0, kText = 1 };

using Sink = std::function<void(std::string_view line)>;

void set_level(Level level);
Level level();
// Parses "debug" | "info" | "warn" | "error"; returns false on anything else.
bool parse_level(std::string_view text, Level& out);
void set_format(Format format);
Format format();
// Parses "json" | "text"; returns false on anything else.
bool parse_format(std::string_view text, Format& out);
// What a binary uses without --log-format: text when stderr is a terminal, JSON otherwise.
Format default_format();
// The text form of one line: `TIME LEVEL msg key=value ...` in the fields' order. A string value
// is written bare unless it is empty or holds a space, a quote, a backslash, `=`, a control
// character or a byte outside ASCII; then it is a JSON string (quoted, escaped, bytes that are
// not UTF-8 replaced). Other values are compact JSON.
std::string format_text(std::string_view ts, std::string_view level, std::string_view msg,
                        const nlohmann::ordered_json& fields);
// Installs a sink; an empty function restores stderr. Returns the previous sink.
Sink set_sink(Sink sink);

void write(Level level, std::string_view msg, const nlohmann::json& fields);

// While alive, every line written on the constructing thread carries `fields` (an object; any
// other JSON value adds nothing). Scopes nest: an inner scope's field wins over an outer one's,
// and a field passed to the log call itself wins over both; `ts`, `level` and `msg` cannot be
// replaced. Other threads never see these fields. Destroy on the constructing thread, innermost
// first (a local variable does both). When no scope is alive a log call pays one thread-local
// read.
class ScopedFields {
 public:
  explicit ScopedFields(nlohmann::json fields);
  // So that `ScopedFields scope({{"key", value}})` reads as a log call's fields do (with only the
  // json constructor, that brace form is ambiguous with the deleted copy constructor).
  explicit ScopedFields(nlohmann::json::initializer_list_t fields)
      : ScopedFields(nlohmann::json(fields)) {}
  ~ScopedFields();
  ScopedFields(const ScopedFields&) = delete;
  ScopedFields& operator=(const ScopedFields&) = delete;

 private:
  friend void write(Level level, std::string_view msg, const nlohmann::json& fields);
  nlohmann::json fields_;
  const ScopedFields* outer_;
};

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
