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
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

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

// A connection to one registry endpoint, kept open between requests (HTTP/1.1 keep-alive).
// Each owns its io_context: a call runs it with its own deadline while it holds the connection,
// and the pool holds it while idle, so no thread ever serves it without a deadline.
struct Connection {
  std::unique_ptr<asio::io_context> ioc = std::make_unique<asio::io_context>();
  std::unique_ptr<ssl::context> tls_ctx;  // https only; outlives the stream
  std::shared_ptr<X509_STORE> trust;      // what the peer was verified with (https only)
  std::optional<Error> trust_error;       // the trust store could not be built
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  Clock::time_point idle_since;

  ~Connection() {
    // Streams go before the io_context they were created on.
    tls.reset();
    plain.reset();
  }
};

// Idle connections by endpoint and trust: a TLS handshake (ECDHE, certificate verification)
// per resolve was half of a deploying controller's CPU (docs/benchmarks.md). Bounded: at most
// kIdlePerEndpoint idle connections per endpoint, none older than kIdleFor (registries close
// idle connections too; a request on one the peer closed is retried once on a fresh one).
// Credentials are per request (an Authorization header), never per connection: a pooled
// connection carries no authentication state.
class ConnectionPool {
 public:
  static constexpr std::size_t kIdlePerEndpoint = 4;
  static constexpr std::size_t kMaxEndpoints = 64;
  static constexpr auto kIdleFor = std::chrono::seconds(30);

  std::unique_ptr<Connection> take(const std::string& key, const X509_STORE* trust) {
    std::lock_guard lock(mu_);
    auto it = idle_.find(key);
    if (it == idle_.end()) return nullptr;
    auto& list = it->second;
    const auto now = Clock::now();
    while (!list.empty()) {
      std::unique_ptr<Connection> c = std::move(list.back());
      list.pop_back();
      // A rebuilt trust store (a rotated CA file) means a new handshake.
      if (now - c->idle_since < kIdleFor && c->trust.get() == trust) {
        ++reused_;
        return c;
      }
    }
    idle_.erase(it);
    return nullptr;
  }

  void give(const std::string& key, std::unique_ptr<Connection> c) {
    c->idle_since = Clock::now();
    std::lock_guard lock(mu_);
    if (idle_.size() >= kMaxEndpoints && idle_.count(key) == 0) return;
    auto& list = idle_[key];
    if (list.size() >= kIdlePerEndpoint) list.erase(list.begin());  // the oldest goes
    list.push_back(std::move(c));
  }

  std::uint64_t opened() const { return opened_.load(); }
  std::uint64_t reused() const {
    std::lock_guard lock(mu_);
    return reused_;
  }
  void count_open() { ++opened_; }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;  // guarded by mu_
  std::uint64_t reused_ = 0;                                              // guarded by mu_
  std::atomic<std::uint64_t> opened_{0};
};

