#include "api/server.h"
#include "common/text.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "api/auth.h"
#include "api/handler.h"
#include "api/ui/ui.h"
#include "common/log.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace berth::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// The API's TLS 1.2 suites (OpenSSL names): ECDHE key exchange with an AEAD cipher only.
constexpr const char* kApiTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

bool is_loopback(const asio::ip::address& a) {
  if (a.is_loopback()) return true;
  // An IPv4-mapped loopback address is loopback too.
  return a.is_v6() && a.to_v6().is_v4_mapped() &&
         asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).is_loopback();
}

// Only the path: a query string is user input and could carry anything.
std::string path_only(std::string_view target) {
  return std::string(target.substr(0, target.find('?')));
}

// A request the parser rejected (worth a 400), as opposed to a connection that went away.
bool is_parse_error(const beast::error_code& ec) {
  static const auto& http_category = beast::error_code(http::error::end_of_stream).category();
  return ec.category() == http_category && ec != http::error::end_of_stream &&
         ec != http::error::partial_message;
}

// Only /app-services and the status page need an account; /healthz and unknown paths are the
// handler's alone.
bool needs_account(std::string_view path) {
  constexpr std::string_view kBase = "/app-services";
  return (path.substr(0, kBase.size()) == kBase &&
          (path.size() == kBase.size() || path[kBase.size()] == '/')) ||
         ui::is_ui_path(path);
}

// An account name as a limiter key and log field: bounded, since it is whatever the client sent.
std::string account_key(std::string_view name) { return std::string(name.substr(0, 128)); }

// The id of a token shaped `berth_<16 lowercase hex>_<secret>` (docs/credentials.md), or "?"
// for anything else, so every malformed token shares one budget. The id is not secret.
std::string bearer_token_id(std::string_view token) {
  constexpr std::string_view kPrefix = "berth_";
  constexpr std::size_t kIdLength = 16;
  if (token.size() <= kPrefix.size() + kIdLength || token.substr(0, kPrefix.size()) != kPrefix ||
      token[kPrefix.size() + kIdLength] != '_')
    return "?";
  const std::string_view id = token.substr(kPrefix.size(), kIdLength);
  if (id.find_first_not_of("0123456789abcdef") != std::string_view::npos) return "?";
  return std::string(id);
}

HttpResponse unauthorized(const std::string& message) {
  HttpResponse r = json_error(401, message);
  r.headers["WWW-Authenticate"] = kAuthChallenge;
  return r;
}

HttpResponse unavailable(const std::string& message) {
  HttpResponse r = json_error(503, message);
  r.headers["Retry-After"] = "1";
  return r;
}

// What the server decided about a request's credentials before the handler runs.
struct AuthVerdict {
  std::optional<HttpResponse> refusal;  // answer this instead of calling the handler
  std::string account_id;               // verified account; empty: the handler decides
};

// Per-connection state shared with stop(): touched only on the connection's strand.
struct ConnState {
  asio::any_io_executor strand;  // the session's strand
  bool busy = false;             // a request is being read past its header or handled
  std::function<void()> cancel;  // closes the connection's socket; empty once it is gone
  std::string client;            // the peer's address, for authentication logs and limits
};

}  // namespace

struct ApiServer::Impl {
  Impl(ApiOptions o, core::StateStore& store, std::function<core::UnixMillis()> clock,
       std::function<void(const std::string&)> on_change)
      : opts(std::move(o)),
        store(store),
        handler(HandlerOptions{opts.default_zone, opts.new_id, opts.credential_check,
                               opts.health_only, opts.not_ready, opts.metrics, opts.progress},
                store, std::move(clock), std::move(on_change)),
        auth_cache(opts.auth.cache, opts.auth.clock),
        by_address(opts.auth.per_address, opts.auth.clock),
        by_account(opts.auth.per_account, opts.auth.clock) {
    metrics::Registry& r = opts.metrics != nullptr ? *opts.metrics : metrics::process_registry();
    requests = &r.counter("berth_api_requests_total",
                          "API requests answered, by route template and HTTP status code",
                          {"route", "code"});
    request_seconds =
        &r.histogram("berth_api_request_duration_seconds",
                     "Time from a request's header to its response, by route template", {"route"},
                     metrics::default_buckets());
  }

