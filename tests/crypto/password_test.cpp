#include <catch2/catch.hpp>

#include <regex>
#include <set>
#include <string>

#include "crypto/password.h"

using berth::Secret;
using namespace berth::crypto;

TEST_CASE("A scrypt hash verifies the password it was made from and nothing else", "[password]") {
  auto hash = hash_password(Secret("correct horse battery staple"));
  REQUIRE(hash.ok());
  CHECK(std::regex_match(*hash,
                         std::regex(R"(scrypt\$15\$8\$1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43})")));
  CHECK(hash->find("correct") == std::string::npos);
  CHECK(verify_password(Secret("correct horse battery staple"), *hash));
  CHECK_FALSE(verify_password(Secret("correct horse battery stapl"), *hash));
  CHECK_FALSE(verify_password(Secret(""), *hash));
}

TEST_CASE("Two hashes of the same password differ by their salt", "[password]") {
  auto a = hash_password(Secret("pw"));
  auto b = hash_password(Secret("pw"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
  CHECK(verify_password(Secret("pw"), *a));
  CHECK(verify_password(Secret("pw"), *b));
}

TEST_CASE("Malformed or tampered encodings never verify", "[password]") {
  auto good = hash_password(Secret("pw"));
  REQUIRE(good.ok());
  const std::string& h = *good;
  const auto last = h.rfind('$');
  std::string flipped = h;
  flipped[last + 1] = flipped[last + 1] == 'A' ? 'B' : 'A';

  const std::string tail = h.substr(13);  // "$<salt>$<hash>"
  REQUIRE(h.substr(0, 13) == "scrypt$15$8$1");
  const std::string bad[] = {
      "",
      "scrypt",
      "bcrypt$15$8$1" + tail,
      h + "$",
      h + "$extra",
      h.substr(0, last),          // hash missing
      h.substr(0, last + 1),      // empty hash
      h.substr(0, h.size() - 1),  // truncated hash
      h + "A",                    // lengthened hash
      flipped,                    // different hash
      "scrypt$40$8$1" + tail,     // absurd cost
      "scrypt$015$8$1" + tail,    // leading zero
      "scrypt$14$8$1" + tail,     // other parameters: a different hash
      "scrypt$15$0$1" + tail,
      "scrypt$15$8$-1" + tail,
      "scrypt$15$8$1$!!!!$AAAA",
      "scrypt$15$8$1$" + std::string(22, 'A') + "==$" + h.substr(last + 1),
  };
  for (const auto& enc : bad) {
    INFO(enc);
    CHECK_FALSE(verify_password(Secret("pw"), enc));
  }
  CHECK(verify_password(Secret("pw"), h));
}

TEST_CASE("A generated token splits back into its id and secret", "[token]") {
  auto t = generate_token();
  REQUIRE(t.ok());
  CHECK(std::regex_match(t->id, std::regex("[0-9a-f]{16}")));
  CHECK(t->secret.size() == 43);
  CHECK(t->full.size() == 6 + 16 + 1 + 43);
  CHECK(t->full.reveal().substr(0, 6) == "berth_");

  std::string id;
  Secret secret;
  REQUIRE(split_token(t->full, id, secret));
  CHECK(id == t->id);
  CHECK(secret.equals(t->secret));

  CHECK(verify_token_secret(secret, hash_token_secret(t->secret)));
}

TEST_CASE("A token secret is stored as its SHA-256 in hex and verified exactly", "[token]") {
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  const std::string abc = "sha256$ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  CHECK(hash_token_secret(Secret("abc")) == abc);
  CHECK(verify_token_secret(Secret("abc"), abc));
  CHECK_FALSE(verify_token_secret(Secret("abd"), abc));
  CHECK_FALSE(verify_token_secret(Secret("abc"), abc.substr(0, abc.size() - 1)));
  CHECK_FALSE(verify_token_secret(Secret("abc"), abc + "0"));
  CHECK_FALSE(verify_token_secret(Secret("abc"), "sha256$BA7816BF" + abc.substr(15)));
  CHECK_FALSE(verify_token_secret(Secret("abc"), ""));
  // A token hashed by an older berth is recognised, never verified as SHA-256.
  auto legacy = hash_password(Secret("abc"));
  REQUIRE(legacy.ok());
  CHECK(is_legacy_token_hash(*legacy));
  CHECK_FALSE(is_legacy_token_hash(abc));
  CHECK_FALSE(verify_token_secret(Secret("abc"), *legacy));
}

TEST_CASE("A token secret containing underscores still splits at the right place", "[token]") {
  const std::string secret = "abc_def_" + std::string(35, '_');
  std::string id;
  Secret out;
  REQUIRE(split_token(Secret("berth_0123456789abcdef_" + secret), id, out));
  CHECK(id == "0123456789abcdef");
  CHECK(out.reveal() == secret);
}

TEST_CASE("Strings that are not shaped like a token do not split", "[token]") {
  const std::string s43(43, 'x');
  const std::string bad[] = {
      "",
      "berth_0123456789abcdef_" + s43.substr(1),        // short secret
      "berth_0123456789abcdef_" + s43 + "x",            // long secret
      "berth_0123456789ABCDEF_" + s43,                  // upper-case id
      "berth_0123456789abcdeg_" + s43,                  // non-hex id
      "berth-0123456789abcdef_" + s43,                  // wrong prefix
      "berth_0123456789abcdef-" + s43,                  // wrong separator
      "berth_0123456789abcdef_" + s43.substr(1) + "=",  // padding / foreign alphabet
  };
  for (const auto& s : bad) {
    INFO(s);
    std::string id = "untouched";
    Secret secret;
    CHECK_FALSE(split_token(Secret(s), id, secret));
    CHECK(id == "untouched");
  }
}

TEST_CASE("Random UUIDs are version 4, lowercase and distinct", "[random]") {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    const std::string u = random_uuid();
    CHECK(std::regex_match(
        u, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
    seen.insert(u);
  }
  CHECK(seen.size() == 50);
}

TEST_CASE("random_hex returns two lowercase hex digits per byte", "[random]") {
  CHECK(random_hex(0).empty());
  const std::string h = random_hex(20);
  CHECK(std::regex_match(h, std::regex("[0-9a-f]{40}")));
  CHECK(random_hex(20) != h);
}
