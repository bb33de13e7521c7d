#include "kube/transport.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "kube/config_internal.h"
#include "kube/credentials.h"
#include "kube/rate_limiter.h"

namespace berth::kube {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// Lists of a few thousand objects are a few MiB; anything past this is a runaway response.
constexpr std::uint64_t kMaxBody = 64ull << 20;
// One watch event is one object: the same bound.
constexpr std::size_t kMaxLine = kMaxBody;
// The Status object of a refused watch is small.
constexpr std::uint64_t kMaxErrorBody = 1 << 20;
constexpr std::uint32_t kMaxHeader = 64 * 1024;
// Idle keep-alive connections kept for reuse; a controller's calls are mostly sequential.
constexpr std::size_t kMaxIdle = 8;
constexpr std::size_t kReadChunk = 64 * 1024;
// client-go's dialer gives up after 30 s as well.
constexpr std::chrono::seconds kConnectTimeout{30};

// A TLS configuration: the cluster's CA and, when set, the client certificate of the
// ClusterConfig or of the exec plugin's latest credential. Connections remember which one they
// were made with, so a new plugin certificate retires older connections.
struct TlsState {
  std::shared_ptr<ssl::context> context;
  std::uint64_t id = 0;
  std::string client_cert_pem;
};

struct Connection {
  Connection(std::shared_ptr<ssl::context> ctx, std::uint64_t tls)
      : context(std::move(ctx)), stream(ioc, *context), tls_id(tls) {}
  std::shared_ptr<ssl::context> context;
  asio::io_context ioc;
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  std::uint64_t tls_id;
  bool reused = false;
};

// An idle pooled connection the server has closed (or sent something unasked on) reads as
// readable; it must not carry the next request.
bool idle_connection_usable(Connection& c) {
  auto& socket = beast::get_lowest_layer(c.stream).socket();
  if (!socket.is_open()) return false;
  pollfd p{socket.native_handle(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

bool is_ip(const std::string& host) {
  boost::system::error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

// getaddrinfo has no deadline of its own that we control; it runs on a thread of its own and
// the call waits for it only until `deadline` (a lookup that hangs is left behind, not waited).
Result<std::vector<tcp::endpoint>> resolve(const std::string& host, const std::string& port,
                                           Deadline deadline) {
  if (is_ip(host))
    return std::vector<tcp::endpoint>{
        tcp::endpoint(asio::ip::make_address(host), static_cast<unsigned short>(std::stoi(port)))};
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::vector<tcp::endpoint> endpoints;
    std::string error;
  };
  auto state = std::make_shared<State>();
  std::thread([state, host, port] {
    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    auto results = resolver.resolve(host, port, ec);
    std::lock_guard lock(state->mu);
    if (ec) state->error = ec.message();
    for (const auto& r : results) state->endpoints.push_back(r.endpoint());
    state->done = true;
    state->cv.notify_all();
  }).detach();
  std::unique_lock lock(state->mu);
  if (!state->cv.wait_until(lock, deadline, [&] { return state->done; }))
    return make_error(ErrorCode::kDeadlineExceeded, "looking up " + host + " took too long");
  if (!state->error.empty() || state->endpoints.empty())
    return make_error(
        ErrorCode::kUnavailable,
        "cannot look up " + host + ": " + (state->error.empty() ? "no address" : state->error));
  return state->endpoints;
}

// Runs one coroutine on the connection's own io_context until it finishes. Every I/O step in
// it is bounded by the tcp_stream's expiry, so run() returns by the deadline.
template <typename T, typename MakeOp>
Result<T> run_io(asio::io_context& ioc, MakeOp make_op) {
  std::optional<Result<T>> out;
  std::exception_ptr failure;
  ioc.restart();
  asio::co_spawn(
      ioc, [&]() -> asio::awaitable<void> { out.emplace(co_await make_op()); },
      [&](std::exception_ptr e) { failure = e; });
  ioc.run();
  if (failure) std::rethrow_exception(failure);
  if (!out) return make_error(ErrorCode::kInternal, "an I/O operation did not complete");
  return std::move(*out);
}

// The TLS configuration of every connection: TLS 1.2 or newer, the cluster CA (the system store
// when the configuration names none), and the client certificate when there is one.
Result<std::shared_ptr<ssl::context>> make_tls_context(const ClusterConfig& config,
                                                       const std::string& cert_pem,
                                                       const Secret& key_pem) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  if (config.insecure_skip_tls_verify) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    ctx->set_verify_mode(ssl::verify_peer);
    if (config.ca_pem.empty())
      ctx->set_default_verify_paths(ec);
    else
      ctx->add_certificate_authority(asio::buffer(config.ca_pem), ec);
    if (ec)
      return make_error(
          ErrorCode::kInvalidArgument,
          "the certificate authority of " + config.origin + " cannot be loaded: " + ec.message());
  }
  if (!cert_pem.empty()) {
    ctx->use_certificate_chain(asio::buffer(cert_pem), ec);
    if (!ec) ctx->use_private_key(asio::buffer(key_pem.reveal()), ssl::context::pem, ec);
    if (ec)
      return make_error(ErrorCode::kInvalidArgument, "the client certificate of " + config.origin +
                                                         " cannot be used: " + ec.message());
  }
  return ctx;
}

class BeastTransport : public Transport {
 public:
  BeastTransport(ClusterConfig config, TransportOptions options, internal::ServerAddress address,
                 TlsState tls, std::unique_ptr<CredentialSource> credentials)
      : config_(std::move(config)),
        options_(std::move(options)),
        address_(std::move(address)),
        limiter_(options_.qps, options_.burst),
        credentials_(std::move(credentials)),
        tls_(std::move(tls)) {}

  Result<Response> send(const Request& request) override {
    try {
      return send_with_auth(request);
    } catch (const boost::system::system_error& e) {
      return make_error(ErrorCode::kUnavailable, "request to " + where() + " failed: " + e.what());
    }
  }

  Result<int> stream(const Request& request,
                     const std::function<bool(std::string_view line)>& on_line,
                     std::stop_token stop, std::string* error_body) override {
    try {
      return stream_with_auth(request, on_line, stop, error_body);
    } catch (const boost::system::system_error& e) {
      return make_error(ErrorCode::kUnavailable, "watch on " + where() + " failed: " + e.what());
    }
  }

 private:
  std::string where() const { return "the Kubernetes API server at " + address_.host_header; }

  Error net_error(const beast::error_code& ec, const std::string& step,
                  const Request& request) const {
    if (ec == beast::error::timeout)
      return make_error(ErrorCode::kDeadlineExceeded,
                        where() + " did not answer " + request.method + " " + target_path(request) +
                            " within " + std::to_string(request.timeout.count()) + " ms (" + step +
                            ")");
    return make_error(ErrorCode::kUnavailable,
                      "cannot reach " + where() + " (" + step + ": " + ec.message() + ")");
  }

  // The path without its query string, for messages (a continue token says nothing useful).
  static std::string target_path(const Request& request) {
    return request.target.substr(0, request.target.find('?'));
  }

  // client-go's QPS/burst limit; a long wait is worth a line (client-go logs it too), since it
  // explains slowness that no server-side metric shows.
  Status throttle(const Request& request, Deadline deadline, std::stop_token stop) {
    const auto before = Clock::now();
    auto s = limiter_.wait(deadline, stop);
    const auto waited = Clock::now() - before;
    if (waited >= std::chrono::seconds(1))
      log::info(
          "kube request delayed by client-side rate limiting",
          {{"method", request.method},
           {"path", target_path(request)},
           {"waited_ms", std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()}});
    return s;
  }

  // ---- credentials -------------------------------------------------------------------------

  Result<std::optional<Credential>> credential(Deadline deadline) {
    if (!credentials_) return std::optional<Credential>();
    auto c = credentials_->get(deadline);
    if (!c.ok()) return c.take_error();
    return std::optional<Credential>(std::move(*c));
  }

  // After a 401: true when a fresh credential differs from the one that was refused, so the
  // request is worth one more try.
  bool refreshed_after_401(const std::optional<Credential>& used, Deadline deadline) {
    if (!credentials_ || !used) return false;
    if (!credentials_->invalidate(used->generation)) return false;
    auto next = credentials_->get(deadline);
    const bool changed = next.ok() && next->generation != used->generation;
    log::info("kube credential refreshed after 401",
              {{"server", address_.host_header}, {"changed", changed}});
    return changed;
  }

  Result<TlsState> tls_for(const std::optional<Credential>& cred) {
    std::lock_guard lock(tls_mu_);
    if (!cred || cred->client_cert_pem.empty() || cred->client_cert_pem == tls_.client_cert_pem)
      return tls_;
    auto ctx = make_tls_context(config_, cred->client_cert_pem, cred->client_key_pem);
    if (!ctx.ok()) {
      Error e = ctx.take_error();
      e.code = ErrorCode::kUnauthenticated;
      return e;
    }
    tls_ = TlsState{std::move(*ctx), tls_.id + 1, cred->client_cert_pem};
    return tls_;
  }

  // ---- connections -------------------------------------------------------------------------

  std::unique_ptr<Connection> take_idle(std::uint64_t tls_id) {
    std::lock_guard lock(pool_mu_);
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (c->tls_id == tls_id && idle_connection_usable(*c)) {
        c->reused = true;
        return c;
      }
    }
    return nullptr;
  }

  void put_idle(std::unique_ptr<Connection> c) {
    std::lock_guard lock(pool_mu_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(c));
  }

  // Connects and shakes hands, within the call's deadline and at most kConnectTimeout (a watch
  // may be given minutes; a server that does not accept a connection in 30 s is not there).
  // A stop request that arrives meanwhile ends it (see stream_once).
  Status connect(Connection& c, const Request& request, Deadline deadline, std::stop_token stop) {
    deadline = std::min(deadline, Clock::now() + kConnectTimeout);
    auto endpoints = resolve(address_.host, address_.port, deadline);
    if (!endpoints.ok()) {
      Error e = endpoints.take_error();
      e.message = "cannot reach " + where() + ": " + e.message;
      return e;
    }
    SSL* handle = c.stream.native_handle();
    // tls-server-name replaces the host both for SNI and for the certificate check, as in
    // client-go; an IP address is checked against the certificate's IP SANs.
    const std::string& name =
        config_.tls_server_name.empty() ? address_.host : config_.tls_server_name;
    if (is_ip(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), name.c_str());
    } else {
      SSL_set_tlsext_host_name(handle, name.c_str());
      SSL_set1_host(handle, name.c_str());
    }
    auto handshake = [&]() -> asio::awaitable<Result<bool>> {
      beast::error_code ec;
      auto tok = asio::redirect_error(asio::use_awaitable, ec);
      if (stop.stop_requested()) co_return cancelled();
      auto& tcp_stream = beast::get_lowest_layer(c.stream);
      tcp_stream.expires_at(deadline);
      co_await tcp_stream.async_connect(*endpoints, tok);
      if (stop.stop_requested()) co_return cancelled();
      if (ec) co_return net_error(ec, "connect", request);
      co_await c.stream.async_handshake(ssl::stream_base::client, tok);
      if (stop.stop_requested()) co_return cancelled();
      if (ec) {
        if (ec.category() == asio::error::get_ssl_category()) {
          co_return make_error(ErrorCode::kFailedPrecondition,
                               "TLS handshake with " + where() + " failed (" + ec.message() +
                                   "); does the certificate authority of " + config_.origin +
                                   " match the server?");
        }
        co_return net_error(ec, "TLS handshake", request);
      }
      co_return true;
    };
    auto done = run_io<bool>(c.ioc, handshake);
    if (!done.ok()) return done.take_error();
    log::debug("kube connection opened", {{"server", address_.host_header}});
    return Status::Ok();
  }

