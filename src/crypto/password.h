#pragma once
// Password and API-token hashing: scrypt (OpenSSL EVP_PBE_scrypt) with a per-entry random
// salt, encoded as "scrypt$<logN>$<r>$<p>$<salt b64>$<hash b64>"; verification recomputes and
// compares in constant time. Random material comes from OpenSSL's RAND_bytes.
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/secret.h"

namespace berth::crypto {

Result<std::string> hash_password(const Secret& password);
// False on mismatch or on a malformed encoding (never throws, never short-circuits on bytes).
bool verify_password(const Secret& password, std::string_view encoded);

// A new API token "berth_<id>_<secret>": <id> (16 hex) is the lookup key stored in clear,
// <secret> (43 base64url chars, 256 bits) is only stored as hash_password(secret).
struct NewToken {
  std::string id;
  Secret secret;  // the part to hash
  Secret full;    // the whole token, shown to the user once
};
Result<NewToken> generate_token();
// Splits a presented token into id and secret; false when it is not of the token's shape.
bool split_token(const Secret& token, std::string& id, Secret& secret);

// Random UUID v4 (lowercase, hyphenated).
std::string random_uuid();
// n random bytes, lowercase hex.
std::string random_hex(std::size_t n);

}  // namespace berth::crypto