  ApiOptions opts;
  core::StateStore& store;
  Handler handler;
  AuthCache auth_cache;
  FailureLimiter by_address;
  FailureLimiter by_account;
  metrics::Family<metrics::Counter>* requests = nullptr;
  metrics::Family<metrics::Histogram>* request_seconds = nullptr;
  // scrypt runs here, never on the I/O threads; created by start(), joined by stop().
  std::optional<asio::thread_pool> hash_pool;
  std::atomic<std::size_t> hashing{0};  // verifications running or queued on hash_pool
  // Basic verifications in flight, by the cache key of their header (an HMAC, never the header):
  // requests with the same header that miss the cache while it is verified wait for that one
  // verdict instead of each queueing a scrypt of its own. Without this, a client opening 16
  // connections at once (or 16 requests just after the cache entry expired) ran scrypt 16
  // times in a row on the one hash thread, stalling all of them for seconds
  // (docs/benchmarks.md, limit 1).
  struct Flight {
    std::vector<std::function<void(Result<std::string>)>> waiters;
  };
  std::mutex flights_mu;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights;  // guarded by flights_mu
  // The TLS context outlives the io_context, which may destroy unfinished sessions' streams.
  std::optional<ssl::context> tls;
  asio::io_context ioc;
  tcp::acceptor acceptor{asio::make_strand(ioc)};
  std::vector<std::thread> threads;
  tcp::endpoint bound;
  std::atomic<bool> started{false};
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> connections{0};

  std::mutex mu;
  std::uint64_t next_conn = 0;                                // guarded by mu
  std::map<std::uint64_t, std::shared_ptr<ConnState>> conns;  // guarded by mu

  Status load_tls();
  asio::awaitable<void> accept_loop();
  // Starts a session for an accepted connection, or closes it (stopping, over the limit).
  void admit(tcp::socket socket);
  asio::awaitable<void> session(tcp::socket socket);
  template <class Stream>
  asio::awaitable<void> serve(Stream& stream, ConnState& state);
  template <class Stream>
  asio::awaitable<bool> write(Stream& stream, http::response<http::string_body>& res);
  template <class Stream>
  asio::awaitable<void> refuse(Stream& stream, const HttpResponse& r, unsigned version);
  HttpResponse dispatch(http::request<http::string_body>& req, const std::string& account_id);
  asio::awaitable<AuthVerdict> authorize(const std::string& path, const std::string& authorization,
                                         const std::string& client);
  // 429 with Retry-After while `client` or `key` (an account name, or "token:<id>") has used
  // its failure budget; nullopt when it may try now.
  std::optional<HttpResponse> rate_limited(const std::string& client, const std::string& key) {
    const auto wait = std::max(by_address.retry_after(client), by_account.retry_after(key));
    if (wait.count() <= 0) return std::nullopt;
    const auto seconds = std::max<std::int64_t>(1, (wait.count() + 999) / 1000);
    log::warn("api authentication rate-limited",
              {{"client", client}, {"account", key}, {"retry_after_s", seconds}});
    HttpResponse r = json_error(429, "too many failed authentication attempts; retry after " +
                                         std::to_string(seconds) + " s");
    r.headers["Retry-After"] = std::to_string(seconds);
    return r;
  }

  // Verifies on hash_pool and completes on the caller's executor.
  template <class Token>
  auto async_verify(Credentials credentials, Token&& token) {
    return asio::async_initiate<Token, void(Result<std::string>)>(
        [this](auto handler, Credentials c) {
          auto work = asio::make_work_guard(asio::get_associated_executor(handler));
          asio::post(*hash_pool, [this, c = std::move(c), h = std::move(handler),
                                  work = std::move(work)]() mutable {
            auto result = opts.auth.verify_basic ? opts.auth.verify_basic(c) : verify(store, c);
            --hashing;
            auto ex = work.get_executor();
            asio::dispatch(ex, [h = std::move(h), r = std::move(result)]() mutable {
              std::move(h)(std::move(r));
            });
          });
        },
        token, std::move(credentials));
  }