  Result<std::unique_ptr<Connection>> acquire(const TlsState& tls, const Request& request,
                                              Deadline deadline) {
    if (auto c = take_idle(tls.id)) return c;
    auto c = std::make_unique<Connection>(tls.context, tls.id);
    if (auto s = connect(*c, request, deadline, {}); !s.ok()) return s.error();
    return c;
  }

  Result<http::request<http::string_body>> build(const Request& request,
                                                 const std::optional<Credential>& cred) const {
    const http::verb verb = http::string_to_verb(request.method);
    if (verb == http::verb::unknown)
      return make_error(ErrorCode::kInvalidArgument, "unknown HTTP method " + request.method);
    if (request.target.empty() || request.target.front() != '/')
      return make_error(ErrorCode::kInvalidArgument, "a request target must start with /");
    http::request<http::string_body> req{verb, address_.path_prefix + request.target, 11};
    req.set(http::field::host, address_.host_header);
    req.set(http::field::user_agent, options_.user_agent);
    if (!request.accept.empty()) req.set(http::field::accept, request.accept);
    if (!request.content_type.empty()) req.set(http::field::content_type, request.content_type);
    if (cred && !cred->token.empty()) {
      std::string header = "Bearer ";
      header += cred->token.reveal();
      req.set(http::field::authorization, header);
      wipe_string(header);
    }
    req.keep_alive(true);
    req.body() = request.body;
    req.prepare_payload();
    return req;
  }

