#include <catch2/catch.hpp>

#include "core/image_ref.h"
#include "registry/protocol.h"

using namespace berth;
using namespace berth::registry;

namespace {
core::ImageRef image_ref(const char* text) {
  auto parsed = core::parse_image_ref(text);
  REQUIRE(parsed.ok());
  return *parsed;
}
}  // namespace

TEST_CASE("Docker Hub references are resolved against registry-1.docker.io", "[registry]") {
  auto ep = api_endpoint(image_ref("nginx:1.25").registry_host, false);
  CHECK(ep.scheme == "https");
  CHECK(ep.host == "registry-1.docker.io");
  CHECK(ep.port == "443");
  CHECK(ep.host_header == "registry-1.docker.io");
  CHECK(manifest_target(image_ref("nginx:1.25")) == "/v2/library/nginx/manifests/1.25");
  CHECK(api_endpoint(image_ref("index.docker.io/acme/app").registry_host, false).host ==
        "registry-1.docker.io");
}

TEST_CASE("Other registry hosts keep their name and port", "[registry]") {
  auto ghcr = api_endpoint("ghcr.io", false);
  CHECK(ghcr.host == "ghcr.io");
  CHECK(ghcr.port == "443");
  auto local = api_endpoint("127.0.0.1:5000", false);
  CHECK(local.scheme == "https");
  CHECK(local.host == "127.0.0.1");
  CHECK(local.port == "5000");
  CHECK(local.host_header == "127.0.0.1:5000");
  auto v6 = api_endpoint("[::1]:5000", false);
  CHECK(v6.host == "::1");
  CHECK(v6.port == "5000");
  CHECK(v6.host_header == "[::1]:5000");
}

TEST_CASE("Plain HTTP is only chosen for loopback hosts when allowed", "[registry]") {
  CHECK(api_endpoint("127.0.0.1:5000", true).scheme == "http");
  CHECK(api_endpoint("127.0.0.1:5000", true).port == "5000");
  CHECK(api_endpoint("localhost", true).port == "80");
  CHECK(api_endpoint("[::1]:5000", true).scheme == "http");
  CHECK(api_endpoint("ghcr.io", true).scheme == "https");
  CHECK(api_endpoint("10.0.0.1:5000", true).scheme == "https");
}

TEST_CASE("The manifest target prefers the digest, then the tag, then latest", "[registry]") {
  const std::string digest = "sha256:" + std::string(64, 'a');
  CHECK(manifest_target(image_ref(("ghcr.io/o/r:1@" + digest).c_str())) ==
        "/v2/o/r/manifests/" + digest);
  CHECK(manifest_target(image_ref("ghcr.io/o/r:1")) == "/v2/o/r/manifests/1");
  CHECK(manifest_target(image_ref("ghcr.io/o/r")) == "/v2/o/r/manifests/latest");
}

TEST_CASE("A Bearer challenge yields realm, service and scope", "[registry]") {
  auto c = parse_challenge(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull")");
  REQUIRE(c);
  CHECK(c->scheme == "bearer");
  CHECK(c->params["realm"] == "https://auth.docker.io/token");
  CHECK(c->params["service"] == "registry.docker.io");
  CHECK(c->params["scope"] == "repository:library/nginx:pull");
  CHECK(token_url(*c, "ignored") ==
        "https://auth.docker.io/"
        "token?service=registry.docker.io&scope=repository%3Alibrary%2Fnginx%3Apull");
}

TEST_CASE("A Basic challenge is recognised whatever its case and spacing", "[registry]") {
  auto c = parse_challenge(R"(basic  Realm="my \"realm\"")");
  REQUIRE(c);
  CHECK(c->scheme == "basic");
  CHECK(c->params["realm"] == "my \"realm\"");
  CHECK_FALSE(parse_challenge("   "));
}

