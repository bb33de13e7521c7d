#pragma once
// Captures every berth log line (common/log.h) for the lifetime of the object, so that a test
// can look for what was logged, or that a secret never was. One at a time: it replaces the
// process's log sink and restores the default one when destroyed.
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"

namespace berth::testing {

class LogCapture {
 public:
  LogCapture() {
    berth::log::set_sink([this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    });
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  ~LogCapture() { berth::log::set_sink({}); }

  // Every line so far (the server logs from its own threads).
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mu_);
    return lines_;
  }
  // The lines that contain `needle`.
  std::vector<std::string> matching(const std::string& needle) {
    std::vector<std::string> out;
    for (auto& line : snapshot()) {
      if (line.find(needle) != std::string::npos) out.push_back(std::move(line));
    }
    return out;
  }
  bool contains(const std::string& needle) { return !matching(needle).empty(); }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace berth::testing
