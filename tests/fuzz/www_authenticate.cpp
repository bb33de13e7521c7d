// WWW-Authenticate challenges as a registry (or anything answering on its address) sends them,
// and what berth derives from one (registry/protocol.h): the challenge, the token URL, its
// endpoint, and whether the password may go there.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "registry/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace r = berth::registry;
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  auto challenge = r::parse_challenge(header);
  if (challenge) {
    FUZZ_CHECK(!challenge->scheme.empty());
    for (const auto& [name, value] : challenge->params) {
      FUZZ_CHECK(!name.empty());
      (void)value;
    }
    const std::string url = r::token_url(*challenge, "repository:library/app:pull");
    if (auto parsed = r::parse_url(url)) {
      FUZZ_CHECK(!parsed->target.empty() && parsed->target.front() == '/');
      FUZZ_CHECK(parsed->endpoint.scheme == "https" || parsed->endpoint.scheme == "http");
      const r::Endpoint registry = r::api_endpoint("registry.example:5000", false);
      const bool trusted =
          r::realm_trusted("registry.example:5000", registry, parsed->endpoint, {});
      // Only the registry's own host and port is trusted without configuration.
      if (trusted) {
        FUZZ_CHECK(parsed->endpoint.port == "5000");
      }
      (void)r::is_loopback_host(parsed->endpoint.host);
    }
  }
  // The same bytes as a realm URL and as a registry host.
  if (auto url = r::parse_url(header)) {
    FUZZ_CHECK(url->endpoint.host_header.find('@') == std::string::npos);
  }
  (void)r::is_loopback_host(header);
  (void)r::api_endpoint(header, true);
  return 0;
}
