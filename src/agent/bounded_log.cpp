#include "agent/bounded_log.h"

namespace berth::agent {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not one (overlong
// forms, surrogates and code points above U+10FFFF included, as RFC 3629 says).
std::size_t utf8_sequence(const std::string& s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

std::size_t escaped_size(unsigned char c) {
  if (c < 0x20) return 6;  // \u00XX (a few have short forms; counting 6 keeps the bound safe)
  if (c == '"' || c == '\\') return 2;
  return 1;
}

std::size_t escaped_size(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += escaped_size(c);
  return n;
}

// The JSON-escaped size of an entry as messages.cpp encodes it, with room for its keys.
std::size_t entry_size(const core::DeployLogEntry& e) {
  constexpr std::size_t kKeysAndNumbers = 128;
  return kKeysAndNumbers + escaped_size(e.step) + escaped_size(e.status) + escaped_size(e.message) +
         escaped_size(e.detail);
}

}  // namespace

std::string bounded_text(std::string text, std::size_t max) {
  std::string out;
  out.reserve(std::min(text.size(), max) + 8);
  std::size_t used = 0, i = 0;
  while (i < text.size()) {
    const std::size_t n = utf8_sequence(text, i);
    const std::string piece = n == 0 ? std::string("\xEF\xBF\xBD") : text.substr(i, n);
    const std::size_t cost =
        n == 1 ? escaped_size(static_cast<unsigned char>(text[i])) : piece.size();
    if (used + cost > max) break;
    out += piece;
    used += cost;
    i += n == 0 ? 1 : n;
  }
  if (i < text.size()) out += " [truncated: " + std::to_string(text.size() - i) + " bytes omitted]";
  return out;
}

core::DeployLogEntry bounded_entry(core::DeployLogEntry entry) {
  entry.step = bounded_text(std::move(entry.step), 64);
  entry.status = bounded_text(std::move(entry.status), 16);
  entry.message = bounded_text(std::move(entry.message), kMaxMessageBytes);
  entry.detail = bounded_text(std::move(entry.detail), kMaxDetailBytes);
  return entry;
}

std::vector<core::DeployLogEntry> bounded_logs(std::vector<core::DeployLogEntry> logs,
                                               std::size_t budget) {
  std::vector<core::DeployLogEntry> out;
  std::size_t used = 0, omitted_bytes = 0, omitted = 0;
  for (auto& e : logs) {
    core::DeployLogEntry b = bounded_entry(std::move(e));
    const std::size_t size = entry_size(b);
    if (omitted == 0 && used + size <= budget) {
      used += size;
      out.push_back(std::move(b));
    } else {
      // Once one entry is dropped, later ones are too: the log stays a prefix of what happened.
      ++omitted;
      omitted_bytes += size;
    }
  }
  if (omitted > 0) {
    core::DeployLogEntry marker;
    marker.step = "truncated";
    marker.status = "info";
    marker.message = "truncated: " + std::to_string(omitted) + " entries / " +
                     std::to_string(omitted_bytes) + " bytes omitted";
    if (!out.empty()) marker.started_at = out.back().started_at + out.back().duration_ms;
    out.push_back(std::move(marker));
  }
  return out;
}

agentlink::TaskResult bounded_result(agentlink::TaskResult result) {
  result.error = bounded_text(std::move(result.error), kMaxErrorBytes);
  result.logs = bounded_logs(std::move(result.logs));
  return result;
}

}  // namespace berth::agent
