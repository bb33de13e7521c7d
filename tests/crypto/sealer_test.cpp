#include <catch2/catch.hpp>

#include <string>

#include "crypto/sealer.h"

using berth::ErrorCode;
using berth::Secret;
using berth::crypto::credential_aad;
using berth::crypto::Keyring;
using berth::crypto::SealedBlob;

namespace {

Keyring ring_with(char fill) {
  auto ring = Keyring::from_key(Secret(std::string(32, fill)));
  REQUIRE(ring.ok());
  return std::move(ring).value();
}

const std::string kAad = credential_aad("svc-1", "ghcr.io", "octocat");

void require_data_loss(const berth::Result<Secret>& r) {
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kDataLoss);
  CHECK_FALSE(r.error().message.empty());
}

}  // namespace

TEST_CASE("A sealed password unseals to the same bytes with the same associated data", "[sealer]") {
  const Keyring ring = ring_with('k');
  const Secret password("ghp_s3cret-token");
  auto blob = ring.seal(password, kAad);
  REQUIRE(blob.ok());
  CHECK(blob->key_id == ring.current_key_id());
  CHECK(blob->nonce.size() == 12);
  CHECK(blob->ciphertext.size() == password.size() + 16);
  const std::string cipher(blob->ciphertext.begin(), blob->ciphertext.end());
  CHECK(cipher.find("s3cret") == std::string::npos);

  auto opened = ring.unseal(*blob, kAad);
  REQUIRE(opened.ok());
  CHECK(opened->reveal() == "ghp_s3cret-token");
}

TEST_CASE("An empty password seals and unseals", "[sealer]") {
  const Keyring ring = ring_with('k');
  auto blob = ring.seal(Secret(""), kAad);
  REQUIRE(blob.ok());
  auto opened = ring.unseal(*blob, kAad);
  REQUIRE(opened.ok());
  CHECK(opened->empty());
}

TEST_CASE("Two seals of the same plaintext use different nonces and ciphertexts", "[sealer]") {
  const Keyring ring = ring_with('k');
  auto a = ring.seal(Secret("same"), kAad);
  auto b = ring.seal(Secret("same"), kAad);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->nonce != b->nonce);
  CHECK(a->ciphertext != b->ciphertext);
}

TEST_CASE("Flipping a bit of the nonce, the ciphertext or the tag makes unseal fail cleanly",
          "[sealer]") {
  const Keyring ring = ring_with('k');
  auto blob = ring.seal(Secret("password123"), kAad);
  REQUIRE(blob.ok());
  const std::size_t tag_start = blob->ciphertext.size() - 16;

  SECTION("nonce") {
    SealedBlob t = *blob;
    t.nonce[5] ^= 0x01;
    require_data_loss(ring.unseal(t, kAad));
  }
  SECTION("ciphertext") {
    SealedBlob t = *blob;
    t.ciphertext[0] ^= 0x80;
    require_data_loss(ring.unseal(t, kAad));
  }
  SECTION("tag") {
    SealedBlob t = *blob;
    t.ciphertext[tag_start + 15] ^= 0x01;
    require_data_loss(ring.unseal(t, kAad));
  }
  SECTION("truncated tag") {
    SealedBlob t = *blob;
    t.ciphertext.resize(10);
    require_data_loss(ring.unseal(t, kAad));
  }
  SECTION("short nonce") {
    SealedBlob t = *blob;
    t.nonce.pop_back();
    require_data_loss(ring.unseal(t, kAad));
  }
}

TEST_CASE("Unseal with associated data for another service, host or username fails", "[sealer]") {
  const Keyring ring = ring_with('k');
  auto blob = ring.seal(Secret("pw"), kAad);
  REQUIRE(blob.ok());
  require_data_loss(ring.unseal(*blob, credential_aad("svc-2", "ghcr.io", "octocat")));
  require_data_loss(ring.unseal(*blob, credential_aad("svc-1", "docker.io", "octocat")));
  require_data_loss(ring.unseal(*blob, credential_aad("svc-1", "ghcr.io", "octocat2")));
  CHECK(ring.unseal(*blob, kAad).ok());
}

TEST_CASE("A blob sealed under an unknown key id is refused with a sentence naming the id",
          "[sealer]") {
  const Keyring a = ring_with('a');
  const Keyring b = ring_with('b');
  auto blob = a.seal(Secret("pw"), kAad);
  REQUIRE(blob.ok());
  CHECK_FALSE(b.has_key(blob->key_id));
  auto r = b.unseal(*blob, kAad);
  require_data_loss(r);
  CHECK(r.error().message.find(blob->key_id) != std::string::npos);
}

TEST_CASE("A blob relabelled with another key's id fails authentication under that key",
          "[sealer]") {
  const Keyring a = ring_with('a');
  const Keyring b = ring_with('b');
  auto blob = a.seal(Secret("pw"), kAad);
  REQUIRE(blob.ok());
  SealedBlob relabelled = *blob;
  relabelled.key_id = b.current_key_id();
  require_data_loss(b.unseal(relabelled, kAad));
}

TEST_CASE("The key id is the first 16 hex digits of SHA-256 of the key", "[sealer]") {
  // SHA-256 of 32 zero bytes is 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925.
  const Keyring ring = ring_with('\0');
  CHECK(ring.current_key_id() == "66687aadf862bd77");
  CHECK(ring.has_key("66687aadf862bd77"));
  CHECK(ring_with('a').current_key_id() != ring.current_key_id());
}

TEST_CASE("An in-memory key of the wrong length is refused", "[sealer]") {
  auto r = Keyring::from_key(Secret(std::string(31, 'x')));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("An in-memory keyring cannot rotate", "[sealer]") {
  Keyring ring = ring_with('k');
  berth::Status st = ring.begin_rotation();
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kFailedPrecondition);
}

TEST_CASE("Credential associated data is unambiguous about field boundaries", "[sealer]") {
  CHECK(credential_aad("a", "bc", "d") != credential_aad("ab", "c", "d"));
  CHECK(credential_aad("a", "", "bc") != credential_aad("a", "b", "c"));
  CHECK(credential_aad("", "", "") != credential_aad("", "", "x"));
  CHECK(credential_aad("s", "h", "u") == credential_aad("s", "h", "u"));
}
