// The data-directory lock that keeps a master-key rotation away from a running controller.
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "common/secret.h"
#include "store/sqlite_store.h"
#include "support/temp_dir.h"
#include "support/testenv.h"

using namespace berth;

namespace {

struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-lock") {}
};

}  // namespace

TEST_CASE("Rotating the master key is refused while another process has the store open",
          "[store][rotation]") {
  TempDir dir;
  auto serve = store::SqliteStore::open(dir.path / "data");
  REQUIRE(serve.ok());
  auto admin = store::SqliteStore::open(dir.path / "data");
  REQUIRE(admin.ok());
  const std::string before = (*admin)->current_key_id();

  auto refused = (*admin)->rotate_master_key();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::kFailedPrecondition);
  CHECK(refused.error().message.find("stop it before rotating") != std::string::npos);
  CHECK((*admin)->current_key_id() == before);

  // The refused attempt kept its shared lock: a second one is refused the same way.
  CHECK_FALSE((*admin)->rotate_master_key().ok());

  serve.value().reset();  // the controller stops
  auto rotated = (*admin)->rotate_master_key();
  REQUIRE(rotated.ok());
  CHECK(rotated->old_key_id == before);
  CHECK(rotated->new_key_id != before);

  // After the rotation the store is shared again: a controller can open it.
  CHECK(store::SqliteStore::open(dir.path / "data").ok());
}