  // Joins the verification in flight for cache key `key`, completing with its verdict; when
  // none is in flight, completes with nullopt and the caller owns a new flight, which it must
  // end with land_flight() whatever happens.
  template <class Token>
  auto async_join_flight(std::string key, Token&& token) {
    return asio::async_initiate<Token, void(std::optional<Result<std::string>>)>(
        [this](auto handler, std::string k) {
          using Handler = decltype(handler);
          auto ex = asio::get_associated_executor(handler);
          std::unique_lock lock(flights_mu);
          auto it = flights.find(k);
          if (it == flights.end()) {
            flights.emplace(std::move(k), std::make_shared<Flight>());
            lock.unlock();
            asio::post(ex, [h = std::move(handler)]() mutable {
              std::move(h)(std::optional<Result<std::string>>{});
            });
            return;
          }
          struct Waiter {
            Handler handler;
            asio::executor_work_guard<decltype(ex)> work;
          };
          // Logged as it joins (not when the verdict arrives), so tests can wait for it.
          log::debug("api authentication joined a verification in flight");
          auto w = std::make_shared<Waiter>(Waiter{std::move(handler), asio::make_work_guard(ex)});
          it->second->waiters.push_back([w](Result<std::string> verdict) {
            asio::dispatch(w->work.get_executor(), [w, v = std::move(verdict)]() mutable {
              std::move(w->handler)(std::optional<Result<std::string>>(std::move(v)));
            });
          });
        },
        token, std::move(key));
  }

  // Ends the flight of `key`: every waiter gets `verdict`.
  void land_flight(const std::string& key, const Result<std::string>& verdict) {
    std::shared_ptr<Flight> flight;
    {
      std::lock_guard lock(flights_mu);
      auto it = flights.find(key);
      if (it == flights.end()) return;
      flight = std::move(it->second);
      flights.erase(it);
    }
    for (auto& w : flight->waiters) w(verdict);
  }
};

Status ApiServer::Impl::load_tls() {
  try {
    tls.emplace(ssl::context::tls_server);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::single_dh_use);
    tls->use_certificate_chain_file(opts.tls_cert_file);
    tls->use_private_key_file(opts.tls_key_file, ssl::context::pem);
    // TLS 1.2 at least, and in 1.2 only forward-secret AEAD suites (ECDHE with GCM or
    // ChaCha20-Poly1305): no CBC, no SHA-1 MAC, no static RSA key exchange. TLS 1.3's suites are
    // all AEAD with ephemeral keys. The server's order wins so a client cannot pick a weaker one.
    SSL_CTX* ctx = tls->native_handle();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, kApiTls12Ciphers) != 1) {
      ERR_clear_error();
      tls.reset();
      return make_error(ErrorCode::kInternal, "cannot restrict the API's TLS versions or ciphers");
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  } catch (const boost::system::system_error& e) {
    tls.reset();
    return make_error(ErrorCode::kInvalidArgument,
                      "cannot load the TLS certificate or key: " + std::string(e.what()));
  }
  return Status::Ok();
}

asio::awaitable<void> ApiServer::Impl::accept_loop() {
  // Under load each resumption of this loop waits behind every handler already queued on the
  // I/O threads, so taking one connection per resumption made the N-th of a burst of new
  // connections wait N queue passes (20-30 s with 200 busy clients:
  // tests/load/api_clients_itest.cpp). After each completed accept, every connection already
  // waiting in the backlog is taken at once with non-blocking accepts.
  {
    beast::error_code ignored;
    acceptor.non_blocking(true, ignored);
  }
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(ioc), kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping) co_return;
      // Transient (e.g. EMFILE): keep serving the connections we have, try again.
      log::warn("api accept failed", {{"error", ec.message()}});
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    admit(std::move(socket));
    // Bounded, so a flood of connection attempts cannot hold this thread for long.
    for (std::size_t taken = 0; taken < opts.max_connections; ++taken) {
      tcp::socket next(asio::make_strand(ioc));
      beast::error_code aec;
      acceptor.accept(next, aec);
      if (aec) break;  // would_block: the backlog is empty (other errors: async_accept reports)
      admit(std::move(next));
    }
  }
}

