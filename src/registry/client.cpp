#include "registry/client.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <map>
#include <memory>
#include <mutex>

#include "common/base64.h"
#include "common/log.h"
#include "registry/protocol.h"

namespace berth::registry {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

// The trust stores resolves verify registries with: the system roots, plus one registry CA
// file. Loading the system bundle parses every root certificate (~140 PEM blocks; with
// OpenSSL 3's decoders 20-50 ms of CPU), and it used to run on every resolve, which made it
// 80% of the controller's CPU while deploying (docs/benchmarks.md). A store is built once
// per CA file and shared read-only by every call's SSL context (X509_STORE is reference counted
// and safe for concurrent verification). It is rebuilt when the CA file or the system bundle
// changes on disk (modification time or size), so a rotated CA is picked up by the next call.
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
using StorePtr = std::unique_ptr<X509_STORE, StoreFree>;

std::string file_version(const char* path) {
  struct stat st {};
  if (path == nullptr || ::stat(path, &st) != 0) return "-";
  return std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "/" +
         std::to_string(st.st_size);
}

struct TrustStores {
  std::mutex mu;
  struct Entry {
    std::string version;
    std::shared_ptr<X509_STORE> store;
  };
  std::map<std::string, Entry> by_ca_file;  // "" = system roots only
  std::atomic<std::uint64_t> builds{0};
};

TrustStores& trust_stores() {
  static TrustStores* stores = new TrustStores;  // never destroyed: used until exit
  return *stores;
}

Result<std::shared_ptr<X509_STORE>> shared_trust_store(const std::string& ca_file) {
  const std::string version = file_version(X509_get_default_cert_file()) + "|" +
                              (ca_file.empty() ? "" : file_version(ca_file.c_str()));
  TrustStores& ts = trust_stores();
  std::lock_guard lock(ts.mu);
  auto it = ts.by_ca_file.find(ca_file);
  if (it != ts.by_ca_file.end() && it->second.version == version) return it->second.store;
  StorePtr store(X509_STORE_new());
  if (!store) return make_error(ErrorCode::kInternal, "out of memory");
  X509_STORE_set_default_paths(store.get());
  ERR_clear_error();  // a missing system bundle is not an error: only the CA file matters then
  if (!ca_file.empty() && X509_STORE_load_file(store.get(), ca_file.c_str()) != 1) {
    ERR_clear_error();
    return make_error(ErrorCode::kFailedPrecondition, "not a readable PEM certificate file");
  }
  ++ts.builds;
  std::shared_ptr<X509_STORE> shared(store.release(), StoreFree{});
  ts.by_ca_file[ca_file] = {version, shared};
  return shared;
}
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxBody = 4 * 1024 * 1024;  // manifests and token responses are small

struct Response {
  int status = 0;
  std::string www_authenticate;
  std::string content_type;
  std::string digest;  // Docker-Content-Digest
  std::string body;
};

struct Request {
  http::verb method = http::verb::head;
  Url url;
  std::string accept;
  std::string authorization;  // never logged; wiped with the request (Basic carries the password)

  Request() = default;
  Request(const Request&) = default;
  Request& operator=(const Request&) = default;
  ~Request() { secure_wipe(authorization.data(), authorization.size()); }
};

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0xf];
  }
  return out;
}

bool valid_digest(std::string_view d) {
  if (d.rfind("sha256:", 0) != 0 || d.size() != 71) return false;
  for (char c : d.substr(7)) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) ||
        std::isupper(static_cast<unsigned char>(c)))
      return false;
  }
  return true;
}

// One request/response on a fresh connection, bounded by `deadline`.
class Transport {
 public:
  Transport(const RegistryOptions& options, std::string registry_host, Endpoint registry,
            Clock::time_point deadline)
      : options_(options),
        registry_host_(std::move(registry_host)),
        registry_(std::move(registry)),
        deadline_(deadline) {}

  Result<Response> send(const Request& req) {
    asio::io_context ioc;
    auto result = std::make_shared<std::optional<Result<Response>>>();
    asio::co_spawn(
        ioc, [this, &req, result]() -> asio::awaitable<void> { *result = co_await exchange(req); },
        asio::detached);
    // The per-operation expiries of tcp_stream cover everything but DNS; this covers DNS too.
    ioc.run_until(deadline_);
    if (!result->has_value()) {
      ioc.stop();
      return make_error(ErrorCode::kDeadlineExceeded,
                        "registry " + registry_host_ + " did not answer before the deadline");
    }
    return std::move(**result);
  }

