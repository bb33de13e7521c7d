#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <string>

#include <sys/stat.h>

#include "crypto/sealer.h"
#include "support/temp_dir.h"

using berth::ErrorCode;
using berth::Secret;
using berth::crypto::credential_aad;
using berth::crypto::Keyring;
using berth::crypto::SealedBlob;

// A scratch directory named after this suite.
struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-crypto") {}
};
namespace fs = std::filesystem;

namespace {

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_raw(const fs::path& p, const std::string& bytes, fs::perms perms) {
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  fs::permissions(p, perms);
}

const std::string kAad = credential_aad("svc", "registry.example:5000", "deploy");

SealedBlob seal(const Keyring& ring, std::string_view text) {
  auto blob = ring.seal(Secret(text), kAad);
  REQUIRE(blob.ok());
  return std::move(blob).value();
}

std::string open(const Keyring& ring, const SealedBlob& blob) {
  auto plain = ring.unseal(blob, kAad);
  REQUIRE(plain.ok());
  return std::string(plain->reveal());
}

}  // namespace

TEST_CASE("load_or_create makes a 0600 32-byte key in a new 0700 directory and reloads it",
          "[keyring]") {
  TempDir tmp;
  const fs::path key = tmp.path / "data" / "master.key";
  auto ring = Keyring::load_or_create(key);
  REQUIRE(ring.ok());
  CHECK(mode_of(key) == 0600);
  CHECK(mode_of(key.parent_path()) == 0700);
  CHECK(fs::file_size(key) == 32);
  CHECK(ring->current_key_id().size() == 16);
  // No temp files left beside the key.
  CHECK(std::distance(fs::directory_iterator(key.parent_path()), fs::directory_iterator()) == 1);

  const SealedBlob blob = seal(*ring, "hunter2");
  auto again = Keyring::load_or_create(key);
  REQUIRE(again.ok());
  CHECK(again->current_key_id() == ring->current_key_id());
  CHECK(open(*again, blob) == "hunter2");
  auto loaded = Keyring::load(key);
  REQUIRE(loaded.ok());
  CHECK(open(*loaded, blob) == "hunter2");
}

TEST_CASE("load refuses a missing key file instead of creating one", "[keyring]") {
  TempDir tmp;
  auto r = Keyring::load(tmp.path / "master.key");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kFailedPrecondition);
  CHECK(r.error().message.find("does not exist") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp.path / "master.key"));
}

TEST_CASE("A group- or world-readable key file is refused", "[keyring]") {
  TempDir tmp;
  const fs::path key = tmp.path / "master.key";
  REQUIRE(Keyring::load_or_create(key).ok());
  for (auto perms : {fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read,
                     fs::perms::owner_read | fs::perms::others_read}) {
    fs::permissions(key, perms);
    auto r = Keyring::load(key);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kFailedPrecondition);
    CHECK(r.error().message.find("chmod 600") != std::string::npos);
    CHECK_FALSE(Keyring::load_or_create(key).ok());
  }
}

TEST_CASE("A truncated or oversized key file is refused as corrupt", "[keyring]") {
  TempDir tmp;
  const fs::path key = tmp.path / "master.key";
  const auto owner_rw = fs::perms::owner_read | fs::perms::owner_write;
  SECTION("truncated") {
    write_raw(key, std::string(31, 'k'), owner_rw);
    auto r = Keyring::load_or_create(key);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kDataLoss);
    CHECK(r.error().message.find("31 bytes") != std::string::npos);
    CHECK(fs::file_size(key) == 31);  // not replaced by a new key
  }
  SECTION("empty") {
    write_raw(key, "", owner_rw);
    auto r = Keyring::load(key);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kDataLoss);
  }
  SECTION("oversized") {
    write_raw(key, std::string(33, 'k'), owner_rw);
    auto r = Keyring::load(key);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kDataLoss);
  }
}

TEST_CASE("A directory in place of the key file is refused", "[keyring]") {
  TempDir tmp;
  fs::create_directory(tmp.path / "master.key");
  auto r = Keyring::load_or_create(tmp.path / "master.key");
  REQUIRE_FALSE(r.ok());
}

