#include "crypto/password.h"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <string>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <boost/algorithm/hex.hpp>

#include "common/base64.h"
#include "common/log.h"

namespace berth::crypto {
namespace {

// scrypt cost: 2^15 x 8 x 1 uses 128 * r * N = 32 MiB and about 0.1 s per hash on one core.
constexpr unsigned kLogN = 15;
constexpr std::uint64_t kR = 8;
constexpr std::uint64_t kP = 1;
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;

// Bounds accepted when verifying, so a hostile or corrupt encoding cannot ask for gigabytes.
constexpr unsigned kMinLogN = 10, kMaxLogN = 20;
constexpr std::uint64_t kMaxR = 16, kMaxP = 4;
constexpr std::size_t kMinSalt = 16, kMaxSalt = 64;

constexpr std::size_t kTokenIdHex = 16;
constexpr std::size_t kTokenSecretBytes = 32;
constexpr std::size_t kTokenSecretChars = 43;  // ceil(32 * 8 / 6), unpadded
constexpr std::string_view kTokenPrefix = "berth_";
constexpr std::string_view kTokenHashPrefix = "sha256$";

std::string b64_encode(const unsigned char* data, std::size_t n, base64::Alphabet alphabet) {
  return base64::encode(std::string_view(reinterpret_cast<const char*>(data), n), alphabet, false);
}

// Strict: no padding, no whitespace, no non-zero trailing bits.
bool b64_decode(std::string_view in, std::string& out) {
  return base64::decode(in, out, base64::Alphabet::kStandard, false);
}

bool parse_uint(std::string_view s, std::uint64_t max, std::uint64_t& out) {
  if (s.empty() || s.size() > 6) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (s.size() > 1 && s[0] == '0') return false;
  if (v > max) return false;
  out = v;
  return true;
}

[[noreturn]] void random_failed() {
  // A missing random source must not degrade into predictable ids or salts.
  log::error("the system random number generator failed; stopping");
  std::abort();
}

void fill_random(unsigned char* buf, std::size_t n) {
  if (RAND_bytes(buf, static_cast<int>(n)) != 1) random_failed();
}

bool scrypt(std::string_view password, std::string_view salt, std::uint64_t n, std::uint64_t r,
            std::uint64_t p, unsigned char* out, std::size_t out_len) {
  // maxmem must exceed 128 * r * N (the V array) plus 128 * r * p (B); twice that is ample.
  const std::uint64_t maxmem = 2 * 128 * r * (n + p) + (1u << 20);
  return EVP_PBE_scrypt(password.data(), password.size(),
                        reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), n, r, p,
                        maxmem, out, out_len) == 1;
}

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool is_b64url(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

}  // namespace

Result<std::string> hash_password(const Secret& password) {
  std::array<unsigned char, kSaltBytes> salt{};
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
    return make_error(ErrorCode::kInternal, "the random number generator failed");
  }
  std::array<unsigned char, kHashBytes> hash{};
  const std::string_view salt_view(reinterpret_cast<const char*>(salt.data()), salt.size());
  if (!scrypt(password.reveal(), salt_view, std::uint64_t{1} << kLogN, kR, kP, hash.data(),
              hash.size())) {
    return make_error(ErrorCode::kInternal, "scrypt password hashing failed");
  }
  std::string out = "scrypt$" + std::to_string(kLogN) + "$" + std::to_string(kR) + "$" +
                    std::to_string(kP) + "$" +
                    b64_encode(salt.data(), salt.size(), base64::Alphabet::kStandard) + "$" +
                    b64_encode(hash.data(), hash.size(), base64::Alphabet::kStandard);
  OPENSSL_cleanse(hash.data(), hash.size());
  return out;
}

