#pragma once
// Base64 (RFC 4648), the one implementation every module uses: Basic auth headers, OCI auth
// files, scrypt encodings and API tokens.
//   - encode_to appends to `out` after reserving the exact size, so encoding a secret leaves no
//     reallocated copies behind (the caller wipes `out`);
//   - decode is strict: only the alphabet, '=' padding only when `padded` and then exactly
//     what the length needs (or none), no whitespace, and no non-zero trailing bits.
#include <string>
#include <string_view>

namespace berth::base64 {

enum class Alphabet { kStandard, kUrl };  // "+/" (section 4) or "-_" (section 5)

std::size_t encoded_size(std::size_t bytes, bool pad);
void encode_to(std::string_view bytes, std::string& out, Alphabet alphabet = Alphabet::kStandard,
               bool pad = true);
std::string encode(std::string_view bytes, Alphabet alphabet = Alphabet::kStandard,
                   bool pad = true);
// False (and `out` unspecified) on anything malformed.
bool decode(std::string_view text, std::string& out, Alphabet alphabet = Alphabet::kStandard,
            bool padded = true);

}  // namespace berth::base64
