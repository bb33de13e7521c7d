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
#include "support/kube_testenv.h"
#include "support/skip.h"
#include "support/temp_dir.h"
#include "support/testenv.h"

namespace berth::kube::testing {

// A fresh directory under /tmp, removed with its contents afterwards.
struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-kube") {}
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::trunc) << text;
  }
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

// What the test API server (hack/testenv/kubeapi) needs and this machine lacks; "" when
// nothing. Checked once per process.
inline std::string kube_api_server_missing() {
  static const std::string missing = [] {
    std::string out;
    if (testenv::run_command({"python3", "-c", "import cryptography, yaml"}, &out) != 0)
      return std::string(
          "test API server: python3 with python3-cryptography and python3-yaml (apt-get "
          "install python3-cryptography python3-yaml)");
    return std::string();
  }();
  return missing;
}

// Starts the test API server for one test; skips the test (fails it under CI=true) when its
// peers are missing, fails it when it does not start.
#define BERTH_START_KUBE_API_SERVER(var)                                              \
  if (const std::string missing_ = ::berth::kube::testing::kube_api_server_missing(); \
      !missing_.empty()) {                                                            \
    ::berth::testing::skip_test(missing_);                                            \
    return;                                                                           \
  }                                                                                   \
  auto var##_started = ::berth::testenv::KubeApiServer::start();                      \
  if (!var##_started.ok()) FAIL(var##_started.error().message);                       \
  ::berth::testenv::KubeApiServer& var = *var##_started

}  // namespace berth::kube::testing