 private:
  Error net_error(const beast::error_code& ec, const std::string& what, const Endpoint& ep) const {
    if (ec == beast::error::timeout) {
      return make_error(ErrorCode::kDeadlineExceeded,
                        "registry " + registry_host_ + " timed out during " + what);
    }
    return make_error(ErrorCode::kUnavailable, "cannot reach registry " + registry_host_ + " at " +
                                                   ep.host_header + " (" + what + ": " +
                                                   ec.message() + ")");
  }

  Result<bool> configure_tls(ssl::context& ctx, const Endpoint& ep) const {
    ctx.set_verify_mode(ssl::verify_peer);
    // The registry's CA vouches for the registry only: a token endpoint on another host or
    // port is trusted through the system store or a CA entry of its own.
    const bool own_endpoint = ep.host == registry_.host && ep.port == registry_.port;
    const std::string& key = own_endpoint ? registry_host_ : ep.host_header;
    std::string ca_file;
    if (auto it = options_.ca_files.find(key); it != options_.ca_files.end()) ca_file = it->second;
    auto store = shared_trust_store(ca_file);
    if (!store.ok()) {
      return make_error(ErrorCode::kFailedPrecondition, "cannot load the CA file " + ca_file +
                                                            " for registry " + key + ": " +
                                                            store.error().message);
    }
    SSL_CTX_set1_cert_store(ctx.native_handle(), store->get());
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    return true;
  }

  asio::awaitable<Result<Response>> exchange(const Request& req) {
    const Endpoint& ep = req.url.endpoint;
    auto executor = co_await asio::this_coro::executor;
    beast::error_code ec;
    auto tok = asio::redirect_error(asio::use_awaitable, ec);

    tcp::resolver resolver(executor);
    auto endpoints = co_await resolver.async_resolve(ep.host, ep.port, tok);
    if (ec) co_return net_error(ec, "resolve", ep);

    beast::tcp_stream tcp_stream(executor);
    tcp_stream.expires_at(deadline_);
    co_await tcp_stream.async_connect(endpoints, tok);
    if (ec) co_return net_error(ec, "connect", ep);

    http::request<http::empty_body> request{req.method, req.url.target, 11};
    request.set(http::field::host, ep.host_header);
    request.set(http::field::user_agent, "berth/0.1");
    request.set(http::field::connection, "close");
    if (!req.accept.empty()) request.set(http::field::accept, req.accept);
    if (!req.authorization.empty()) request.set(http::field::authorization, req.authorization);

    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    if (req.method == http::verb::head) parser.skip(true);
    beast::flat_buffer buffer;

    if (ep.scheme == "https") {
      ssl::context ctx(ssl::context::tls_client);
      auto configured = configure_tls(ctx, ep);
      if (!configured.ok()) co_return configured.error();
      beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), ctx);
      SSL* handle = stream.native_handle();
      boost::system::error_code addr_ec;
      (void)asio::ip::make_address(ep.host, addr_ec);
      if (addr_ec) {
        SSL_set_tlsext_host_name(handle, ep.host.c_str());
        SSL_set1_host(handle, ep.host.c_str());
      } else {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), ep.host.c_str());
      }
      beast::get_lowest_layer(stream).expires_at(deadline_);
      co_await stream.async_handshake(ssl::stream_base::client, tok);
      if (ec) {
        if (ec.category() == asio::error::get_ssl_category()) {
          co_return make_error(ErrorCode::kFailedPrecondition,
                               "TLS handshake with registry " + registry_host_ + " at " +
                                   ep.host_header + " failed (" + ec.message() +
                                   "); is its CA configured?");
        }
        co_return net_error(ec, "TLS handshake", ep);
      }
      co_await http::async_write(stream, request, tok);
      if (ec) co_return net_error(ec, "write", ep);
      co_await http::async_read(stream, buffer, parser, tok);
      if (ec) co_return net_error(ec, "read", ep);
      beast::error_code ignored;
      beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
    } else {
      co_await http::async_write(tcp_stream, request, tok);
      if (ec) co_return net_error(ec, "write", ep);
      co_await http::async_read(tcp_stream, buffer, parser, tok);
      if (ec) co_return net_error(ec, "read", ep);
    }

    auto& msg = parser.get();
    Response out;
    out.status = static_cast<int>(msg.result_int());
    out.www_authenticate = std::string(msg[http::field::www_authenticate]);
    out.content_type = std::string(msg[http::field::content_type]);
    out.digest = std::string(msg["Docker-Content-Digest"]);
    out.body = std::move(msg.body());
    co_return out;
  }

  const RegistryOptions& options_;
  std::string registry_host_;
  Endpoint registry_;  // the registry's API endpoint
  Clock::time_point deadline_;
};