void ApiServer::Impl::admit(tcp::socket socket) {
  if (stopping) {
    beast::error_code ignored;
    socket.close(ignored);
    return;
  }
  if (connections.load() >= opts.max_connections) {
    // Over the limit: closing at once is cheaper than queueing, and clients retry.
    log::warn("api connection limit reached", {{"max_connections", opts.max_connections}});
    beast::error_code ignored;
    socket.close(ignored);
    return;
  }
  ++connections;
  auto exec = socket.get_executor();
  asio::co_spawn(exec, session(std::move(socket)), [](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::error("api session failed", {{"error", ex.what()}});
      }
    }
  });
}

asio::awaitable<void> ApiServer::Impl::session(tcp::socket socket) {
  auto state = std::make_shared<ConnState>();
  state->strand = socket.get_executor();
  {
    beast::error_code ec;
    const auto peer = socket.remote_endpoint(ec);
    state->client = ec ? "unknown" : peer.address().to_string();
  }
  std::uint64_t id = 0;
  {
    std::lock_guard lock(mu);
    id = next_conn++;
    conns.emplace(id, state);
  }
  if (tls) {
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *tls);
    state->cancel = [&stream] { beast::get_lowest_layer(stream).close(); };
    beast::get_lowest_layer(stream).expires_after(opts.read_timeout);
    auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, kNoThrow);
    if (!ec) {
      co_await serve(stream, *state);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
      co_await stream.async_shutdown(kNoThrow);
    } else {
      log::debug("api tls handshake failed", {{"error", ec.message()}});
    }
    state->cancel = nullptr;
  } else {
    beast::tcp_stream stream(std::move(socket));
    state->cancel = [&stream] { stream.close(); };
    co_await serve(stream, *state);
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    state->cancel = nullptr;
  }
  {
    std::lock_guard lock(mu);
    conns.erase(id);
  }
  --connections;
}

template <class Stream>
asio::awaitable<bool> ApiServer::Impl::write(Stream& stream,
                                             http::response<http::string_body>& res) {
  beast::get_lowest_layer(stream).expires_after(opts.write_timeout);
  auto [ec, n] = co_await http::async_write(stream, res, kNoThrow);
  (void)n;
  co_return !ec;
}

namespace {
http::response<http::string_body> to_beast(const HttpResponse& r, unsigned version,
                                           bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "berth");
  for (const auto& [k, v] : r.headers) res.set(k, v);
  res.body() = r.body;
  res.keep_alive(keep_alive);
  // A 304 has no body; its Content-Length would have to be the 200's (RFC 9110 8.6), so none.
  if (r.status != 304) res.prepare_payload();
  return res;
}
}  // namespace

// Answers a request the server will not read further, then closes gracefully: the client may
// still be sending, and closing with unread data would reset the connection and destroy the
// answer before the client reads it. So the rest is read and discarded, within limits.
template <class Stream>
asio::awaitable<void> ApiServer::Impl::refuse(Stream& stream, const HttpResponse& r,
                                              unsigned version) {
  // Refused before a route could be read: counted under a route of its own, so a flood of
  // malformed or oversized requests shows in the request metrics.
  requests->with({"unparsed", std::to_string(r.status)}).inc();
  auto res = to_beast(r, version, false);
  if (!co_await write(stream, res)) co_return;
  beast::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ignored);
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  std::vector<char> sink(64 * 1024);
  std::size_t drained = 0;
  while (drained < 16 * opts.max_body_bytes) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), kNoThrow);
    if (ec) break;
    drained += n;
  }
}

