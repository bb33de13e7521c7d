// Image manifests and indexes as a registry serves them (registry/protocol.h
// parse_manifest_layers; the agent reads them for pull progress). Contract checked: layer sizes
// are non-negative and add up without overflow (the agent sums them), an index yields a child
// digest and no sizes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "registry/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (std::string_view arch : {"amd64", "arm64"}) {
    auto layers = berth::registry::parse_manifest_layers(body, arch);
    if (!layers) {
      FUZZ_CHECK(layers.error().code == berth::ErrorCode::kInvalidArgument);
      continue;
    }
    FUZZ_CHECK(layers->child_digest.empty() || layers->sizes.empty());
    std::int64_t total = 0;
    for (std::int64_t s : layers->sizes) {
      FUZZ_CHECK(s >= 0);
      FUZZ_CHECK(!__builtin_add_overflow(total, s, &total));
    }
  }
  return 0;
}
