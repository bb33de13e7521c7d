// The skip helper end to end: a test binary (berth_skip_probe) whose peer is missing (podman
// hidden from PATH) exits with ctest's skip code and names what is missing; under CI=true it
// fails instead; skips never hide a failure or turn a mixed run into a skip.
#include <string>

#include <catch2/catch.hpp>

#include "support/skip.h"
#include "support/testenv.h"

namespace testenv = berth::testenv;
using berth::testing::kSkipExitCode;

namespace {

std::string probe() {
  const char* dir = std::getenv("BERTH_BIN_DIR");
  REQUIRE(dir != nullptr);
  return std::string(dir) + "/berth_skip_probe";
}

struct Run {
  int rc = -1;
  std::string out;
};

// Runs the probe on `tests` with PATH empty of everything but an empty dir: no podman.
Run run_probe(const std::vector<std::string>& tests, const std::string& ci) {
  const std::string empty = testenv::make_temp_dir("no-podman");
  Run r;
  std::string spec;  // Catch v2: one argument, test names separated by commas
  for (const auto& t : tests) spec += (spec.empty() ? "" : ",") + t;
  r.rc = testenv::run_command({probe(), spec}, &r.out, {"PATH=" + empty, "CI=" + ci}, 60);
  ::rmdir(empty.c_str());
  return r;
}

}  // namespace

TEST_CASE("A test whose peer is missing exits with the skip code and says what is missing",
          "[skip]") {
  const Run r = run_probe({"probe: needs podman"}, "");
  INFO(r.out);
  CHECK(r.rc == kSkipExitCode);
  CHECK(r.out.find("SKIPPED probe: needs podman: podman: podman is not installed") !=
        std::string::npos);
}

TEST_CASE("Under CI=true a test whose peer is missing fails and names what is missing", "[skip]") {
  for (const char* ci : {"true", "1"}) {
    const Run r = run_probe({"probe: needs podman"}, ci);
    INFO("CI=" << ci << "\n" << r.out);
    CHECK(r.rc != 0);
    CHECK(r.rc != kSkipExitCode);
    // Catch wraps its messages at 80 columns: look for the two halves.
    CHECK(r.out.find("CI=true does not allow skipping:") != std::string::npos);
    CHECK(r.out.find("podman: podman is not installed") != std::string::npos);
    CHECK(r.out.find("SKIPPED") == std::string::npos);
  }
}

TEST_CASE("A skip beside a passing test exits 0 and still lists the skip", "[skip]") {
  const Run r = run_probe({"probe: needs podman", "probe: passes"}, "");
  INFO(r.out);
  CHECK(r.rc == 0);
  CHECK(r.out.find("All tests passed (1 assertion in 2 test cases)") != std::string::npos);
  CHECK(r.out.find("skipped 1 of 2 test case(s)") != std::string::npos);
}

TEST_CASE("A skip never hides a failing test", "[skip]") {
  const Run r = run_probe({"probe: needs podman", "probe: fails"}, "");
  INFO(r.out);
  CHECK(r.out.find("test cases: 2 | 1 passed | 1 failed") != std::string::npos);
  CHECK(r.rc != 0);
  CHECK(r.rc != kSkipExitCode);
}

TEST_CASE("A passing test exits 0 whatever CI says", "[skip]") {
  for (const char* ci : {"", "true"}) {
    const Run r = run_probe({"probe: passes"}, ci);
    INFO("CI=" << ci << "\n" << r.out);
    CHECK(r.rc == 0);
  }
}
