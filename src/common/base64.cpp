#include "common/base64.h"

#include <cstdint>

namespace berth::base64 {
namespace {

const char* table(Alphabet a) {
  return a == Alphabet::kStandard
             ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
             : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
}

int value(char c, Alphabet a) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (a == Alphabet::kStandard ? '+' : '-')) return 62;
  if (c == (a == Alphabet::kStandard ? '/' : '_')) return 63;
  return -1;
}

}  // namespace

std::size_t encoded_size(std::size_t n, bool pad) {
  return pad ? (n + 2) / 3 * 4 : (n * 4 + 2) / 3;
}

void encode_to(std::string_view in, std::string& out, Alphabet alphabet, bool pad) {
  const char* t = table(alphabet);
  out.reserve(out.size() + encoded_size(in.size(), pad));
  const auto byte = [&in](std::size_t i) {
    return std::uint32_t{static_cast<unsigned char>(in[i])};
  };
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  const std::size_t rest = in.size() - i;
  if (rest == 0) return;
  const std::uint32_t v = (byte(i) << 16) | (rest == 2 ? byte(i + 1) << 8 : 0);
  out += t[(v >> 18) & 63];
  out += t[(v >> 12) & 63];
  if (rest == 2) out += t[(v >> 6) & 63];
  if (pad) out.append(rest == 1 ? "==" : "=");
}

std::string encode(std::string_view bytes, Alphabet alphabet, bool pad) {
  std::string out;
  encode_to(bytes, out, alphabet, pad);
  return out;
}

bool decode(std::string_view in, std::string& out, Alphabet alphabet, bool padded) {
  if (padded && !in.empty() && in.back() == '=') {
    if (in.size() % 4 != 0) return false;
    in.remove_suffix(1);
    if (!in.empty() && in.back() == '=') in.remove_suffix(1);
  }
  if (in.size() % 4 == 1) return false;
  out.clear();
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c, alphabet);
    if (v < 0) return false;
    acc = ((acc << 6) | static_cast<std::uint32_t>(v)) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;
}

}  // namespace berth::base64
