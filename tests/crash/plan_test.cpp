// The crash suite's plan (crash_support.h): a seed replays the same kills, and every round of 14
// covers every (point, process) pair, so each mode's default count covers them all.
#include <set>
#include <utility>

#include <catch2/catch.hpp>

#include "crash/crash_support.h"

namespace crash = berth::crash;

namespace {

std::vector<std::pair<std::string, crash::Victim>> as_pairs(const std::vector<crash::Kill>& kills) {
  std::vector<std::pair<std::string, crash::Victim>> out;
  for (const auto& k : kills) out.emplace_back(k.point, k.victim);
  return out;
}

}  // namespace

TEST_CASE("A crash seed replays the same kills", "[crash][plan]") {
  CHECK(as_pairs(crash::plan(42, 30)) == as_pairs(crash::plan(42, 30)));
  CHECK(as_pairs(crash::plan(42, 30)) != as_pairs(crash::plan(43, 30)));
  // A shorter run is the start of the longer one.
  const auto long_plan = as_pairs(crash::plan(7, 20));
  const auto short_plan = as_pairs(crash::plan(7, 5));
  CHECK(std::equal(short_plan.begin(), short_plan.end(), long_plan.begin()));
}

TEST_CASE("Every round of 14 crash kills covers every point in both processes", "[crash][plan]") {
  for (std::uint64_t seed : {0ULL, 1ULL, 7ULL, 1418972190512550564ULL}) {
    const auto kills = crash::plan(seed, 28);
    REQUIRE(kills.size() == 28);
    for (std::size_t round = 0; round < 2; ++round) {
      std::set<std::pair<std::string, crash::Victim>> seen;
      for (std::size_t i = round * 14; i < round * 14 + 14; ++i) {
        seen.insert({kills[i].point, kills[i].victim});
      }
      INFO("seed " << seed << ", round " << round);
      CHECK(seen.size() == 2 * crash::points().size());
    }
  }
}