asio::awaitable<AuthVerdict> ApiServer::Impl::authorize(const std::string& path,
                                                        const std::string& authorization,
                                                        const std::string& client) {
  // No header: the handler answers 401 "authentication is required" (not an attempt). A
  // health-only server has no path that needs an account: the handler answers 404 unasked.
  if (opts.health_only || !needs_account(path) || authorization.empty()) co_return AuthVerdict{};
  auto credentials = parse_authorization(authorization);
  if (!credentials) {
    log::warn("api authentication failed",
              {{"client", client}, {"reason", credentials.error().message}});
    co_return AuthVerdict{unauthorized(credentials.error().message), {}};
  }
  if (credentials->scheme == Credentials::Scheme::kBearer) {
    // SHA-256 and one indexed lookup: cheap enough for the I/O thread. A 256-bit secret cannot
    // be guessed, but a client sending wrong tokens is slowed as one sending wrong passwords
    // is, with budgets of their own so that neither scheme's failures lock out the other: per
    // address ("bearer <address>") and per token id, the public part of a token ("token:<id>";
    // an account that names itself so only shares that budget). Checked before verifying, so a
    // limited client learns nothing from further guesses.
    const std::string address = "bearer " + client;
    const std::string token = "token:" + bearer_token_id(credentials->secret.reveal());
    if (auto limited = rate_limited(address, token)) co_return AuthVerdict{std::move(*limited), {}};
    auto account = verify(store, *credentials);
    if (account) co_return AuthVerdict{std::nullopt, std::move(*account)};
    if (account.error().code != ErrorCode::kUnauthenticated) {
      log::error("api authentication unavailable", {{"error", account.error().message}});
      co_return AuthVerdict{unavailable("the service is temporarily unavailable; retry shortly"),
                            {}};
    }
    by_address.record_failure(address);
    by_account.record_failure(token);
    log::warn("api authentication failed",
              {{"client", client}, {"scheme", "bearer"}, {"reason", account.error().message}});
    co_return AuthVerdict{unauthorized(account.error().message), {}};
  }

  if (auto id = auth_cache.lookup(authorization)) co_return AuthVerdict{std::nullopt, *id};
  const std::string account = account_key(credentials->account_name);
  if (auto limited = rate_limited(client, account)) co_return AuthVerdict{std::move(*limited), {}};
  const std::string flight_key = auth_cache.key_for(authorization);
  auto joined = co_await async_join_flight(flight_key, asio::use_awaitable);
  Result<std::string> verified = make_error(ErrorCode::kInternal, "not verified");
  if (joined) {
    // Another request with this header was being verified: its verdict is this one's.
    verified = std::move(*joined);
  } else {
    // This request owns the flight; every path below lands it, so no waiter is left behind.
    struct Lander {
      Impl& impl;
      const std::string& key;
      std::optional<Result<std::string>> verdict;
      ~Lander() {
        impl.land_flight(key,
                         verdict ? *verdict : make_error(ErrorCode::kUnavailable, "not verified"));
      }
    } lander{*this, flight_key, std::nullopt};
    const std::size_t capacity =
        static_cast<std::size_t>(std::max(1, opts.auth.hash_threads)) + opts.auth.hash_queue;
    if (hashing.fetch_add(1) >= capacity) {
      --hashing;
      lander.verdict = make_error(ErrorCode::kResourceExhausted, "the hashing queue is full");
      log::warn("api authentication queue full", {{"client", client}, {"account", account}});
      co_return AuthVerdict{unavailable("too many authentications in progress; retry shortly"), {}};
    }
    verified = co_await async_verify(std::move(*credentials), asio::use_awaitable);
    // Cached before the waiters wake, so requests arriving from now on hit the cache.
    if (verified) auth_cache.insert(authorization, *verified, account);
    lander.verdict = verified;
  }
  if (verified) co_return AuthVerdict{std::nullopt, std::move(*verified)};
  if (verified.error().code == ErrorCode::kResourceExhausted) {
    co_return AuthVerdict{unavailable("too many authentications in progress; retry shortly"), {}};
  }
  if (verified.error().code != ErrorCode::kUnauthenticated) {
    log::error("api authentication unavailable", {{"error", verified.error().message}});
    co_return AuthVerdict{unavailable("the service is temporarily unavailable; retry shortly"), {}};
  }
  by_address.record_failure(client);
  by_account.record_failure(account);
  log::warn("api authentication failed", {{"client", client}, {"account", account}});
  co_return AuthVerdict{unauthorized(verified.error().message), {}};
}

