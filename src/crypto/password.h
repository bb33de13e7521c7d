#pragma once
// Password and API-token hashing. Account passwords: scrypt (OpenSSL EVP_PBE_scrypt) with a
// per-entry random salt, encoded as "scrypt$<logN>$<r>$<p>$<salt b64>$<hash b64>". API token
// secrets: SHA-256, encoded as "sha256$<64 hex>" (a 256-bit random secret cannot be guessed, so
// a slow hash buys nothing and would cost ~0.1 s per request). Verification compares in
// constant time. Random material comes from OpenSSL's RAND_bytes.
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/secret.h"

namespace berth::crypto {

Result<std::string> hash_password(const Secret& password);
// False on mismatch or on a malformed encoding (never throws, never short-circuits on bytes).
bool verify_password(const Secret& password, std::string_view encoded);

// A new API token "berth_<id>_<secret>": <id> (16 hex) is the lookup key stored in clear,
// <secret> (43 base64url chars, 256 bits) is only stored as hash_token_secret(secret).
struct NewToken {
  std::string id;
  Secret secret;  // the part to hash
  Secret full;    // the whole token, shown to the user once
};
Result<NewToken> generate_token();
// Splits a presented token into id and secret; false when it is not of the token's shape.
bool split_token(const Secret& token, std::string& id, Secret& secret);
// "sha256$<hex of SHA-256(secret)>".
std::string hash_token_secret(const Secret& secret);
// False on mismatch or on any encoding other than hash_token_secret's (CRYPTO_memcmp).
bool verify_token_secret(const Secret& secret, std::string_view encoded);
// True for a token hash written before tokens were hashed with SHA-256 ("scrypt$...").
bool is_legacy_token_hash(std::string_view encoded);

// Random UUID v4 (lowercase, hyphenated).
std::string random_uuid();
// n random bytes, lowercase hex.
std::string random_hex(std::size_t n);

}  // namespace berth::crypto
