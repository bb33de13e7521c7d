#include "common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <utility>

#include <unistd.h>

namespace berth::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_format{static_cast<int>(Format::kJson)};
std::mutex g_mu;
Sink g_sink;  // guarded by g_mu
// The innermost ScopedFields alive on this thread; each links to the one it nests in.
thread_local const ScopedFields* t_scope = nullptr;

bool reserved(const std::string& key) { return key == "ts" || key == "level" || key == "msg"; }

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

std::string timestamp() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto secs = time_point_cast<seconds>(now);
  const auto ms = duration_cast<milliseconds>(now - secs).count();
  const std::time_t t = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

// Bare only when nothing in it could split the line, fake another field or reach the terminal
// as a control sequence; anything else goes through the JSON escaper (which also replaces bytes
// that are not UTF-8).
bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '"' || c == '\\' || c == '=') return true;
  }
  return false;
}

const char* upper_level_name(std::string_view level) {
  if (level == "debug") return "DEBUG";
  if (level == "warn") return "WARN";
  if (level == "error") return "ERROR";
  return "INFO";
}

std::string dump(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

void set_format(Format f) { g_format.store(static_cast<int>(f)); }
Format format() { return static_cast<Format>(g_format.load()); }

bool parse_format(std::string_view text, Format& out) {
  if (text == "json")
    out = Format::kJson;
  else if (text == "text")
    out = Format::kText;
  else
    return false;
  return true;
}

Format default_format() { return ::isatty(STDERR_FILENO) == 1 ? Format::kText : Format::kJson; }

std::string format_text(std::string_view ts, std::string_view level, std::string_view msg,
                        const nlohmann::ordered_json& fields) {
  std::string out;
  out.reserve(64 + msg.size());
  out.append(ts).append(" ").append(upper_level_name(level)).append(" ").append(msg);
  if (!fields.is_object()) return out;
  for (const auto& [key, value] : fields.items()) {
    out.append(" ").append(key).append("=");
    if (value.is_string()) {
      const auto& s = value.get_ref<const std::string&>();
      out.append(needs_quotes(s) ? dump(value) : s);
    } else {
      out.append(dump(value));
    }
  }
  return out;
}

ScopedFields::ScopedFields(nlohmann::json fields) : fields_(std::move(fields)), outer_(t_scope) {
  t_scope = this;
}

ScopedFields::~ScopedFields() { t_scope = outer_; }

void set_level(Level level) { g_level.store(static_cast<int>(level)); }
Level level() { return static_cast<Level>(g_level.load()); }

bool parse_level(std::string_view text, Level& out) {
  if (text == "debug")
    out = Level::kDebug;
  else if (text == "info")
    out = Level::kInfo;
  else if (text == "warn")
    out = Level::kWarn;
  else if (text == "error")
    out = Level::kError;
  else
    return false;
  return true;
}

Sink set_sink(Sink sink) {
  std::lock_guard lock(g_mu);
  Sink previous = std::move(g_sink);
  g_sink = std::move(sink);
  return previous;
}

void write(Level lvl, std::string_view msg, const nlohmann::json& fields) {
  if (static_cast<int>(lvl) < g_level.load()) return;
  nlohmann::ordered_json line;
  line["ts"] = timestamp();
  line["level"] = level_name(lvl);
  line["msg"] = msg;
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) {
      if (!reserved(key)) line[key] = value;
    }
  }
  // Innermost scope first, each adding only keys not yet set: the call's own fields win, then
  // the nearest scope's.
  for (const ScopedFields* scope = t_scope; scope != nullptr; scope = scope->outer_) {
    if (!scope->fields_.is_object()) continue;
    for (const auto& [key, value] : scope->fields_.items()) {
      if (!reserved(key) && !line.contains(key)) line[key] = value;
    }
  }
  std::string text;
  if (format() == Format::kText) {
    nlohmann::ordered_json rest = line;
    rest.erase("ts");
    rest.erase("level");
    rest.erase("msg");
    text = format_text(line["ts"].get_ref<const std::string&>(), level_name(lvl), msg, rest);
  } else {
    text = dump(line);
  }
  std::lock_guard lock(g_mu);
  if (g_sink) {
    g_sink(text);
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
  }
}

}  // namespace berth::log
