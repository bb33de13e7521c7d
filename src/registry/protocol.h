#pragma once
// The pure parts of the distribution protocol: where a request goes, and how to read an auth
// challenge. No I/O; unit-tested without sockets.
#include <map>
#include <optional>
#include <string>
#include <string_view>

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
// loopback (localhost, 127.0.0.0/8, ::1).
Endpoint api_endpoint(std::string_view registry_host, bool plain_http_for_loopback);
bool is_loopback_host(std::string_view host);  // host without port

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
std::string url_encode(std::string_view text);

}  // namespace berth::registry
