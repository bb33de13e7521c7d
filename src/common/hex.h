#pragma once
// Lowercase hex of bytes (digests, fingerprints, key ids, random ids), one implementation:
// boost::algorithm::hex_lower. Pure; safe from any thread.
#include <string>
#include <string_view>

namespace berth {

std::string hex_lower(std::string_view bytes);
inline std::string hex_lower(const unsigned char* data, std::size_t size) {
  return hex_lower(std::string_view(reinterpret_cast<const char*>(data), size));
}

}  // namespace berth