  // ---- send --------------------------------------------------------------------------------

  Result<Response> send_with_auth(const Request& request) {
    const Deadline deadline = Clock::now() + request.timeout;
    for (int attempt = 0;; ++attempt) {
      if (auto s = throttle(request, deadline, {}); !s.ok()) return s.error();
      auto cred = credential(deadline);
      if (!cred.ok()) return cred.take_error();
      auto response = send_once(request, *cred, deadline);
      if (response.ok() && response->status == 401 && attempt == 0 &&
          refreshed_after_401(*cred, deadline))
        continue;
      return response;
    }
  }

  Result<Response> send_once(const Request& request, const std::optional<Credential>& cred,
                             Deadline deadline) {
    auto tls = tls_for(cred);
    if (!tls.ok()) return tls.take_error();
    auto req = build(request, cred);
    if (!req.ok()) return req.take_error();
    for (int tries = 0;; ++tries) {
      auto conn = acquire(*tls, request, deadline);
      if (!conn.ok()) return conn.take_error();
      Connection& c = **conn;
      bool nothing_received = false;
      bool keep_alive = false;
      auto exchange = [&]() -> asio::awaitable<Result<Response>> {
        beast::error_code ec;
        auto tok = asio::redirect_error(asio::use_awaitable, ec);
        beast::get_lowest_layer(c.stream).expires_at(deadline);
        co_await http::async_write(c.stream, *req, tok);
        if (ec) {
          nothing_received = true;
          co_return net_error(ec, "write", request);
        }
        http::response_parser<http::string_body> parser;
        parser.header_limit(kMaxHeader);
        parser.body_limit(kMaxBody);
        co_await http::async_read(c.stream, c.buffer, parser, tok);
        if (ec == http::error::body_limit)
          co_return make_error(ErrorCode::kPayloadTooLarge,
                               where() + " answered " + request.method + " " +
                                   target_path(request) + " with a body over " +
                                   std::to_string(kMaxBody >> 20) + " MiB");
        if (ec) {
          nothing_received = !parser.got_some();
          co_return net_error(ec, "read", request);
        }
        auto& msg = parser.get();
        keep_alive = msg.keep_alive();
        Response out;
        out.status = static_cast<int>(msg.result_int());
        out.content_type = std::string(msg[http::field::content_type]);
        out.body = std::move(msg.body());
        co_return out;
      };
      auto response = run_io<Response>(c.ioc, exchange);
      if (response.ok()) {
        if (keep_alive) put_idle(std::move(*conn));
        return response;
      }
      // A pooled connection the server closed while it sat idle fails before any byte of an
      // answer: the request never reached the server, so it goes out once more on a new one.
      if (c.reused && nothing_received && tries == 0 &&
          response.error().code == ErrorCode::kUnavailable) {
        log::debug("kube pooled connection was closed, retrying",
                   {{"server", address_.host_header}});
        continue;
      }
      return response;
    }
  }

