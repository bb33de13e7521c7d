#include "support/skip.h"

#include <cstdlib>
#include <iostream>
#include <string_view>
#include <utility>

#include <catch2/catch.hpp>

namespace berth::testing {
namespace {

struct Run {
  int test_cases = 0;
  std::string current;
  bool current_skipped = false;
  std::vector<std::pair<std::string, std::string>> skipped;  // test case, reason
};

Run& run() {
  static Run r;
  return r;
}

}  // namespace

bool ci_forbids_skipping() {
  const char* ci = std::getenv("CI");
  if (ci == nullptr) return false;
  const std::string_view v(ci);
  return v == "true" || v == "TRUE" || v == "True" || v == "1";
}

void skip_test(const std::string& reason) {
  if (ci_forbids_skipping()) {
    FAIL("a peer this test needs is missing, and CI=true does not allow skipping: " << reason);
  }
  WARN("SKIPPED: " << reason);
  Run& r = run();
  if (!r.current_skipped) r.skipped.emplace_back(r.current, reason);
  r.current_skipped = true;
}

namespace skip_detail {

void test_case_starting(const std::string& name) {
  Run& r = run();
  ++r.test_cases;
  r.current = name;
  r.current_skipped = false;
}

void test_case_ended() { run().current_skipped = false; }

int exit_code(int catch_result) {
  const Run& r = run();
  if (!r.skipped.empty()) {
    std::cout << "berth: skipped " << r.skipped.size() << " of " << r.test_cases
              << " test case(s), a peer they need is missing:\n";
    for (const auto& [name, reason] : r.skipped) {
      std::cout << "  SKIPPED " << name << ": " << reason << "\n";
    }
    std::cout.flush();
  }
  if (catch_result != 0) return catch_result;
  if (r.test_cases > 0 && static_cast<int>(r.skipped.size()) == r.test_cases) return kSkipExitCode;
  return 0;
}

}  // namespace skip_detail
}  // namespace berth::testing
