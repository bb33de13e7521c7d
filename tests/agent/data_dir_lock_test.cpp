#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "agent/data_dir_lock.h"
#include "deployer_rig.h"

using namespace berth;
using namespace berth::agent;

TEST_CASE("A second agent on the same data dir is refused and told which process holds it",
          "[lock]") {
  const std::string dir = testing::temp_dir();
  {
    auto first = DataDirLock::acquire(dir);
    REQUIRE(first.ok());
    std::ifstream in(dir + "/agent.lock");
    std::string pid;
    in >> pid;
    CHECK(pid == std::to_string(::getpid()));

    // flock locks belong to the open file description: a second open in this process competes
    // exactly like another process would.
    auto second = DataDirLock::acquire(dir);
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().code == ErrorCode::kFailedPrecondition);
    CHECK_THAT(second.error().message, Catch::Contains("in use by another berth-agent"));
    CHECK_THAT(second.error().message, Catch::Contains("(pid " + std::to_string(::getpid()) + ")"));
  }
  // Released with its holder: the next agent starts.
  CHECK(DataDirLock::acquire(dir).ok());
  std::filesystem::remove_all(dir);
}
