#pragma once
// The pure parts of the distribution protocol: where a request goes, and how to read what a
// registry answers (an auth challenge, a token response, a manifest). No I/O; unit-tested
// without sockets, and each reader of registry bytes is a fuzz target (tests/fuzz/). Any byte
// string is accepted as input.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "core/image_ref.h"

namespace berth::registry {

struct Endpoint {
  std::string scheme;       // "https" | "http"
  std::string host;         // name or address to connect to, without brackets
  std::string port;         // "443", "5000"
  std::string host_header;  // value of the Host header: host[:port] as the URL has it
  std::string authority() const { return host_header; }
};

// The API endpoint of a registry host as image references name it: "docker.io" is served by
// registry-1.docker.io (what docker, containerd and podman contact); a port stays; IPv6 keeps
// its brackets in the Host header only. HTTP only when `plain_http_for_loopback` and the host is
// loopback (see is_loopback_host).
Endpoint api_endpoint(std::string_view registry_host, bool plain_http_for_loopback);

// Whether `host` (without port; IPv6 with or without brackets) is a loopback address: the name
// "localhost", an IPv4 address in 127.0.0.0/8, ::1, or an IPv4-mapped IPv6 address of one
// (::ffff:127.0.0.1). The text is parsed as an address (inet_pton rules), never matched by
// prefix: "127.0.0.1.example.com" and "localhost.example.com" are names, not loopback, and
// the legacy inet_aton forms ("0x7f.1", "127.1") are not accepted at all.
bool is_loopback_host(std::string_view host);

// Token realms the Bearer flow may send a registry's password to, besides the registry's own
// endpoint: registry host (as image references name it) -> realm authority ("host" for the
// realm scheme's default port, or "host:port"). Docker Hub's auth.docker.io is built in.
using TrustedRealms = std::multimap<std::string, std::string>;
const TrustedRealms& builtin_trusted_realms();

// Whether the password for `registry_host` (served at `registry`) may be sent to the token
// endpoint `realm`: the realm is the registry's own endpoint (same host and port), or
// `trusted` (or the built-in list) names it for this registry. Host names compare
// case-insensitively; nothing else is normalized.
bool realm_trusted(std::string_view registry_host, const Endpoint& registry, const Endpoint& realm,
                   const TrustedRealms& trusted);

// "/v2/<repository>/manifests/<digest | tag | latest>"
std::string manifest_target(const core::ImageRef& ref);

// The four manifest media types berth accepts, as one Accept header value.
extern const char* const kManifestAccept;

// One challenge from a WWW-Authenticate header: scheme lower-cased ("basic", "bearer"),
// parameter names lower-cased, quoted values unescaped.
struct Challenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
std::optional<Challenge> parse_challenge(std::string_view header);

// An absolute http(s) URL split for a request. nullopt when it is not one.
struct Url {
  Endpoint endpoint;
  std::string target;  // path + query, "/" when empty
};
std::optional<Url> parse_url(std::string_view url);

// realm?service=S&scope=SC (appended with & when the realm already has a query).
std::string token_url(const Challenge& bearer, std::string_view default_scope);

// The bearer token in a token endpoint's JSON answer: "token", else (OAuth2 style)
// "access_token", whichever is a non-empty string. nullopt when neither is, or the body is not a
// JSON object.
std::optional<std::string> parse_token_response(std::string_view body);

// What one manifest says: the layer sizes of an image manifest, or, for an index (manifest
// list), the digest of the child manifest for linux/`arch` (sizes empty).
struct ManifestLayers {
  std::vector<std::int64_t> sizes;  // each >= 0, and their sum fits in an int64
  std::string child_digest;
};
// Errors: kInvalidArgument when the body is not a manifest or index this understands (JSON with
// "layers" of {size}, or "manifests" of {digest, platform}), an index has no linux/`arch`, or the
// layer sizes add up past what an int64 holds (no registry serves such an image; the agent sums
// them for pull progress).
Result<ManifestLayers> parse_manifest_layers(std::string_view body, std::string_view arch);

}  // namespace berth::registry