HttpResponse ApiServer::Impl::dispatch(http::request<http::string_body>& req,
                                       const std::string& account_id) {
  HttpRequest in;
  in.method = std::string(req.method_string());
  in.target = std::string(req.target());
  for (const auto& f : req) {
    in.headers[to_lower_ascii(f.name_string())] = std::string(f.value());
  }
  in.body = std::move(req.body());
  // The handler asks api::authenticate() for the account; the scope answers it with the
  // verdict reached above instead of a second verification.
  const std::string authorization = in.header("authorization");
  const VerifiedScope verified(authorization, account_id);
  try {
    return handler.handle(in);
  } catch (const std::exception& e) {
    // A bug, not bad input: the handler turns every expected failure into a value.
    log::error("api handler threw", {{"error", e.what()}, {"path", path_only(in.target)}});
    return json_error(500, "internal error");
  }
}

template <class Stream>
asio::awaitable<void> ApiServer::Impl::serve(Stream& stream, ConnState& state) {
  beast::flat_buffer buffer;
  for (;;) {
    state.busy = false;
    if (stopping) co_return;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
    parser.body_limit(opts.max_body_bytes);
    // One deadline for the whole request: a client that trickles its header or body is cut
    // off when it passes, as is an idle keep-alive connection.
    beast::get_lowest_layer(stream).expires_after(opts.read_timeout);
    auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kNoThrow);
    (void)hn;
    if (hec) {
      if (hec == http::error::header_limit) {
        co_await refuse(stream, json_error(431, "request header fields are too large"), 11);
      } else if (hec == http::error::body_limit) {
        // The parser compares Content-Length with body_limit as soon as the header is in.
        co_await refuse(stream, json_error(413, "request body is larger than 1 MiB"), 11);
      } else if (is_parse_error(hec)) {
        co_await refuse(stream, json_error(400, "malformed HTTP request"), 11);
      } else if (hec == beast::error::timeout) {
        log::debug("api read deadline passed", {});
      }
      co_return;
    }
    state.busy = true;
    const auto started = Clock::now();
    auto& head = parser.get();
    const unsigned version = head.version();
    if (parser.content_length() && *parser.content_length() > opts.max_body_bytes) {
      // Refuse before reading: the body is never buffered, and the connection cannot be
      // reused because the body is still in flight.
      co_await refuse(stream, json_error(413, "request body is larger than 1 MiB"), version);
      co_return;
    }
    if (beast::iequals(head[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, version};
      beast::get_lowest_layer(stream).expires_after(opts.write_timeout);
      auto [cec, cn] = co_await http::async_write(stream, cont, kNoThrow);
      (void)cn;
      if (cec) co_return;
      beast::get_lowest_layer(stream).expires_after(opts.read_timeout);
    }
    auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
    (void)bn;
    if (bec) {
      if (bec == http::error::body_limit) {
        co_await refuse(stream, json_error(413, "request body is larger than 1 MiB"), version);
      } else if (is_parse_error(bec)) {
        co_await refuse(stream, json_error(400, "malformed HTTP request"), version);
      }
      co_return;
    }
    auto req = parser.release();
    const bool keep_alive = req.keep_alive();
    const std::string method(req.method_string());
    const std::string path = path_only(req.target());
    // The last Authorization field, as dispatch() hands the handler the last of a repeated
    // header: the value verified here is the value the handler asks about.
    std::string authorization;
    for (const auto& field : req) {
      if (field.name() == http::field::authorization) authorization = std::string(field.value());
    }
    AuthVerdict verdict = co_await authorize(path, authorization, state.client);
    HttpResponse out =
        verdict.refusal ? std::move(*verdict.refusal) : dispatch(req, verdict.account_id);
    const auto elapsed = Clock::now() - started;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
    const std::string route = route_template(path);
    requests->with({route, std::to_string(out.status)}).inc();
    request_seconds->with({route}).observe(std::chrono::duration<double>(elapsed).count());
    // The fields are built only when the line is written: at warn and above they were a
    // JSON object per request for nothing.
    if (log::level() <= log::Level::kInfo) {
      log::info("api request",
                {{"method", method}, {"path", path}, {"status", out.status}, {"duration_ms", ms}});
    }
    const bool again = keep_alive && !stopping;
    auto res = to_beast(out, version, again);
    if (!co_await write(stream, res) || !again) co_return;
  }
}

