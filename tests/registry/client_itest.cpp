// resolve_digest against a real Docker Distribution registry (hack/testenv), in both auth modes.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "core/image_ref.h"
#include "registry/client.h"
#include "registry/protocol.h"
#include "support/testenv.h"

using namespace berth;
using registry::RegistryCredential;
using registry::RegistryOptions;
using registry::resolve_digest;

namespace {

core::ImageRef image_ref(const std::string& text) {
  auto parsed = core::parse_image_ref(text);
  REQUIRE(parsed.ok());
  return *parsed;
}

// "127.0.0.1:PORT" of the token issuer (token mode), empty otherwise.
std::string realm_authority(const testenv::Registry& reg) {
  if (reg.token_realm().empty()) return {};
  auto url = registry::parse_url(reg.token_realm());
  REQUIRE(url);
  return url->endpoint.host_header;
}

// Trusts the test CA for the registry and, in token mode, for its token issuer (another port,
// so neither the CA nor the password reach it without an entry of its own).
RegistryOptions options_for(const testenv::Registry& reg) {
  RegistryOptions options;
  options.ca_files[reg.host()] = reg.ca_file();
  if (const std::string realm = realm_authority(reg); !realm.empty()) {
    options.ca_files[realm] = reg.ca_file();
    options.trusted_token_realms.emplace(reg.host(), realm);
  }
  options.timeout = std::chrono::seconds(10);
  return options;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

std::optional<RegistryCredential> cred(const testenv::Registry& reg, const std::string& password) {
  return RegistryCredential{reg.username(), Secret(password)};
}

// Captures every log line (at debug level) while alive.
class LogCapture {
 public:
  LogCapture() {
    old_level_ = log::level();
    log::set_level(log::Level::kDebug);
    old_sink_ = log::set_sink([this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() {
    log::set_sink(old_sink_);
    log::set_level(old_level_);
  }
  std::string all() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (auto& l : lines_) out += l + "\n";
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
  log::Sink old_sink_;
  log::Level old_level_ = log::Level::kInfo;
};

const char* mode_name(testenv::Mode mode) {
  return mode == testenv::Mode::kToken ? "token" : "htpasswd";
}

}  // namespace

TEST_CASE("The resolved digest of a tag equals the one skopeo inspect reports", "[registry]") {
  for (auto mode : {testenv::Mode::kHtpasswd, testenv::Mode::kToken}) {
    SECTION(mode_name(mode)) {
      auto& reg = testenv::Registry::shared(mode);
      LogCapture logs;
      auto info =
          resolve_digest(image_ref(reg.image("v1")), cred(reg, reg.password()), options_for(reg));
      INFO((info.ok() ? std::string() : info.error().message));
      REQUIRE(info.ok());
      auto expected = reg.skopeo_digest("v1");
      REQUIRE(expected.ok());
      CHECK(info->digest == *expected);
      CHECK(info->media_type == "application/vnd.oci.image.manifest.v1+json");
      auto v2 =
          resolve_digest(image_ref(reg.image("v2")), cred(reg, reg.password()), options_for(reg));
      REQUIRE(v2.ok());
      CHECK(v2->digest == reg.digest("v2"));
      CHECK(v2->digest != info->digest);
      CHECK(logs.all().find(reg.password()) == std::string::npos);
    }
  }
}

TEST_CASE("Resolves share one trust store per CA file and rebuild it when the file changes",
          "[registry]") {
  auto& reg = testenv::Registry::shared(testenv::Mode::kHtpasswd);
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/berth-trust-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const fs::path dir = tmpl;
  const fs::path ca = dir / "ca.crt";
  fs::copy_file(reg.ca_file(), ca);
  RegistryOptions options;
  options.ca_files[reg.host()] = ca.string();
  options.timeout = std::chrono::seconds(10);
  auto resolve = [&] {
    return resolve_digest(image_ref(reg.image("v1")), cred(reg, reg.password()), options);
  };
  REQUIRE(resolve().ok());
  const auto built = registry::trust_store_builds();
  REQUIRE(resolve().ok());
  REQUIRE(resolve().ok());
  CHECK(registry::trust_store_builds() == built);  // loading the system roots is not repeated

  // A rotated CA file is read by the next resolve: here it becomes unreadable as PEM.
  {
    std::ofstream out(ca, std::ios::trunc);
    out << "not a certificate\n";
  }
  fs::last_write_time(ca, fs::last_write_time(ca) + std::chrono::seconds(2));
  auto broken = resolve();
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().code == ErrorCode::kFailedPrecondition);
  CHECK(broken.error().message.find(ca.string()) != std::string::npos);

  fs::copy_file(reg.ca_file(), ca, fs::copy_options::overwrite_existing);
  fs::last_write_time(ca, fs::last_write_time(ca) + std::chrono::seconds(4));
  REQUIRE(resolve().ok());
  CHECK(registry::trust_store_builds() == built + 1);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST_CASE("Resolves reuse their connection to the registry and never the credentials",
          "[registry][pool]") {
  for (auto mode : {testenv::Mode::kHtpasswd, testenv::Mode::kToken}) {
    SECTION(mode_name(mode)) {
      auto& reg = testenv::Registry::shared(mode);
      const RegistryOptions options = options_for(reg);
      auto resolve = [&](const std::string& tag, const std::string& password) {
        return resolve_digest(image_ref(reg.image(tag)), cred(reg, password), options);
      };
      REQUIRE(resolve("v1", reg.password()).ok());  // opens what the pool keeps
      const auto opened = registry::connections_opened();
      for (int i = 0; i < 5; ++i) {
        auto v1 = resolve("v1", reg.password());
        REQUIRE(v1.ok());
        CHECK(v1->digest == reg.digest("v1"));
        auto v2 = resolve("v2", reg.password());
        REQUIRE(v2.ok());
        CHECK(v2->digest == reg.digest("v2"));
      }
      // Ten resolves (each a challenge and an authenticated HEAD) on the connection the first
      // one left open. The test token issuer answers HTTP/1.0 and closes after each token, so
      // in token mode only the token GETs open connections (without the pool: 30).
      const std::uint64_t token_gets = mode == testenv::Mode::kToken ? 10 : 0;
      CHECK(registry::connections_opened() - opened == token_gets);
      // A pooled connection carries no authentication: a wrong password is refused on it...
      auto refused = resolve("v1", "wrong-password");
      REQUIRE_FALSE(refused.ok());
      CHECK(refused.error().code == ErrorCode::kPermissionDenied);
      // ...and anonymous access is still anonymous.
      auto anonymous = resolve_digest(image_ref(reg.image("v1")), std::nullopt, options);
      REQUIRE_FALSE(anonymous.ok());
      CHECK(anonymous.error().code == ErrorCode::kPermissionDenied);
      REQUIRE(resolve("v1", reg.password()).ok());
    }
  }
}

TEST_CASE("A reference pinned by digest resolves to that digest", "[registry]") {
  auto& reg = testenv::Registry::shared(testenv::Mode::kToken);
  const std::string pinned = reg.host() + "/berth/sample@" + reg.digest("v2");
  auto info = resolve_digest(image_ref(pinned), cred(reg, reg.password()), options_for(reg));
  REQUIRE(info.ok());
  CHECK(info->digest == reg.digest("v2"));
}

TEST_CASE("A wrong password is reported as refused credentials naming the user", "[registry]") {
  for (auto mode : {testenv::Mode::kHtpasswd, testenv::Mode::kToken}) {
    SECTION(mode_name(mode)) {
      auto& reg = testenv::Registry::shared(mode);
      LogCapture logs;
      const std::string wrong = "berth-canary-wrong-" + reg.password().substr(13);
      auto info = resolve_digest(image_ref(reg.image("v1")), cred(reg, wrong), options_for(reg));
      REQUIRE_FALSE(info.ok());
      CHECK(info.error().code == ErrorCode::kPermissionDenied);
      CHECK(info.error().message == "registry " + reg.host() + " refused the credentials for " +
                                        reg.username() + " (HTTP 401)");
      CHECK(logs.all().find(wrong) == std::string::npos);
    }
  }
}

TEST_CASE("Without credentials a private registry denies access", "[registry]") {
  for (auto mode : {testenv::Mode::kHtpasswd, testenv::Mode::kToken}) {
    SECTION(mode_name(mode)) {
      auto& reg = testenv::Registry::shared(mode);
      auto info = resolve_digest(image_ref(reg.image("v1")), std::nullopt, options_for(reg));
      REQUIRE_FALSE(info.ok());
      CHECK(info.error().code == ErrorCode::kPermissionDenied);
    }
  }
}

TEST_CASE("An unknown tag is reported as image not found", "[registry]") {
  for (auto mode : {testenv::Mode::kHtpasswd, testenv::Mode::kToken}) {
    SECTION(mode_name(mode)) {
      auto& reg = testenv::Registry::shared(mode);
      const std::string image = reg.host() + "/berth/sample:no-such-tag";
      auto info = resolve_digest(image_ref(image), cred(reg, reg.password()), options_for(reg));
      REQUIRE_FALSE(info.ok());
      CHECK(info.error().code == ErrorCode::kNotFound);
      CHECK(info.error().message == "image " + image + " not found");
    }
  }
}

TEST_CASE("A registry whose CA is not configured fails TLS verification", "[registry]") {
  auto& reg = testenv::Registry::shared(testenv::Mode::kHtpasswd);
  RegistryOptions options;  // system trust store only
  options.timeout = std::chrono::seconds(10);
  auto info = resolve_digest(image_ref(reg.image("v1")), cred(reg, reg.password()), options);
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code == ErrorCode::kFailedPrecondition);
  CHECK(info.error().message.find("TLS") != std::string::npos);
  CHECK_FALSE(info.error().retryable());
}

TEST_CASE("A CA configured for another host does not make the registry trusted", "[registry]") {
  auto& reg = testenv::Registry::shared(testenv::Mode::kHtpasswd);
  RegistryOptions options;
  options.ca_files["127.0.0.1:1"] = reg.ca_file();
  options.timeout = std::chrono::seconds(10);
  auto info = resolve_digest(image_ref(reg.image("v1")), cred(reg, reg.password()), options);
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code == ErrorCode::kFailedPrecondition);
}

TEST_CASE("A registry that is down is reported as unavailable", "[registry]") {
  std::string image;
  RegistryOptions options;
  {
    auto reg = testenv::Registry::start(testenv::Mode::kHtpasswd);
    REQUIRE(reg.ok());
    image = reg->image("v1");
    options = options_for(*reg);
  }
  auto info = resolve_digest(image_ref(image), std::nullopt, options);
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code == ErrorCode::kUnavailable);
  CHECK(info.error().retryable());
}

TEST_CASE("A registry that accepts but never answers hits the deadline", "[registry]") {
  // A listening socket nobody accepts from: connect succeeds, the TLS handshake never does.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 8) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string host = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  RegistryOptions options;
  options.timeout = std::chrono::milliseconds(300);
  auto started = std::chrono::steady_clock::now();
  auto info = resolve_digest(image_ref(host + "/berth/sample:v1"), std::nullopt, options);
  auto elapsed = std::chrono::steady_clock::now() - started;
  ::close(fd);
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code == ErrorCode::kDeadlineExceeded);
  CHECK(elapsed < std::chrono::seconds(3));
}

