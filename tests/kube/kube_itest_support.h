#pragma once
// Small helpers the kube integration tests share: a temp dir and a log capture.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>

#include "common/log.h"

namespace berth::kube::testing {

// A fresh directory under /tmp, removed with its contents afterwards.
struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "berth-kube-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::trunc) << text;
  }
  std::filesystem::path path;
};

// Every log line written while it lives, at debug level; the previous sink and level come back
// afterwards.
class LogCapture {
 public:
  LogCapture() : previous_level_(log::level()) {
    log::set_level(log::Level::kDebug);
    previous_ = log::set_sink([this](std::string_view line) {
      std::lock_guard lock(mu_);
      text_.append(line).append("\n");
    });
  }
  ~LogCapture() {
    log::set_sink(previous_);
    log::set_level(previous_level_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string all() const {
    std::lock_guard lock(mu_);
    return text_;
  }
  // How many lines contain `needle`.
  int count(std::string_view needle) const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (std::size_t at = 0; (at = text_.find(needle, at)) != std::string::npos; ++at) ++n;
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::string text_;
  log::Sink previous_;
  log::Level previous_level_;
};

}  // namespace berth::kube::testing