class Resolver {
 public:
  Resolver(const core::ImageRef& ref, const std::optional<RegistryCredential>& cred,
           const RegistryOptions& options, bool want_body = false)
      : want_body_(want_body),
        ref_(ref),
        cred_(cred),
        options_(options),
        registry_(api_endpoint(ref.registry_host, options.plain_http_for_loopback)),
        transport_(options, ref.registry_host, registry_, Clock::now() + options.timeout) {}

  Result<ManifestInfo> run() {
    Request head;
    // fetch_manifest needs the bytes: one GET instead of HEAD (+ GET).
    head.method = want_body_ ? http::verb::get : http::verb::head;
    head.url.endpoint = registry_;
    head.url.target = manifest_target(ref_);
    head.accept = kManifestAccept;

    auto resp = transport_.send(head);
    if (!resp.ok()) return resp.take_error();
    bool authenticated = false;
    if (resp->status == 401) {
      auto authz = authorize(resp->www_authenticate, head.url.endpoint);
      if (!authz.ok()) return authz.take_error();
      head.authorization = std::move(*authz);
      authenticated = cred_.has_value();
      resp = transport_.send(head);
      if (!resp.ok()) return resp.take_error();
    }
    if (auto err = classify(resp->status, authenticated)) return *err;

    ManifestInfo info;
    info.media_type = resp->content_type;
    info.digest = resp->digest;
    if (want_body_) {
      // The bytes are what counts: their hash is the digest, whatever the header says.
      info.digest = "sha256:" + sha256_hex(resp->body);
      info.body = std::move(resp->body);
    } else if (!valid_digest(info.digest)) {
      // No (usable) Docker-Content-Digest: the digest is, by definition, that of the bytes.
      Request get = head;
      get.method = http::verb::get;
      auto body = transport_.send(get);
      if (!body.ok()) return body.take_error();
      if (auto err = classify(body->status, authenticated)) return *err;
      info.digest = "sha256:" + sha256_hex(body->body);
      info.media_type = body->content_type;
    }
    if (!ref_.digest.empty() && ref_.digest.rfind("sha256:", 0) == 0 &&
        info.digest != ref_.digest) {
      return make_error(ErrorCode::kDataLoss, "registry " + ref_.registry_host +
                                                  " answered with digest " + info.digest + " for " +
                                                  ref_.normalized());
    }
    auto semi = info.media_type.find(';');
    if (semi != std::string::npos) info.media_type.resize(semi);
    log::debug(
        "registry digest resolved",
        {{"image", ref_.normalized()}, {"digest", info.digest}, {"media_type", info.media_type}});
    return info;
  }

 private:
  std::string refused_message(int status) const {
    return "registry " + ref_.registry_host + " refused the credentials for " + cred_->username +
           " (HTTP " + std::to_string(status) + ")";
  }

  std::optional<Error> classify(int status, bool authenticated) const {
    if (status >= 200 && status < 300) return std::nullopt;
    if (status == 401 || status == 403) {
      if (authenticated) return make_error(ErrorCode::kPermissionDenied, refused_message(status));
      return make_error(ErrorCode::kPermissionDenied,
                        "registry " + ref_.registry_host + " denied anonymous access to " +
                            ref_.name() + " (it needs credentials, or the image does not exist)");
    }
    if (status == 404) {
      return make_error(ErrorCode::kNotFound, "image " + ref_.with_default_tag() + " not found");
    }
    if (status == 429 || status >= 500) {
      return make_error(ErrorCode::kUnavailable, "registry " + ref_.registry_host +
                                                     " answered HTTP " + std::to_string(status));
    }
    return make_error(ErrorCode::kFailedPrecondition,
                      "registry " + ref_.registry_host + " answered HTTP " +
                          std::to_string(status) + " for " + ref_.normalized());
  }

  std::string basic_header() const {
    std::string plain = cred_->username + ":" + std::string(cred_->password.reveal());
    std::string header = "Basic " + base64::encode(plain);
    secure_wipe(plain.data(), plain.size());
    return header;
  }

