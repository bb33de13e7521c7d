// `berth-controller serve` as a process, seen as an operator sees it: /healthz and /readyz over
// a real socket, and its log lines in each --log-format (JSON when stderr is not a terminal).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/http_client.h"
#include "support/wait.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "berth-signals-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A serve process with stderr in a file; SIGKILLed if the test leaves it running.
class Serve {
 public:
  Serve(const TempDir& dir, std::vector<std::string> extra) : log_(dir.path / "serve.log") {
    const char* bin_dir = std::getenv("BERTH_BIN_DIR");
    REQUIRE(bin_dir != nullptr);
    const fs::path port_file = dir.path / "port";
    std::vector<std::string> args{std::string(bin_dir) + "/berth-controller",
                                  "serve",
                                  "--data-dir",
                                  (dir.path / "data").string(),
                                  "--listen",
                                  "127.0.0.1:0",
                                  "--port-file",
                                  port_file.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    const bool listening = berth::testing::wait_until(
        [&] {
          std::ifstream in(port_file);
          return static_cast<bool>(in >> port_) && port_ > 0;
        },
        30s);
    REQUIRE(listening);
  }
  ~Serve() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  berth::testing::HttpResult get(const std::string& target) const {
    berth::testing::HttpClientOptions o;
    o.port = static_cast<std::uint16_t>(port_);
    return berth::testing::http_request(o, "GET", target);
  }

  // SIGTERM, then the exit code (-1: not a normal exit or not within the limit).
  int stop() {
    REQUIRE(kill(pid_, SIGTERM) == 0);
    int status = 0;
    const bool exited =
        berth::testing::wait_until([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, 30s);
    if (!exited) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::vector<std::string> log_lines() const {
    std::ifstream in(log_);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("a serving controller is live and ready, and says why it is not ready",
          "[api][serve][health]") {
  TempDir dir;
  Serve serve(dir, {});
  auto live = serve.get("/healthz");
  CHECK(live.status == 200);
  // The port file is written once the workers run: from then on the verdict is ready.
  auto ready = serve.get("/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.json()["status"] == "ok");
  CHECK(serve.stop() == 0);
}

TEST_CASE("serve logs JSON lines with a constant msg when stderr is not a terminal",
          "[api][serve][log]") {
  TempDir dir;
  Serve serve(dir, {});
  REQUIRE(serve.get("/healthz").status == 200);
  REQUIRE(serve.stop() == 0);
  const auto lines = serve.log_lines();
  REQUIRE_FALSE(lines.empty());
  bool saw_ready = false;
  for (const auto& line : lines) {
    INFO(line);
    const json j = json::parse(line, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    CHECK(j["ts"].is_string());
    CHECK(j["level"].is_string());
    CHECK(j["msg"].is_string());
    if (j["msg"] == "controller ready") {
      saw_ready = true;
      CHECK(j["address"].is_string());
    }
  }
  CHECK(saw_ready);
}

TEST_CASE("serve --log-format text writes TIME LEVEL msg key=value lines", "[api][serve][log]") {
  TempDir dir;
  Serve serve(dir, {"--log-format", "text"});
  REQUIRE(serve.get("/healthz").status == 200);
  REQUIRE(serve.stop() == 0);
  const auto lines = serve.log_lines();
  REQUIRE_FALSE(lines.empty());
  const std::regex shape(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) .+$)");
  const std::regex ready(R"( INFO controller ready .*address=127\.0\.0\.1:\d+)");
  bool saw_ready = false;
  for (const auto& line : lines) {
    INFO(line);
    CHECK(std::regex_match(line, shape));
    CHECK(line.front() != '{');
    if (std::regex_search(line, ready)) saw_ready = true;
  }
  CHECK(saw_ready);
}

TEST_CASE("serve refuses an unknown --log-format", "[api][serve][log]") {
  const char* bin_dir = std::getenv("BERTH_BIN_DIR");
  REQUIRE(bin_dir != nullptr);
  TempDir dir;
  const std::string cmd = std::string(bin_dir) + "/berth-controller serve --data-dir " +
                          (dir.path / "data").string() + " --log-format xml 2>/dev/null";
  const int status = std::system(cmd.c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  CHECK_FALSE(fs::exists(dir.path / "data"));
}