bool verify_password(const Secret& password, std::string_view encoded) {
  std::string_view parts[6];
  std::size_t count = 0;
  std::string_view rest = encoded;
  while (count < 6) {
    const auto pos = rest.find('$');
    parts[count++] = rest.substr(0, pos);
    if (pos == std::string_view::npos) {
      rest = {};
      break;
    }
    rest.remove_prefix(pos + 1);
    if (count == 6) return false;  // a seventh field
  }
  if (count != 6 || parts[0] != "scrypt") return false;
  std::uint64_t log_n = 0, r = 0, p = 0;
  if (!parse_uint(parts[1], kMaxLogN, log_n) || log_n < kMinLogN) return false;
  if (!parse_uint(parts[2], kMaxR, r) || r == 0) return false;
  if (!parse_uint(parts[3], kMaxP, p) || p == 0) return false;
  std::string salt, expected;
  if (!b64_decode(parts[4], salt) || salt.size() < kMinSalt || salt.size() > kMaxSalt) return false;
  // A fixed hash length: scrypt's output for a longer length starts with the shorter one, so
  // accepting other lengths would let an appended suffix be compared against fresh bytes.
  if (!b64_decode(parts[5], expected) || expected.size() != kHashBytes) return false;
  std::array<unsigned char, kHashBytes> actual{};
  if (!scrypt(password.reveal(), salt, std::uint64_t{1} << log_n, r, p, actual.data(),
              expected.size())) {
    return false;
  }
  const bool same = CRYPTO_memcmp(actual.data(), expected.data(), expected.size()) == 0;
  OPENSSL_cleanse(actual.data(), actual.size());
  return same;
}

Result<NewToken> generate_token() {
  std::array<unsigned char, kTokenSecretBytes> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    return make_error(ErrorCode::kInternal, "the random number generator failed");
  }
  std::string secret = b64_encode(raw.data(), raw.size(), base64::Alphabet::kUrl);
  OPENSSL_cleanse(raw.data(), raw.size());
  NewToken token;
  token.id = random_hex(kTokenIdHex / 2);
  std::string full = std::string(kTokenPrefix) + token.id + "_" + secret;
  token.secret = Secret(secret);
  token.full = Secret(full);
  OPENSSL_cleanse(secret.data(), secret.size());
  OPENSSL_cleanse(full.data(), full.size());
  return token;
}

bool split_token(const Secret& token, std::string& id, Secret& secret) {
  // Split by position, not by '_': the base64url secret may itself contain '_'.
  const std::string_view t = token.reveal();
  if (t.size() != kTokenPrefix.size() + kTokenIdHex + 1 + kTokenSecretChars) return false;
  if (t.substr(0, kTokenPrefix.size()) != kTokenPrefix) return false;
  const std::string_view id_part = t.substr(kTokenPrefix.size(), kTokenIdHex);
  for (char c : id_part) {
    if (!is_lower_hex(c)) return false;
  }
  if (t[kTokenPrefix.size() + kTokenIdHex] != '_') return false;
  const std::string_view secret_part = t.substr(kTokenPrefix.size() + kTokenIdHex + 1);
  for (char c : secret_part) {
    if (!is_b64url(c)) return false;
  }
  id = std::string(id_part);
  secret = Secret(secret_part);
  return true;
}

std::string hash_token_secret(const Secret& secret) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  const auto bytes = secret.reveal();
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest.data());
  std::string out(kTokenHashPrefix);
  boost::algorithm::hex_lower(digest.begin(), digest.end(), std::back_inserter(out));
  return out;
}

bool verify_token_secret(const Secret& secret, std::string_view encoded) {
  const std::string actual = hash_token_secret(secret);
  // The lengths are public (fixed by the format); only the digest is compared in constant time.
  if (encoded.size() != actual.size()) return false;
  return CRYPTO_memcmp(actual.data(), encoded.data(), actual.size()) == 0;
}

bool is_legacy_token_hash(std::string_view encoded) { return encoded.rfind("scrypt$", 0) == 0; }

std::string random_uuid() {
  std::array<unsigned char, 16> b{};
  fill_random(b.data(), b.size());
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 0x0F];
  }
  return out;
}

std::string random_hex(std::size_t n) {
  std::string raw(n, '\0');
  if (n > 0) fill_random(reinterpret_cast<unsigned char*>(raw.data()), n);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 0x0F];
  }
  return out;
}

}  // namespace berth::crypto
