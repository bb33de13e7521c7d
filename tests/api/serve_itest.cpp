// `berth-controller serve` as a process: port 0 with --port-file, a real request, and a clean
// exit on SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support/http_client.h"
#include "support/temp_dir.h"

extern char** environ;

namespace fs = std::filesystem;

namespace {

// A scratch directory named after this suite.
struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-serve") {}
};

pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

int wait_exit(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -2;
}

}  // namespace

TEST_CASE("serve listens on port 0, reports the port and stops cleanly on SIGTERM",
          "[api][serve]") {
  const char* bin_dir = std::getenv("BERTH_BIN_DIR");
  REQUIRE(bin_dir != nullptr);
  TempDir dir;
  const fs::path port_file = dir.path / "port";
  const fs::path log = dir.path / "serve.log";
  const pid_t pid = spawn(
      {std::string(bin_dir) + "/berth-controller", "serve", "--data-dir",
       (dir.path / "data").string(), "--listen", "127.0.0.1:0", "--port-file", port_file.string()},
      log);
  REQUIRE(pid > 0);

  int port = 0;
  for (int i = 0; i < 500 && port == 0; ++i) {
    std::ifstream in(port_file);
    if (!(in >> port)) port = 0;
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (port == 0) kill(pid, SIGKILL);
  REQUIRE(port > 0);

  berth::testing::HttpClientOptions o;
  o.port = static_cast<std::uint16_t>(port);
  auto health = berth::testing::http_request(o, "GET", "/healthz");
  CHECK(health.status == 200);
  auto unauth = berth::testing::http_request(o, "GET", "/app-services");
  CHECK(unauth.status == 401);

  REQUIRE(kill(pid, SIGTERM) == 0);
  CHECK(wait_exit(pid, std::chrono::seconds(10)) == 0);

  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("\"api listening\"") != std::string::npos);
  CHECK(text.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
}

TEST_CASE("serve refuses plain HTTP on a non-loopback address without --insecure-http",
          "[api][serve]") {
  const char* bin_dir = std::getenv("BERTH_BIN_DIR");
  REQUIRE(bin_dir != nullptr);
  TempDir dir;
  const pid_t pid = spawn({std::string(bin_dir) + "/berth-controller", "serve", "--data-dir",
                           (dir.path / "data").string(), "--listen", "0.0.0.0:0"},
                          dir.path / "serve.log");
  REQUIRE(pid > 0);
  CHECK(wait_exit(pid, std::chrono::seconds(10)) == 1);
}