TEST_CASE("The token URL uses the default scope and keeps an existing query", "[registry]") {
  Challenge c{"bearer", {{"realm", "https://h/token?x=1"}}};
  CHECK(token_url(c, "repository:a/b:pull") ==
        "https://h/token?x=1&scope=repository%3Aa%2Fb%3Apull");
}

TEST_CASE("Only absolute http and https URLs are accepted as token realms", "[registry]") {
  auto u = parse_url("https://127.0.0.1:8443/token?service=s");
  REQUIRE(u);
  CHECK(u->endpoint.host == "127.0.0.1");
  CHECK(u->endpoint.port == "8443");
  CHECK(u->target == "/token?service=s");
  auto bare = parse_url("http://auth.example");
  REQUIRE(bare);
  CHECK(bare->endpoint.port == "80");
  CHECK(bare->target == "/");
  CHECK_FALSE(parse_url("ftp://x/token"));
  CHECK_FALSE(parse_url("/token"));
  CHECK_FALSE(parse_url("https://user:pw@evil/token"));
}

TEST_CASE("Loopback detection parses the address instead of matching a prefix", "[registry]") {
  for (const char* host :
       {"127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", "localhost", "LOCALHOST"}) {
    INFO(host);
    CHECK(is_loopback_host(host));
  }
  for (const char* host :
       {"127.0.0.1.evil.com", "127.evil.com", "localhost.evil", "evil.localhost.com", "0x7f.1",
        "0x7f000001", "127.1", "2130706433", "0177.0.0.1", "128.0.0.1", "10.0.0.1", "::2",
        "::ffff:10.0.0.1", "[::1", "::1]", "", "[]", "127.0.0.1:5000"}) {
    INFO(host);
    CHECK_FALSE(is_loopback_host(host));
  }
}

TEST_CASE("A token realm gets the password only on the registry's own host or when trusted",
          "[registry]") {
  auto realm = [](const char* url) {
    auto parsed = parse_url(url);
    REQUIRE(parsed);
    return parsed->endpoint;
  };
  const Endpoint registry = api_endpoint("127.0.0.1:5000", false);
  const TrustedRealms none;
  CHECK(realm_trusted("127.0.0.1:5000", registry, realm("https://127.0.0.1:5000/token"), none));
  // Another port on the same address is another server.
  CHECK_FALSE(
      realm_trusted("127.0.0.1:5000", registry, realm("https://127.0.0.1:5001/token"), none));
  CHECK_FALSE(realm_trusted("127.0.0.1:5000", registry, realm("https://127.0.0.2:5000/t"), none));
  CHECK_FALSE(realm_trusted("127.0.0.1:5000", registry, realm("https://evil.example/t"), none));

  const TrustedRealms trusted{{"127.0.0.1:5000", "127.0.0.1:5001"}, {"ghcr.io", "Auth.Example"}};
  CHECK(realm_trusted("127.0.0.1:5000", registry, realm("https://127.0.0.1:5001/token"), trusted));
  // Trust is per registry: another registry's realm entry does not extend to this one.
  CHECK_FALSE(
      realm_trusted("127.0.0.1:5000", registry, realm("https://auth.example/token"), trusted));
  const Endpoint ghcr = api_endpoint("ghcr.io", false);
  CHECK(realm_trusted("ghcr.io", ghcr, realm("https://auth.example/token"), trusted));
  CHECK(realm_trusted("ghcr.io", ghcr, realm("https://AUTH.example:443/token"), trusted));
  CHECK_FALSE(realm_trusted("ghcr.io", ghcr, realm("https://auth.example:8443/token"), trusted));
  CHECK(realm_trusted("ghcr.io", ghcr, realm("https://ghcr.io/token?x=1"), none));

  // Docker Hub's token service is built in, for Docker Hub only.
  const Endpoint hub = api_endpoint("docker.io", false);
  CHECK(realm_trusted("docker.io", hub, realm("https://auth.docker.io/token"), none));
  CHECK_FALSE(realm_trusted("ghcr.io", ghcr, realm("https://auth.docker.io/token"), none));
}
