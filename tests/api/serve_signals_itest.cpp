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
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/http_client.h"
#include "support/skip.h"
#include "support/temp_dir.h"
#include "support/wait.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// A scratch directory named after this suite.
struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-signals") {}
};

// A serve process with stderr in a file; SIGKILLed if the test leaves it running.
class Serve {
 public:
  // `wrap`, when given, runs first and execs the rest (e.g. a new mount namespace).
  Serve(const TempDir& dir, std::vector<std::string> extra, std::vector<std::string> wrap = {})
      : log_(dir.path / "serve.log") {
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
    args.insert(args.begin(), wrap.begin(), wrap.end());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
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

  berth::testing::HttpResult get(const std::string& target) const { return request("GET", target); }

  berth::testing::HttpResult request(const std::string& method, const std::string& target,
                                     const std::string& body = {},
                                     const std::map<std::string, std::string>& headers = {}) const {
    berth::testing::HttpClientOptions o;
    o.port = static_cast<std::uint16_t>(port_);
    return berth::testing::http_request(o, method, target, body, headers);
  }

  pid_t pid() const { return pid_; }

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

// The store's write check seen from outside: the database's file system fills up, the write that
// hits it is refused with 503, /readyz turns 503 and names the reason, and both recover by
// themselves once space is free again. The data directory is a 1 MiB tmpfs mounted in a mount
// namespace of the serve process only (unshare -m; needs CAP_SYS_ADMIN, which CI has as root);
// the test reaches it through /proc/PID/root.
TEST_CASE("serve is not ready while its database's disk is full, and recovers when space returns",
          "[api][serve][health]") {
  if (std::system("unshare -m true >/dev/null 2>&1") != 0) {
    berth::testing::skip_test("cannot create a mount namespace (unshare -m): needs CAP_SYS_ADMIN");
    return;
  }
  const char* bin_dir = std::getenv("BERTH_BIN_DIR");
  REQUIRE(bin_dir != nullptr);
  TempDir dir;
  const fs::path data = dir.path / "data";
  fs::create_directories(data);
  const std::string account_password = "disk-full-account-pw";
  {
    std::ofstream pw(dir.path / "pw");
    pw << account_password << "\n";
  }
  // sh -c SCRIPT sh DATA BIN PWFILE serve-argv...: mount, add the account, exec serve.
  const std::string script =
      "mount -t tmpfs -o size=1m,mode=0700 berth-test \"$1\" || exit 1; "
      "\"$2\" account add alice --data-dir \"$1\" < \"$3\" >/dev/null || exit 1; "
      "shift 3; exec \"$@\"";
  Serve serve(dir, {},
              {"unshare", "-m", "sh", "-c", script, "sh", data.string(),
               std::string(bin_dir) + "/berth-controller", (dir.path / "pw").string()});
  REQUIRE(serve.get("/readyz").status == 200);

  const std::map<std::string, std::string> auth{
      {"Authorization", berth::testing::basic_auth("alice", account_password)},
      {"Content-Type", "application/json"}};
  auto create = [&](const std::string& name) {
    const json body = {
        {"name", name},
        {"plan_name", "tier-2"},
        {"app_config", {{"image_ref", "registry.test/acme/api:1.0.0"}, {"container_port", 8080}}}};
    return serve.request("POST", "/app-services", body.dump(), auth);
  };
  REQUIRE(create("before-full").status == 201);

  // Fill the tmpfs as seen by the serve process.
  const fs::path filler =
      fs::path("/proc/" + std::to_string(serve.pid()) + "/root") / data.relative_path() / "filler";
  {
    std::ofstream out(filler, std::ios::binary);
    REQUIRE(out.is_open());
    const std::string chunk(4096, 'x');
    while (out.write(chunk.data(), static_cast<std::streamsize>(chunk.size())) && out.flush()) {
    }
  }

  // Writes fail until one hits the full disk; SQLite may still fit a page or two.
  berth::testing::HttpResult refused;
  for (int i = 0; i < 20; ++i) {
    refused = create("during-full-" + std::to_string(i));
    if (refused.status != 201) break;
  }
  INFO(refused.body);
  CHECK(refused.status == 503);
  const auto not_ready = serve.get("/readyz");
  INFO(not_ready.body);
  CHECK(not_ready.status == 503);
  CHECK(not_ready.body.find("disk is full") != std::string::npos);
  CHECK(serve.get("/healthz").status == 200);

  fs::remove(filler);
  // The next write that succeeds clears the verdict: no operator step.
  CHECK(create("after-full").status == 201);
  const auto ready = serve.get("/readyz");
  INFO(ready.body);
  CHECK(ready.status == 200);
  const auto list = serve.request("GET", "/app-services", {}, auth);
  CHECK(list.status == 200);
  CHECK(list.body.find("before-full") != std::string::npos);
  CHECK(list.body.find("after-full") != std::string::npos);
  CHECK(serve.stop() == 0);
}