  // ---- stream ------------------------------------------------------------------------------

  Result<int> stream_with_auth(const Request& request,
                               const std::function<bool(std::string_view)>& on_line,
                               std::stop_token stop, std::string* error_body) {
    const Deadline deadline = Clock::now() + request.timeout;
    for (int attempt = 0;; ++attempt) {
      if (stop.stop_requested()) return cancelled();
      if (auto s = throttle(request, deadline, stop); !s.ok()) return s.error();
      auto cred = credential(deadline);
      if (!cred.ok()) return cred.take_error();
      std::string body;
      auto status = stream_once(request, *cred, deadline, on_line, stop, body);
      if (status.ok() && *status == 401 && attempt == 0 && refreshed_after_401(*cred, deadline))
        continue;
      if (status.ok() && error_body != nullptr) *error_body = std::move(body);
      return status;
    }
  }

  static Error cancelled() {
    return make_error(ErrorCode::kUnavailable,
                      "the watch was cancelled before the server answered");
  }

  Result<int> stream_once(const Request& request, const std::optional<Credential>& cred,
                          Deadline deadline, const std::function<bool(std::string_view)>& on_line,
                          std::stop_token stop, std::string& error_body) {
    auto tls = tls_for(cred);
    if (!tls.ok()) return tls.take_error();
    auto req = build(request, cred);
    if (!req.ok()) return req.take_error();
    // A watch always gets a connection of its own: a pooled one may have been closed by the
    // server, and a watch that fails at once would only be retried by the caller anyway.
    auto conn = std::make_unique<Connection>(tls->context, tls->id);
    Connection& c = *conn;

    // Cancellation from another thread: the socket is closed on the connection's own
    // io_context (posting is thread-safe; touching the socket from here would not be). The
    // flag keeps a close that is still queued when this call ends from hitting a later call.
    auto active = std::make_shared<bool>(true);
    std::stop_callback on_stop(stop, [&ioc = c.ioc, active, &c] {
      asio::post(ioc, [active, &c] {
        if (!*active) return;
        beast::error_code ignored;
        beast::get_lowest_layer(c.stream).socket().close(ignored);
      });
    });

    if (auto s = connect(c, request, deadline, stop); !s.ok()) return s.error();

    bool reusable = false;
    auto exchange = [&]() -> asio::awaitable<Result<int>> {
      beast::error_code ec;
      auto tok = asio::redirect_error(asio::use_awaitable, ec);
      beast::get_lowest_layer(c.stream).expires_at(deadline);
      co_await http::async_write(c.stream, *req, tok);
      if (ec) co_return stop.stop_requested() ? cancelled() : net_error(ec, "write", request);
      http::response_parser<http::buffer_body> parser;
      parser.header_limit(kMaxHeader);
      parser.body_limit(boost::none);  // a watch streams for as long as it lasts
      co_await http::async_read_header(c.stream, c.buffer, parser, tok);
      if (ec) co_return stop.stop_requested() ? cancelled() : net_error(ec, "read", request);
      const int status = static_cast<int>(parser.get().result_int());
      if (status < 200 || status > 299) {
        http::response_parser<http::string_body> rest(std::move(parser));
        rest.body_limit(kMaxErrorBody);
        co_await http::async_read(c.stream, c.buffer, rest, tok);
        if (ec) co_return net_error(ec, "read", request);
        error_body = std::move(rest.get().body());
        reusable = rest.get().keep_alive();
        co_return status;
      }
      std::string pending;
      std::vector<char> chunk(kReadChunk);
      bool consumer_done = false;
      while (!parser.is_done() && !consumer_done) {
        parser.get().body().data = chunk.data();
        parser.get().body().size = chunk.size();
        co_await http::async_read_some(c.stream, c.buffer, parser, tok);
        if (ec == http::error::need_buffer) ec = {};
        const std::size_t n = chunk.size() - parser.get().body().size;
        pending.append(chunk.data(), n);
        std::size_t start = 0;
        for (std::size_t nl;
             !consumer_done && (nl = pending.find('\n', start)) != std::string::npos;
             start = nl + 1) {
          std::string_view line(pending.data() + start, nl - start);
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          if (!line.empty()) consumer_done = !on_line(line);
        }
        pending.erase(0, start);
        if (pending.size() > kMaxLine)
          co_return make_error(ErrorCode::kPayloadTooLarge,
                               "a watch event from " + where() + " is over " +
                                   std::to_string(kMaxLine >> 20) + " MiB");
        if (ec) {
          // Deadline, cancellation, or the server dropping the stream: the watch is over
          // either way, and the caller resumes from the last resourceVersion it saw.
          log::debug("kube watch stream ended", {{"server", address_.host_header},
                                                 {"path", target_path(request)},
                                                 {"reason", ec.message()}});
          break;
        }
      }
      if (!consumer_done && !pending.empty() && parser.is_done()) on_line(pending);
      reusable = parser.is_done() && !consumer_done && parser.get().keep_alive();
      co_return status;
    };
    auto result = run_io<int>(c.ioc, exchange);
    *active = false;
    if (result.ok() && reusable && !stop.stop_requested()) put_idle(std::move(conn));
    return result;
  }

  const ClusterConfig config_;
  const TransportOptions options_;
  const internal::ServerAddress address_;
  RateLimiter limiter_;
  std::unique_ptr<CredentialSource> credentials_;
  std::mutex tls_mu_;
  TlsState tls_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace

Result<std::unique_ptr<Transport>> make_transport(ClusterConfig config, TransportOptions options) {
  auto address = internal::parse_server(config.server);
  if (!address)
    return make_error(ErrorCode::kInvalidArgument,
                      config.origin + ": server \"" + config.server + "\" is not an https URL");
  auto ctx = make_tls_context(config, config.client_cert_pem, config.client_key_pem);
  if (!ctx.ok()) return ctx.take_error();
  TlsState tls{std::move(*ctx), 0, config.client_cert_pem};
  auto credentials = make_credential_source(config);
  return std::unique_ptr<Transport>(
      std::make_unique<BeastTransport>(std::move(config), std::move(options), std::move(*address),
                                       std::move(tls), std::move(credentials)));
}

}  // namespace berth::kube