ConnectionPool& connection_pool() {
  static ConnectionPool* pool = new ConnectionPool;  // never destroyed: used until exit
  return *pool;
}

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
    const Endpoint& ep = req.url.endpoint;
    // An unreadable CA file is reported after the connect, as before pooling: a registry that
    // is down (its files gone with it) is kUnavailable, not a configuration error.
    std::shared_ptr<X509_STORE> trust;
    std::optional<Error> trust_error;
    if (ep.scheme == "https") {
      auto store = trust_for(ep);
      if (store.ok())
        trust = std::move(*store);
      else
        trust_error = store.take_error();
    }
    // The pool key names everything the connection was set up with: scheme, authority, and
    // which CA file vouched for it (the trust store itself is compared on take).
    const std::string key = ep.scheme + "://" + ep.host_header + "|" + ca_file_for(ep);
    ConnectionPool& pool = connection_pool();
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::unique_ptr<Connection> conn =
          attempt == 0 && !trust_error ? pool.take(key, trust.get()) : nullptr;
      const bool reused = conn != nullptr;
      if (!conn) {
        conn = std::make_unique<Connection>();
        conn->trust = trust;
        conn->trust_error = trust_error;
      }
      Outcome outcome;
      asio::io_context& ioc = *conn->ioc;
      ioc.restart();
      asio::co_spawn(
          ioc,
          [this, &req, c = conn.get(), &outcome]() -> asio::awaitable<void> {
            co_await exchange(req, *c, outcome);
          },
          asio::detached);
      // The per-operation expiries of tcp_stream cover everything but DNS; this covers DNS too.
      ioc.run_until(deadline_);
      if (!outcome.result) {
        return make_error(ErrorCode::kDeadlineExceeded,
                          "registry " + registry_host_ + " did not answer before the deadline");
      }
      // A pooled connection the registry closed while it was idle fails before any answer:
      // the request (HEAD or GET, idempotent) is sent again once, on a new connection.
      if (reused && outcome.stale) continue;
      if (outcome.result->ok() && outcome.keep_alive) pool.give(key, std::move(conn));
      return std::move(*outcome.result);
    }
    return make_error(ErrorCode::kUnavailable,
                      "registry " + registry_host_ + " closed the connection");
  }

 private:
  struct Outcome {
    std::optional<Result<Response>> result;
    bool keep_alive = false;  // the connection may serve another request
    bool stale = false;       // failed before any byte of an answer on a reused connection
  };

  Error net_error(const beast::error_code& ec, const std::string& what, const Endpoint& ep) const {
    if (ec == beast::error::timeout) {
      return make_error(ErrorCode::kDeadlineExceeded,
                        "registry " + registry_host_ + " timed out during " + what);
    }
    return make_error(ErrorCode::kUnavailable, "cannot reach registry " + registry_host_ + " at " +
                                                   ep.host_header + " (" + what + ": " +
                                                   ec.message() + ")");
  }

  // The registry's CA vouches for the registry only: a token endpoint on another host or port
  // is trusted through the system store or a CA entry of its own.
  std::string ca_file_for(const Endpoint& ep) const {
    const bool own_endpoint = ep.host == registry_.host && ep.port == registry_.port;
    const std::string& key = own_endpoint ? registry_host_ : ep.host_header;
    if (auto it = options_.ca_files.find(key); it != options_.ca_files.end()) return it->second;
    return {};
  }

  Result<std::shared_ptr<X509_STORE>> trust_for(const Endpoint& ep) const {
    const std::string ca_file = ca_file_for(ep);
    auto store = shared_trust_store(ca_file);
    if (!store.ok()) {
      const bool own_endpoint = ep.host == registry_.host && ep.port == registry_.port;
      return make_error(ErrorCode::kFailedPrecondition,
                        "cannot load the CA file " + ca_file + " for registry " +
                            (own_endpoint ? registry_host_ : ep.host_header) + ": " +
                            store.error().message);
    }
    return store;
  }

  // Connects (and for https verifies the peer) a fresh connection.
  asio::awaitable<std::optional<Error>> open(Connection& conn, const Endpoint& ep) {
    auto executor = co_await asio::this_coro::executor;
    beast::error_code ec;
    auto tok = asio::redirect_error(asio::use_awaitable, ec);
    tcp::resolver resolver(executor);
    auto endpoints = co_await resolver.async_resolve(ep.host, ep.port, tok);
    if (ec) co_return net_error(ec, "resolve", ep);
    auto tcp_stream = std::make_unique<beast::tcp_stream>(executor);
    tcp_stream->expires_at(deadline_);
    co_await tcp_stream->async_connect(endpoints, tok);
    if (ec) co_return net_error(ec, "connect", ep);
    connection_pool().count_open();
    if (ep.scheme != "https") {
      conn.plain = std::move(tcp_stream);
      co_return std::nullopt;
    }
    if (conn.trust_error) co_return *conn.trust_error;
    conn.tls_ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    conn.tls_ctx->set_verify_mode(ssl::verify_peer);
    SSL_CTX_set1_cert_store(conn.tls_ctx->native_handle(), conn.trust.get());
    SSL_CTX_set_min_proto_version(conn.tls_ctx->native_handle(), TLS1_2_VERSION);
    conn.tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*tcp_stream),
                                                                      *conn.tls_ctx);
    SSL* handle = conn.tls->native_handle();
    boost::system::error_code addr_ec;
    (void)asio::ip::make_address(ep.host, addr_ec);
    if (addr_ec) {
      SSL_set_tlsext_host_name(handle, ep.host.c_str());
      SSL_set1_host(handle, ep.host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), ep.host.c_str());
    }
    beast::get_lowest_layer(*conn.tls).expires_at(deadline_);
    co_await conn.tls->async_handshake(ssl::stream_base::client, tok);
    if (ec) {
      if (ec.category() == asio::error::get_ssl_category()) {
        co_return make_error(ErrorCode::kFailedPrecondition,
                             "TLS handshake with registry " + registry_host_ + " at " +
                                 ep.host_header + " failed (" + ec.message() +
                                 "); is its CA configured?");
      }
      co_return net_error(ec, "TLS handshake", ep);
    }
    co_return std::nullopt;
  }

  template <class Stream>
  asio::awaitable<void> round_trip(Stream& stream, const Request& req, Outcome& out, bool reused) {
    const Endpoint& ep = req.url.endpoint;
    beast::error_code ec;
    auto tok = asio::redirect_error(asio::use_awaitable, ec);
    http::request<http::empty_body> request{req.method, req.url.target, 11};
    request.set(http::field::host, ep.host_header);
    request.set(http::field::user_agent, "berth/0.1");
    request.keep_alive(true);
    if (!req.accept.empty()) request.set(http::field::accept, req.accept);
    if (!req.authorization.empty()) request.set(http::field::authorization, req.authorization);

    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    if (req.method == http::verb::head) parser.skip(true);
    beast::flat_buffer buffer;

    beast::get_lowest_layer(stream).expires_at(deadline_);
    co_await http::async_write(stream, request, tok);
    if (ec) {
      out.stale = reused;
      out.result = net_error(ec, "write", ep);
      co_return;
    }
    co_await http::async_read(stream, buffer, parser, tok);
    if (ec) {
      out.stale = reused && !parser.got_some() && ec != beast::error::timeout;
      out.result = net_error(ec, "read", ep);
      co_return;
    }
    auto& msg = parser.get();
    Response r;
    r.status = static_cast<int>(msg.result_int());
    r.www_authenticate = std::string(msg[http::field::www_authenticate]);
    r.content_type = std::string(msg[http::field::content_type]);
    r.digest = std::string(msg["Docker-Content-Digest"]);
    r.body = std::move(msg.body());
    // Reusable only when the answer was read whole and nothing more is in the buffer.
    out.keep_alive = msg.keep_alive() && parser.is_done() && buffer.size() == 0;
    out.result = std::move(r);
  }

  asio::awaitable<void> exchange(const Request& req, Connection& conn, Outcome& out) {
    const bool reused = conn.plain != nullptr || conn.tls != nullptr;
    if (!reused) {
      auto err = co_await open(conn, req.url.endpoint);
      if (err) {
        out.result = std::move(*err);
        co_return;
      }
    }
    if (conn.tls)
      co_await round_trip(*conn.tls, req, out, reused);
    else
      co_await round_trip(*conn.plain, req, out, reused);
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

std::uint64_t connections_opened() { return connection_pool().opened(); }

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
