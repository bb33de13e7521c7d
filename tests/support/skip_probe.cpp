// A test binary with known outcomes, run as a process by skip_itest.cpp to prove how skips reach
// the exit code: one test case per outcome.
#include <catch2/catch.hpp>

#include "support/skip.h"

namespace testenv = berth::testenv;

TEST_CASE("probe: needs podman") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman);
  CHECK(true);
}

TEST_CASE("probe: passes") { CHECK(1 + 1 == 2); }

TEST_CASE("probe: fails") { CHECK(1 + 1 == 3); }