TEST_CASE("A public image behind a token registry resolves anonymously", "[registry]") {
  auto reg = testenv::Registry::start(testenv::Mode::kToken);
  REQUIRE(reg.ok());
  reg->push_samples("public/sample");
  auto info =
      resolve_digest(image_ref(reg->image("v1", "public/sample")), std::nullopt, options_for(*reg));
  INFO((info.ok() ? std::string() : info.error().message));
  REQUIRE(info.ok());
  CHECK(info->digest == reg->digest("v1"));
  // The anonymous token grants nothing outside public/.
  auto denied = resolve_digest(image_ref(reg->image("v1")), std::nullopt, options_for(*reg));
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.error().code == ErrorCode::kPermissionDenied);
}

TEST_CASE("The password is not sent to a token realm on another port unless it is trusted",
          "[registry][credentials]") {
  auto reg = testenv::Registry::start(testenv::Mode::kToken);
  REQUIRE(reg.ok());
  reg->push_samples();
  const std::string realm = realm_authority(*reg);
  REQUIRE(realm != reg->host());
  const std::string requests = reg->dir() + "/token-requests.log";
  const auto before = read_text(requests);
  LogCapture logs;

  RegistryOptions untrusted = options_for(*reg);
  untrusted.trusted_token_realms.clear();
  auto refused =
      resolve_digest(image_ref(reg->image("v1")), cred(*reg, reg->password()), untrusted);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::kFailedPrecondition);
  CHECK_THAT(refused.error().message, Catch::Contains("not the registry's own host") &&
                                          Catch::Contains(realm) &&
                                          Catch::Contains("--registry-token-realm"));
  // The issuer saw no request at all from this call, so none that carried the password.
  CHECK(read_text(requests) == before);
  CHECK(logs.all().find(reg->password()) == std::string::npos);

  const auto after_refusal = read_text(requests);
  RegistryOptions trusted = options_for(*reg);
  auto info = resolve_digest(image_ref(reg->image("v1")), cred(*reg, reg->password()), trusted);
  INFO((info.ok() ? std::string() : info.error().message));
  REQUIRE(info.ok());
  CHECK(info->digest == reg->digest("v1"));
  // The trusted realm got the password, which shows that the log records it when sent.
  CHECK_THAT(read_text(requests).substr(after_refusal.size()),
             Catch::Contains("basic=yes password=yes"));
}

TEST_CASE("The registry's CA is not trusted for a token realm on another port",
          "[registry][credentials]") {
  auto& reg = testenv::Registry::shared(testenv::Mode::kToken);
  RegistryOptions options = options_for(reg);
  options.ca_files.erase(realm_authority(reg));
  auto info = resolve_digest(image_ref(reg.image("v1")), cred(reg, reg.password()), options);
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code == ErrorCode::kFailedPrecondition);
  CHECK_THAT(info.error().message,
             Catch::Contains("TLS handshake") && Catch::Contains(realm_authority(reg)));
}
