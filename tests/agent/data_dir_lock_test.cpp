#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/dir_lock.h"
#include "deployer_rig.h"

using namespace berth;

// The agent claims DATA_DIR/agent.lock with the shared DirLock (agent/main.cpp), as serve does
// with berth.lock.
TEST_CASE("A second agent on the same data dir is refused and told which process holds it",
          "[lock]") {
  const std::filesystem::path dir = agent::testing::temp_dir();
  const auto lock_file = dir / "agent.lock";
  {
    auto first = DirLock::acquire(lock_file, "berth-agent");
    REQUIRE(first.ok());
    auto holder = read_lock_holder(lock_file);
    REQUIRE(holder.has_value());
    CHECK(holder->pid == ::getpid());
    CHECK(holder->holder == "berth-agent");

    // OFD locks belong to the open file description: a second open in this process competes
    // exactly like another process would.
    auto second = DirLock::acquire(lock_file, "berth-agent");
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().code == ErrorCode::kFailedPrecondition);
    CHECK_THAT(second.error().message, Catch::Contains("in use by berth-agent"));
    CHECK_THAT(second.error().message, Catch::Contains("(pid " + std::to_string(::getpid()) + ")"));
  }
  // Released with its holder: the next agent starts.
  CHECK(DirLock::acquire(lock_file, "berth-agent").ok());
  std::filesystem::remove_all(dir);
}