ApiServer::ApiServer(ApiOptions options, core::StateStore& store,
                     std::function<core::UnixMillis()> clock,
                     std::function<void(const std::string& service_id)> on_change)
    : impl_(std::make_unique<Impl>(std::move(options), store, std::move(clock),
                                   std::move(on_change))) {}

ApiServer::~ApiServer() { stop(); }

Status ApiServer::start() {
  auto& d = *impl_;
  if (d.started)
    return make_error(ErrorCode::kFailedPrecondition, "the API server is already started");
  beast::error_code ec;
  const auto address = asio::ip::make_address(d.opts.listen_host, ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the listen host must be an IP address: " + d.opts.listen_host, "listen");
  }
  const bool use_tls = !d.opts.tls_cert_file.empty() || !d.opts.tls_key_file.empty();
  if (use_tls) {
    if (d.opts.tls_cert_file.empty() || d.opts.tls_key_file.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "HTTPS needs both a certificate and a key file", "tls");
    }
    if (auto s = d.load_tls(); !s) return s;
  } else if (!is_loopback(address) && !d.opts.allow_insecure_http) {
    return make_error(ErrorCode::kInvalidArgument,
                      "plain HTTP is only served on a loopback address; give a TLS certificate "
                      "and key or pass --insecure-http",
                      "listen");
  }
  if (!d.opts.new_id) {
    return make_error(ErrorCode::kInvalidArgument, "the API server needs an id generator");
  }
  const tcp::endpoint endpoint(address, d.opts.listen_port);
  d.acceptor.open(endpoint.protocol(), ec);
  if (!ec) d.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) d.acceptor.bind(endpoint, ec);
  if (!ec) d.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    d.acceptor.close(ignored);
    const auto code =
        ec == asio::error::address_in_use ? ErrorCode::kUnavailable : ErrorCode::kInvalidArgument;
    return make_error(code,
                      "cannot listen on " + d.opts.listen_host + ":" +
                          std::to_string(d.opts.listen_port) + ": " + ec.message(),
                      "listen");
  }
  d.bound = d.acceptor.local_endpoint(ec);
  d.started = true;
  d.hash_pool.emplace(static_cast<std::size_t>(std::max(1, d.opts.auth.hash_threads)));
  asio::co_spawn(d.acceptor.get_executor(), d.accept_loop(), asio::detached);
  const int n = std::max(1, d.opts.threads);
  for (int i = 0; i < n; ++i) d.threads.emplace_back([&d] { d.ioc.run(); });
  log::info("api listening", {{"address", bound_address()}, {"tls", use_tls}});
  return Status::Ok();
}

void ApiServer::account_changed(const std::string& account_id) {
  impl_->auth_cache.drop_account(account_id);
}

std::uint16_t ApiServer::port() const { return impl_->bound.port(); }

std::string ApiServer::bound_address() const {
  const auto& ep = impl_->bound;
  const auto a = ep.address();
  const std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return host + ":" + std::to_string(ep.port());
}

void ApiServer::stop() {
  auto& d = *impl_;
  if (!d.started || d.stopping.exchange(true)) return;
  asio::post(d.acceptor.get_executor(), [&d] {
    beast::error_code ignored;
    d.acceptor.close(ignored);
  });
  {
    // Idle connections (waiting for a request) close now; busy ones finish their request,
    // see `stopping` and close after their response.
    std::lock_guard lock(d.mu);
    for (auto& [id, state] : d.conns) {
      (void)id;
      asio::post(state->strand, [st = state] {
        if (!st->busy && st->cancel) st->cancel();
      });
    }
  }
  const auto deadline = Clock::now() + d.opts.shutdown_grace;
  while (d.connections.load() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  d.ioc.stop();
  for (auto& t : d.threads) {
    if (t.joinable()) t.join();
  }
  d.threads.clear();
  // Verifications in flight finish (bounded by hash_queue); their completions land in the
  // stopped io_context and are destroyed with it.
  if (d.hash_pool) d.hash_pool->join();
  log::info("api stopped", {{"open_connections", d.connections.load()}});
}

}  // namespace berth::api