TEST_CASE(
    "Rotation keeps old ciphertexts readable until finish, and a reload sees only the new key",
    "[keyring][rotation]") {
  TempDir tmp;
  const fs::path key = tmp.path / "master.key";
  const fs::path next = tmp.path / "master.key.next";
  auto ring = Keyring::load_or_create(key);
  REQUIRE(ring.ok());
  const std::string old_id = ring->current_key_id();
  const std::string old_bytes = read_all(key);
  const SealedBlob old_blob = seal(*ring, "old-password");

  REQUIRE(ring->begin_rotation().ok());
  REQUIRE(fs::exists(next));
  CHECK(mode_of(next) == 0600);
  CHECK(fs::file_size(next) == 32);
  CHECK(read_all(key) == old_bytes);
  const std::string new_id = ring->current_key_id();
  CHECK(new_id != old_id);
  CHECK(ring->has_key(old_id));

  const SealedBlob new_blob = seal(*ring, "new-password");
  CHECK(new_blob.key_id == new_id);
  CHECK(open(*ring, old_blob) == "old-password");
  CHECK(open(*ring, new_blob) == "new-password");

  // The caller re-seals the old ciphertext, then finishes.
  const SealedBlob resealed = seal(*ring, open(*ring, old_blob));
  REQUIRE(ring->finish_rotation().ok());
  CHECK_FALSE(fs::exists(next));
  CHECK(mode_of(key) == 0600);
  CHECK_FALSE(ring->has_key(old_id));
  CHECK(ring->current_key_id() == new_id);

  auto reloaded = Keyring::load(key);
  REQUIRE(reloaded.ok());
  CHECK(reloaded->current_key_id() == new_id);
  CHECK_FALSE(reloaded->has_key(old_id));
  CHECK(open(*reloaded, new_blob) == "new-password");
  CHECK(open(*reloaded, resealed) == "old-password");
  auto stale = reloaded->unseal(old_blob, kAad);
  REQUIRE_FALSE(stale.ok());
  CHECK(stale.error().code == ErrorCode::kDataLoss);
  CHECK(stale.error().message.find(old_id) != std::string::npos);
}

TEST_CASE("A crash between begin_rotation and finish_rotation loses nothing",
          "[keyring][rotation]") {
  TempDir tmp;
  const fs::path key = tmp.path / "master.key";
  SealedBlob old_blob, new_blob;
  std::string old_id, new_id;
  {
    auto ring = Keyring::load_or_create(key);
    REQUIRE(ring.ok());
    old_id = ring->current_key_id();
    old_blob = seal(*ring, "sealed-before");
    REQUIRE(ring->begin_rotation().ok());
    new_id = ring->current_key_id();
    new_blob = seal(*ring, "sealed-during");
    // The process dies here: no finish_rotation().
  }
  auto after_crash = Keyring::load_or_create(key);
  REQUIRE(after_crash.ok());
  CHECK(after_crash->has_key(old_id));
  CHECK(after_crash->has_key(new_id));
  CHECK(after_crash->current_key_id() == new_id);
  CHECK(open(*after_crash, old_blob) == "sealed-before");
  CHECK(open(*after_crash, new_blob) == "sealed-during");

  // Running the rotation again resumes with the key already on disk.
  REQUIRE(after_crash->begin_rotation().ok());
  CHECK(after_crash->current_key_id() == new_id);
  REQUIRE(after_crash->finish_rotation().ok());
  // A repeated finish (e.g. after a crash right after the rename) is harmless.
  REQUIRE(after_crash->finish_rotation().ok());
  auto done = Keyring::load(key);
  REQUIRE(done.ok());
  CHECK(done->current_key_id() == new_id);
  CHECK(open(*done, new_blob) == "sealed-during");
}

TEST_CASE("finish_rotation without a rotation in progress is refused", "[keyring][rotation]") {
  TempDir tmp;
  const fs::path key = tmp.path / "master.key";
  auto a = Keyring::load_or_create(key);
  REQUIRE(a.ok());
  // Another process replaced the key file: this keyring's current key is no longer on disk.
  fs::remove(key);
  auto b = Keyring::load_or_create(key);
  REQUIRE(b.ok());
  REQUIRE(b->current_key_id() != a->current_key_id());
  berth::Status st = a->finish_rotation();
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kFailedPrecondition);
}

TEST_CASE("A lost key file next to a pending .next key is not silently replaced",
          "[keyring][rotation]") {
  TempDir tmp;
  const fs::path key = tmp.path / "master.key";
  auto ring = Keyring::load_or_create(key);
  REQUIRE(ring.ok());
  REQUIRE(ring->begin_rotation().ok());
  fs::remove(key);
  auto r = Keyring::load_or_create(key);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kFailedPrecondition);
  CHECK_FALSE(fs::exists(key));
}

TEST_CASE("A group-readable .next key file is refused too", "[keyring][rotation]") {
  TempDir tmp;
  const fs::path key = tmp.path / "master.key";
  auto ring = Keyring::load_or_create(key);
  REQUIRE(ring.ok());
  REQUIRE(ring->begin_rotation().ok());
  fs::permissions(key.string() + ".next", fs::perms::group_read, fs::perm_options::add);
  auto r = Keyring::load(key);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kFailedPrecondition);
}
