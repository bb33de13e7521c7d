// hack/run.sh --exit as a test: the developer's demo (private registry, podman, berth-controller
// serve --local-agent, the curl story create -> v1, PATCH -> v2, 422, rollback -> v1) must keep
// working end to end.
#include <filesystem>

#include <catch2/catch.hpp>

#include "e2e/stack.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;

TEST_CASE("hack/run.sh walks the private-registry story to the end and exits 0", "[e2e][run-sh]") {
  if (!testenv::podman_usable()) {
    WARN(testenv::podman_unusable_reason());
    return;
  }
  const std::string run_dir = testenv::make_temp_dir("e2e-runsh");
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{run_dir};

  std::string out;
  const int rc =
      testenv::run_command({testenv::source_dir() + "/hack/run.sh", "--exit"}, &out,
                           {"BERTH_BIN_DIR=" + e2e::bin_dir(), "BERTH_RUN_DIR=" + run_dir,
                            "BERTH_API_PORT=" + std::to_string(e2e::free_port()),
                            "BERTH_AGENT_PORT=" + std::to_string(e2e::free_port())},
                           240);
  INFO(out);
  INFO("berth.log:\n" << e2e::read_file(run_dir + "/berth.log"));
  CHECK(rc == 0);
  // Each step announces itself and checks its own outcome (the script dies otherwise).
  for (const char* line :
       {"==> private registry (htpasswd + TLS) on loopback", "==> 1. create my-api from ",
        "==> 2. PATCH to v2 without the password",
        "==> 3. PATCH with a new username and no password is refused",
        "==> 4. roll back to the first deployment",
        "==> the story is done: v1 -> v2 -> 422 -> rollback to v1", "==> stopping"}) {
    CHECK(out.find(line) != std::string::npos);
  }
  CHECK(out.find("Running at http://127.0.0.1:") != std::string::npos);
  CHECK(out.find("serving: v2") != std::string::npos);
  CHECK(out.find("422 {") != std::string::npos);
  CHECK(out.find("serving: v1") != std::string::npos);
  CHECK(out.find("run.sh:") == std::string::npos);  // die() prefix
  // The registry password stayed out of the script's output and berth's log.
  const std::string password = e2e::read_file(run_dir + "/registry/password");
  if (!password.empty()) {
    CHECK(out.find(password) == std::string::npos);
    CHECK(e2e::read_file(run_dir + "/berth.log").find(password) == std::string::npos);
  }
}