  // The Authorization header for the retry after a 401 carrying `challenge_header`.
  Result<std::string> authorize(const std::string& challenge_header, const Endpoint& registry) {
    auto challenge = parse_challenge(challenge_header);
    if (!challenge) {
      return make_error(ErrorCode::kFailedPrecondition,
                        "registry " + ref_.registry_host + " answered 401 without a challenge");
    }
    if (challenge->scheme == "basic") {
      if (!cred_) {
        return make_error(
            ErrorCode::kPermissionDenied,
            "registry " + ref_.registry_host + " requires credentials for " + ref_.name());
      }
      if (registry.scheme != "https" && !is_loopback_host(registry.host)) {
        return make_error(ErrorCode::kFailedPrecondition, "refusing to send credentials over HTTP");
      }
      return basic_header();
    }
    if (challenge->scheme != "bearer") {
      return make_error(ErrorCode::kFailedPrecondition, "registry " + ref_.registry_host +
                                                            " asks for unsupported auth scheme " +
                                                            challenge->scheme);
    }
    auto url = parse_url(token_url(*challenge, "repository:" + ref_.repository + ":pull"));
    if (!url) {
      return make_error(ErrorCode::kFailedPrecondition,
                        "registry " + ref_.registry_host + " named an invalid token realm");
    }
    Request token_req;
    token_req.method = http::verb::get;
    token_req.url = *url;
    token_req.accept = "application/json";
    if (cred_) {
      // A registry that names a token endpoint elsewhere would otherwise be handed the
      // password for a host it does not serve; only its own host or a trusted realm gets it.
      if (!realm_trusted(ref_.registry_host, registry_, url->endpoint,
                         options_.trusted_token_realms)) {
        log::warn("token realm not trusted, credentials withheld",
                  {{"registry", ref_.registry_host}, {"realm", url->endpoint.host_header}});
        return make_error(ErrorCode::kFailedPrecondition,
                          "registry " + ref_.registry_host + " sends clients to token realm " +
                              url->endpoint.host_header +
                              ", which is not the registry's own host; berth sends the password "
                              "there only when that realm is trusted (serve "
                              "--registry-token-realm " +
                              ref_.registry_host + "=" + url->endpoint.host_header + ")");
      }
      if (url->endpoint.scheme != "https" && !is_loopback_host(url->endpoint.host)) {
        return make_error(ErrorCode::kFailedPrecondition,
                          "registry " + ref_.registry_host +
                              " asks for credentials over plain HTTP at its token endpoint");
      }
      token_req.authorization = basic_header();
    }
    auto resp = transport_.send(token_req);
    if (!resp.ok()) return resp.take_error();
    if (resp->status == 401 || resp->status == 403) {
      if (cred_) return make_error(ErrorCode::kPermissionDenied, refused_message(resp->status));
      return make_error(
          ErrorCode::kPermissionDenied,
          "registry " + ref_.registry_host + " refused an anonymous token for " + ref_.name());
    }
    if (resp->status < 200 || resp->status >= 300) {
      return make_error(resp->status == 429 || resp->status >= 500 ? ErrorCode::kUnavailable
                                                                   : ErrorCode::kFailedPrecondition,
                        "token endpoint of registry " + ref_.registry_host + " answered HTTP " +
                            std::to_string(resp->status));
    }
    auto token = parse_token_response(resp->body);
    if (!token) {
      return make_error(ErrorCode::kFailedPrecondition,
                        "token endpoint of registry " + ref_.registry_host + " returned no token");
    }
    return "Bearer " + *token;
  }

  bool want_body_ = false;
  const core::ImageRef& ref_;
  const std::optional<RegistryCredential>& cred_;
  const RegistryOptions& options_;
  Endpoint registry_;  // the registry's API endpoint
  Transport transport_;
};

}  // namespace

Result<ManifestInfo> resolve_digest(const core::ImageRef& ref,
                                    const std::optional<RegistryCredential>& cred,
                                    const RegistryOptions& options) {
  if (ref.registry_host.empty() || ref.repository.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "image reference has no registry host or name");
  }
  try {
    return Resolver(ref, cred, options).run();
  } catch (const std::exception& e) {
    // Asio/Beast throw only on resource exhaustion here (e.g. no file descriptors).
    return make_error(ErrorCode::kUnavailable,
                      "registry " + ref.registry_host + " request failed: " + e.what());
  }
}

std::uint64_t trust_store_builds() { return trust_stores().builds.load(); }

Result<ManifestInfo> fetch_manifest(const core::ImageRef& ref,
                                    const std::optional<RegistryCredential>& cred,
                                    const RegistryOptions& options) {
  if (ref.registry_host.empty() || ref.repository.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "image reference has no registry host or name");
  }
  try {
    return Resolver(ref, cred, options, /*want_body=*/true).run();
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kUnavailable,
                      "registry " + ref.registry_host + " request failed: " + e.what());
  }
}

}  // namespace berth::registry
