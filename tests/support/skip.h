#pragma once
// Skipping a test honestly. Catch2 v2 has no SKIP, and a test that returns early without a real
// peer would otherwise be reported as passed. A test declares the peers it needs first:
//
//   TEST_CASE("...", "[e2e]") {
//     BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
//     ...
//
// When a peer is missing the test returns at once and is recorded as skipped with the reason;
// the test binary (support/catch_main.cpp) then exits with kSkipExitCode when every test case it
// ran was skipped, which ctest reports as "Skipped" (SKIP_RETURN_CODE, set for every test by
// berth_tests()). Under CI=true a missing peer fails the test instead, naming what is missing:
// CI machines have every peer, so a skip there means the run tested less than it claims.
//
// Threading: call from the test thread only (it uses Catch's assertion macros).
#include <string>
#include <vector>

#include "support/testenv.h"

namespace berth::testing {

// The exit code of a test binary whose every test case was skipped (automake's convention).
inline constexpr int kSkipExitCode = 77;

// Whether the environment forbids skipping (CI set to "true" or "1").
bool ci_forbids_skipping();

// Records that the running test case cannot run because of `reason`, with a Catch warning that
// says so. Under CI=true it FAILs the test case instead (throws Catch's failure exception). The
// caller must return right after it; BERTH_REQUIRE_PEERS does.
void skip_test(const std::string& reason);

// Bookkeeping for support/catch_main.cpp's listener and main.
namespace skip_detail {
void test_case_starting(const std::string& name);
void test_case_ended();
// Prints the skipped test cases and maps Catch's result to the process exit code: Catch's own
// code when anything failed, kSkipExitCode when every test case that ran was skipped, else 0.
int exit_code(int catch_result);
}  // namespace skip_detail

}  // namespace berth::testing

// Skips the current test case (or fails it under CI=true) when any of the listed
// berth::testenv::Peer values is missing on this machine.
#define BERTH_REQUIRE_PEERS(...)                                                             \
  do {                                                                                       \
    const std::string berth_missing_peers_ = ::berth::testenv::missing_peers({__VA_ARGS__}); \
    if (!berth_missing_peers_.empty()) {                                                     \
      ::berth::testing::skip_test(berth_missing_peers_);                                     \
      return;                                                                                \
    }                                                                                        \
  } while (false)
