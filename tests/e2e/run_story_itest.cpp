// hack/run.sh --exit as a test: the developer's demo (private registry, podman, berth-controller
// serve --local-agent, the curl story create -> v1, PATCH -> v2, 422, rollback -> v1) must keep
// working end to end, twice in the same run directory (the second run starts clean), and must say
// so at once when a port it needs is taken.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "support/skip.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;

namespace {

struct RunDir {
  std::string path = testenv::make_temp_dir("e2e-runsh");
  ~RunDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

struct RunResult {
  int rc = -1;
  std::string out;
};

RunResult run_sh(const std::string& run_dir, std::uint16_t api_port, std::uint16_t agent_port,
                 int timeout_seconds = 240) {
  RunResult r;
  r.rc = testenv::run_command({testenv::source_dir() + "/hack/run.sh", "--exit"}, &r.out,
                              {"BERTH_BIN_DIR=" + e2e::bin_dir(), "BERTH_RUN_DIR=" + run_dir,
                               "BERTH_API_PORT=" + std::to_string(api_port),
                               "BERTH_AGENT_PORT=" + std::to_string(agent_port)},
                              timeout_seconds);
  return r;
}

// A loopback listener that is not berth: it accepts nothing and answers nothing.
class Squatter {
 public:
  Squatter() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~Squatter() { ::close(fd_); }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

void check_story(const RunResult& r, const std::string& run_dir) {
  INFO(r.out);
  INFO("berth.log:\n" << e2e::read_file(run_dir + "/berth.log"));
  CHECK(r.rc == 0);
  // Each step announces itself and checks its own outcome (the script dies otherwise).
  for (const char* line :
       {"==> private registry (htpasswd + TLS) on loopback", "==> 1. create my-api from ",
        "==> 2. PATCH to v2 without the password",
        "==> 3. PATCH with a new username and no password is refused",
        "==> 4. roll back to the first deployment",
        "==> the story is done: v1 -> v2 -> 422 -> rollback to v1", "==> stopping"}) {
    CHECK(r.out.find(line) != std::string::npos);
  }
  CHECK(r.out.find("Running at http://127.0.0.1:") != std::string::npos);
  CHECK(r.out.find("serving: v2") != std::string::npos);
  CHECK(r.out.find("422 {") != std::string::npos);
  CHECK(r.out.find("serving: v1") != std::string::npos);
  // Only this run's service: nothing of an earlier run lingers.
  CHECK(r.out.find("app services: 1\n") != std::string::npos);
  CHECK(r.out.find("run.sh:") == std::string::npos);  // die() prefix
  // The registry password (every encoded form) stayed out of the output and berth's log.
  const std::string password = e2e::read_file(run_dir + "/registry/password");
  CHECK_FALSE(password.empty());
  const berth::testing::SecretScan scan(password, "berth");
  CHECK(scan.lines_in(r.out).empty());
  CHECK(scan.lines_in(e2e::read_file(run_dir + "/berth.log")).empty());
}

}  // namespace

TEST_CASE(
    "hack/run.sh walks the private-registry story to the end and exits 0, again on the same run "
    "directory",
    "[e2e][run-sh]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  RunDir dir;
  const RunResult first = run_sh(dir.path, e2e::free_port(), e2e::free_port());
  {
    INFO("first run");
    check_story(first, dir.path);
  }
  CHECK(first.out.find("removing the state of an earlier run") == std::string::npos);

  // The first run's data names its registry's port, which is gone: the second run starts clean.
  const RunResult second = run_sh(dir.path, e2e::free_port(), e2e::free_port());
  INFO("second run");
  check_story(second, dir.path);
  CHECK(second.out.find("removing the state of an earlier run") != std::string::npos);
}

TEST_CASE("hack/run.sh reports a port that another process holds at start and starts nothing",
          "[e2e][run-sh]") {
  // Needs no peer: the script must stop before it installs, builds or starts anything.
  RunDir dir;
  for (const bool api : {true, false}) {
    Squatter squatter;
    const std::uint16_t api_port = api ? squatter.port() : e2e::free_port();
    const std::uint16_t agent_port = api ? e2e::free_port() : squatter.port();
    const RunResult r = run_sh(dir.path, api_port, agent_port, 60);
    INFO(r.out);
    CHECK(r.rc == 1);
    const std::string port = std::to_string(squatter.port());
    CHECK(r.out.find("run.sh: port " + port + " is already in use") != std::string::npos);
    CHECK(r.out.find(api ? "BERTH_API_PORT=PORT" : "BERTH_AGENT_PORT=PORT") != std::string::npos);
    // Named as what it is, by pid, when ss can tell (this test process holds it).
    if (testenv::on_path("ss")) {
      CHECK(r.out.find("by pid " + std::to_string(::getpid())) != std::string::npos);
    }
    CHECK(r.out.find("password") == std::string::npos);
    CHECK(r.out.find("==> ") == std::string::npos);  // no step started
  }
  CHECK_FALSE(std::filesystem::exists(dir.path + "/data"));
}

TEST_CASE("hack/run.sh --help prints its usage with the port variables, not its source",
          "[e2e][run-sh]") {
  std::string out;
  const int rc = testenv::run_command({testenv::source_dir() + "/hack/run.sh", "--help"}, &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.rfind("Usage: hack/run.sh", 0) == 0);
  for (const char* var : {"BERTH_API_PORT", "BERTH_AGENT_PORT", "BERTH_RUN_DIR", "BERTH_BIN_DIR"}) {
    CHECK(out.find(var) != std::string::npos);
  }
  CHECK(out.find("set -euo pipefail") == std::string::npos);
  CHECK(out.find("#!/") == std::string::npos);
}
