#include "common/pause_point.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "common/log.h"

namespace berth {
namespace {

constexpr auto kPollEvery = std::chrono::milliseconds(20);
// A test that forgets to release a point costs half a minute, never a hung process.
constexpr auto kLongest = std::chrono::seconds(30);

// Read on every call (a few per rollout): a test can arm and disarm a process it runs in.
std::string pause_file() {
  const char* v = std::getenv("BERTH_TEST_PAUSE_FILE");
  std::string path = v == nullptr ? std::string() : std::string(v);
  static std::atomic<bool> announced{false};
  if (!path.empty() && !announced.exchange(true)) {
    log::warn("test pause points armed", {{"file", path}});
  }
  return path;
}

bool file_names(const std::string& path, std::string_view point) {
  std::ifstream in(path);
  std::string first;
  return std::getline(in, first) && first == point;
}

}  // namespace

void pause_point(std::string_view point) {
  const std::string path = pause_file();
  if (path.empty() || !file_names(path, point)) return;
  log::warn("test pause point reached", {{"point", std::string(point)}});
  const auto until = std::chrono::steady_clock::now() + kLongest;
  while (file_names(path, point) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(kPollEvery);
  }
  log::info("test pause point released", {{"point", std::string(point)}});
}

}  // namespace berth
