// Pause points (common/pause_point.h): nothing without BERTH_TEST_PAUSE_FILE, nothing at a point
// the file does not name, and a hold at the named point until the file moves on. The crash suite
// (tests/crash) relies on the hold; every production process relies on the rest.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/log.h"
#include "common/pause_point.h"
#include "support/testenv.h"
#include "support/wait.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Captures log lines for the life of the object, and a pause file in a temp dir.
class PauseFixture {
 public:
  PauseFixture() : dir_(berth::testenv::make_temp_dir("pause")), file_(dir_ + "/point") {
    previous_ = berth::log::set_sink([this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~PauseFixture() {
    ::unsetenv("BERTH_TEST_PAUSE_FILE");
    berth::log::set_sink(previous_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void name(const std::string& point) {
    std::ofstream(file_ + ".tmp", std::ios::trunc) << point << "\n";
    fs::rename(file_ + ".tmp", file_);
  }
  void arm() { ::setenv("BERTH_TEST_PAUSE_FILE", file_.c_str(), 1); }
  int count(const std::string& needle) {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& l : lines_) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }

 private:
  std::string dir_;
  std::string file_;
  berth::log::Sink previous_;
  std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace

TEST_CASE("A pause point does nothing while BERTH_TEST_PAUSE_FILE is unset", "[pause]") {
  PauseFixture f;
  f.name("accept");  // a file naming the point exists, but nothing points at it
  ::unsetenv("BERTH_TEST_PAUSE_FILE");
  berth::pause_point("accept");
  CHECK(f.count("test pause point") == 0);
}

TEST_CASE("A pause point the file does not name goes on at once", "[pause]") {
  PauseFixture f;
  f.name("pull");
  f.arm();
  berth::pause_point("accept");
  CHECK(f.count("test pause point reached") == 0);
}

TEST_CASE("A pause point the file names holds the caller until the file moves on", "[pause]") {
  PauseFixture f;
  f.name("accept");
  f.arm();
  auto held = std::async(std::launch::async, [] { berth::pause_point("accept"); });
  REQUIRE(
      berth::testing::wait_until([&] { return f.count("test pause point reached") == 1; }, 10s));
  // Still held: the file names the point.
  CHECK(held.wait_for(100ms) == std::future_status::timeout);
  f.name("");
  REQUIRE(held.wait_for(10s) == std::future_status::ready);
  CHECK(f.count("test pause point released") == 1);
  CHECK(f.count("\"point\":\"accept\"") == 2);
}
