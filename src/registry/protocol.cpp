#include "registry/protocol.h"
#include "common/text.h"

#include <boost/asio/ip/address.hpp>
#include <nlohmann/json.hpp>

namespace berth::registry {
namespace {

std::string lower(std::string_view s) { return to_lower_ascii(s); }

// Splits "host", "host:port", "[v6]", "[v6]:port" into host (no brackets) and port.
void split_host_port(std::string_view authority, std::string& host, std::string& port) {
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    host = std::string(
        authority.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
    if (close != std::string_view::npos && close + 1 < authority.size() &&
        authority[close + 1] == ':') {
      port = std::string(authority.substr(close + 2));
    }
    return;
  }
  auto colon = authority.rfind(':');
  if (colon == std::string_view::npos) {
    host = std::string(authority);
  } else {
    host = std::string(authority.substr(0, colon));
    port = std::string(authority.substr(colon + 1));
  }
}

Endpoint make_endpoint(std::string scheme, std::string_view authority) {
  Endpoint ep;
  ep.scheme = std::move(scheme);
  split_host_port(authority, ep.host, ep.port);
  ep.host_header = std::string(authority);
  if (ep.port.empty()) ep.port = ep.scheme == "http" ? "80" : "443";
  return ep;
}

}  // namespace

const char* const kManifestAccept =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

bool is_loopback_host(std::string_view host) {
  std::string h = lower(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost") return true;
  namespace ip = boost::asio::ip;
  boost::system::error_code ec;
  const ip::address address = ip::make_address(h, ec);
  if (ec) return false;
  if (address.is_v4()) return address.to_v4().is_loopback();
  const ip::address_v6 v6 = address.to_v6();
  if (v6.is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, v6).is_loopback();
  return v6.is_loopback();
}

const TrustedRealms& builtin_trusted_realms() {
  // Docker Hub's registry sends every client to its token service on another host; docker,
  // containerd and podman send Docker Hub credentials there.
  static const TrustedRealms kBuiltin{{"docker.io", "auth.docker.io"}};
  return kBuiltin;
}

bool realm_trusted(std::string_view registry_host, const Endpoint& registry, const Endpoint& realm,
                   const TrustedRealms& trusted) {
  const std::string realm_host = lower(realm.host);
  if (realm_host == lower(registry.host) && realm.port == registry.port) return true;
  for (const TrustedRealms* list : {&trusted, &builtin_trusted_realms()}) {
    auto [first, last] = list->equal_range(std::string(registry_host));
    for (auto it = first; it != last; ++it) {
      std::string host, port;
      split_host_port(it->second, host, port);
      if (port.empty()) port = realm.scheme == "http" ? "80" : "443";
      if (lower(host) == realm_host && port == realm.port) return true;
    }
  }
  return false;
}

Endpoint api_endpoint(std::string_view registry_host, bool plain_http_for_loopback) {
  // Docker Hub's references say docker.io, its API lives elsewhere (as in containers/image).
  std::string_view authority =
      registry_host == "docker.io" ? "registry-1.docker.io" : registry_host;
  Endpoint probe = make_endpoint("https", authority);
  const bool plain = plain_http_for_loopback && is_loopback_host(probe.host);
  return make_endpoint(plain ? "http" : "https", authority);
}

std::string manifest_target(const core::ImageRef& ref) {
  std::string reference = !ref.digest.empty() ? ref.digest
                          : !ref.tag.empty()  ? ref.tag
                                              : std::string("latest");
  return "/v2/" + ref.repository + "/manifests/" + reference;
}

std::optional<Challenge> parse_challenge(std::string_view header) {
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < header.size() && (header[i] == ' ' || header[i] == '\t')) ++i;
  };
  skip_ws();
  std::size_t start = i;
  while (i < header.size() && header[i] != ' ' && header[i] != '\t') ++i;
  if (i == start) return std::nullopt;
  Challenge c;
  c.scheme = lower(header.substr(start, i - start));
  while (i < header.size()) {
    skip_ws();
    while (i < header.size() && (header[i] == ',' || header[i] == ' ')) ++i;
    start = i;
    while (i < header.size() && header[i] != '=' && header[i] != ',' && header[i] != ' ') ++i;
    std::string name = lower(header.substr(start, i - start));
    skip_ws();
    if (i >= header.size() || header[i] != '=') {
      // Another challenge ("Basic realm=x, Bearer ...") or token68: berth uses the first only.
      break;
    }
    ++i;
    skip_ws();
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i++];
      }
      if (i < header.size()) ++i;  // closing quote
    } else {
      while (i < header.size() && header[i] != ',' && header[i] != ' ') value += header[i++];
    }
    if (!name.empty()) c.params[name] = value;
  }
  return c;
}

std::optional<Url> parse_url(std::string_view url) {
  std::string scheme;
  if (url.rfind("https://", 0) == 0) {
    scheme = "https";
    url.remove_prefix(8);
  } else if (url.rfind("http://", 0) == 0) {
    scheme = "http";
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  auto slash = url.find_first_of("/?");
  std::string_view authority = url.substr(0, slash);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  Url out;
  out.endpoint = make_endpoint(scheme, authority);
  out.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (out.target.front() == '?') out.target.insert(0, "/");
  return out;
}

std::string token_url(const Challenge& bearer, std::string_view default_scope) {
  std::string url = bearer.params.count("realm") ? bearer.params.at("realm") : std::string();
  char sep = url.find('?') == std::string::npos ? '?' : '&';
  if (auto it = bearer.params.find("service"); it != bearer.params.end()) {
    url += sep;
    url += "service=" + url_encode(it->second);
    sep = '&';
  }
  auto it = bearer.params.find("scope");
  std::string scope = it != bearer.params.end() ? it->second : std::string(default_scope);
  if (!scope.empty()) {
    url += sep;
    url += "scope=" + url_encode(scope);
  }
  return url;
}

std::optional<std::string> parse_token_response(std::string_view body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  for (const char* key : {"token", "access_token"}) {
    auto it = j.find(key);
    if (it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      return it->get<std::string>();
    }
  }
  return std::nullopt;
}

Result<ManifestLayers> parse_manifest_layers(std::string_view body, std::string_view arch) {
  auto bad = [](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument, "the image manifest " + why);
  };
  try {
    const nlohmann::json j = nlohmann::json::parse(body);
    if (!j.is_object()) return bad("is not a JSON object");
    ManifestLayers out;
    if (auto it = j.find("layers"); it != j.end()) {
      if (!it->is_array()) return bad("has layers that are not an array");
      for (const auto& l : *it) {
        if (!l.is_object() || !l.contains("size") || !l["size"].is_number_integer())
          return bad("has a layer without a size");
        const auto size = l["size"].get<std::int64_t>();
        if (size < 0) return bad("has a layer with a negative size");
        out.sizes.push_back(size);
      }
      return out;
    }
    if (auto it = j.find("manifests"); it != j.end() && it->is_array()) {
      for (const auto& m : *it) {
        if (!m.is_object() || !m.contains("platform") || !m["platform"].is_object()) continue;
        const auto& p = m["platform"];
        if (p.value("os", "") == "linux" && p.value("architecture", "") == arch &&
            m.contains("digest") && m["digest"].is_string()) {
          out.child_digest = m["digest"].get<std::string>();
          return out;
        }
      }
      return bad("list has no entry for linux/" + std::string(arch));
    }
    return bad("has neither layers nor manifests");
  } catch (const nlohmann::json::exception&) {
    return bad("is not valid JSON");
  }
}

}  // namespace berth::registry
