// The main of every test binary: Catch2's session plus the skip bookkeeping of support/skip.h,
// so a binary whose test cases were all skipped exits with kSkipExitCode (ctest: "Skipped").
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support/skip.h"

namespace {

class SkipListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    berth::testing::skip_detail::test_case_starting(info.name);
  }
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    berth::testing::skip_detail::test_case_ended();
    TestEventListenerBase::testCaseEnded(stats);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(SkipListener)

int main(int argc, char* argv[]) {
  Catch::Session session;
  return berth::testing::skip_detail::exit_code(session.run(argc, argv));
}
