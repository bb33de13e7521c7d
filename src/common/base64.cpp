#include "common/base64.h"

#include <algorithm>
#include <climits>

#include <openssl/evp.h>

#include "common/secret.h"

// The conversion is OpenSSL's (EVP_EncodeBlock / EVP_DecodeBlock). Only the form check before
// decoding is berth's: EVP_DecodeBlock skips leading whitespace, accepts non-zero trailing
// bits, needs padding and knows only the standard alphabet, while callers here need a strict
// decoder (a Basic header or a stored hash has exactly one spelling) for both alphabets.
namespace berth::base64 {
namespace {

unsigned char* bytes(char* p) { return reinterpret_cast<unsigned char*>(p); }
const unsigned char* bytes(const char* p) { return reinterpret_cast<const unsigned char*>(p); }

// Value of a character in `a`, or -1.
int value(char c, Alphabet a) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (a == Alphabet::kStandard ? '+' : '-')) return 62;
  if (c == (a == Alphabet::kStandard ? '/' : '_')) return 63;
  return -1;
}

// Strict form check of `in` without its padding: alphabet, a possible length, and zero bits
// after the last whole byte.
bool well_formed(std::string_view in, Alphabet alphabet) {
  if (in.size() % 4 == 1) return false;
  if (!std::all_of(in.begin(), in.end(), [&](char c) { return value(c, alphabet) >= 0; })) {
    return false;
  }
  const std::size_t rest = in.size() % 4;
  if (rest == 0) return true;
  const int last = value(in.back(), alphabet);
  return (last & (rest == 2 ? 0x0F : 0x03)) == 0;
}

// Input blocks per EVP call: a multiple of 3 bytes (4 characters) that keeps lengths in int.
constexpr std::size_t kChunkBytes = 3 * (1u << 20);

}  // namespace

std::size_t encoded_size(std::size_t n, bool pad) {
  return pad ? (n + 2) / 3 * 4 : (n * 4 + 2) / 3;
}

void encode_to(std::string_view in, std::string& out, Alphabet alphabet, bool pad) {
  const std::size_t start = out.size();
  const std::size_t padded = encoded_size(in.size(), true);
  // One allocation up front; EVP_EncodeBlock also writes a NUL after each block, which lands
  // on the string's own terminator at the end.
  out.reserve(start + padded);
  out.resize(start + padded);
  std::size_t written = start;
  for (std::size_t i = 0; i < in.size(); i += kChunkBytes) {
    const std::size_t n = std::min(kChunkBytes, in.size() - i);
    written += static_cast<std::size_t>(
        EVP_EncodeBlock(bytes(out.data() + written), bytes(in.data() + i), static_cast<int>(n)));
  }
  if (alphabet == Alphabet::kUrl) {
    std::replace(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(), '+', '-');
    std::replace(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(), '/', '_');
  }
  if (!pad) out.resize(start + encoded_size(in.size(), false));
}

std::string encode(std::string_view bytes, Alphabet alphabet, bool pad) {
  std::string out;
  encode_to(bytes, out, alphabet, pad);
  return out;
}

bool decode(std::string_view in, std::string& out, Alphabet alphabet, bool padded) {
  std::string_view body = in;
  if (padded && !body.empty() && body.back() == '=') {
    if (body.size() % 4 != 0) return false;
    body.remove_suffix(1);
    if (!body.empty() && body.back() == '=') body.remove_suffix(1);
  }
  if (!well_formed(body, alphabet)) return false;
  const std::size_t rest = body.size() % 4;
  const std::size_t size = body.size() / 4 * 3 + (rest == 0 ? 0 : rest - 1);

  // EVP_DecodeBlock wants the standard alphabet with padding: rewrite only when the input is
  // not already in that form. The copy can hold a secret (a Basic header), so it is wiped.
  std::string standard;
  std::string_view source = in;
  if (alphabet == Alphabet::kUrl || rest != 0) {
    standard.reserve(body.size() + 2);
    standard.assign(body);
    if (alphabet == Alphabet::kUrl) {
      std::replace(standard.begin(), standard.end(), '-', '+');
      std::replace(standard.begin(), standard.end(), '_', '/');
    }
    if (rest != 0) standard.append(4 - rest, '=');
    source = standard;
  }
  out.clear();
  out.resize(source.size() / 4 * 3);
  bool ok = true;
  std::size_t written = 0;
  constexpr std::size_t kChunkChars = kChunkBytes / 3 * 4;
  for (std::size_t i = 0; i < source.size() && ok; i += kChunkChars) {
    const std::size_t n = std::min(kChunkChars, source.size() - i);
    const int got =
        EVP_DecodeBlock(bytes(out.data() + written), bytes(source.data() + i), static_cast<int>(n));
    ok = got >= 0;
    written += ok ? static_cast<std::size_t>(got) : 0;
  }
  secure_wipe(standard.data(), standard.capacity());
  if (!ok) return false;
  out.resize(size);  // EVP_DecodeBlock decodes padding as zero bytes
  return true;
}

}  // namespace berth::base64
