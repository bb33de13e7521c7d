// A registry token endpoint's JSON answer (registry/protocol.h parse_token_response): whatever
// the endpoint (possibly a third-party host) sends, the result is a non-empty token or nothing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "registry/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto token = berth::registry::parse_token_response(body);
  if (token) {
    FUZZ_CHECK(!token->empty());
    FUZZ_CHECK(token->size() <= body.size());
  }
  return 0;
}
