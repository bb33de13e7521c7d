// The agent side of the agent link (see client.h). One coroutine on the I/O thread dials,
// runs one connection until it closes, waits out the backoff and dials again, until stop().
#include "agentlink/client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <mutex>
#include <optional>
#include <random>

#include "agentlink/callback_queue.h"
#include "agentlink/connection.h"
#include "agentlink/io_thread.h"
#include "agentlink/tls.h"
#include "common/log.h"

namespace berth::agentlink {

using namespace detail;

std::chrono::milliseconds reconnect_delay(const Backoff& backoff, int attempt, double random01) {
  double delay = static_cast<double>(backoff.initial.count());
  const double cap = static_cast<double>(backoff.cap.count());
  for (int i = 0; i < attempt && delay < cap; ++i) delay *= 2;
  if (delay > cap) delay = cap;
  const double jitter = std::clamp(backoff.jitter, 0.0, 1.0);
  const double r = std::clamp(random01, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(delay * (1.0 - jitter * r)));
}

Result<Endpoint> parse_url(std::string_view url) {
  constexpr std::string_view kScheme = "wss://";
  if (url.substr(0, kScheme.size()) != kScheme)
    return make_error(ErrorCode::kInvalidArgument, "agent link URL must start with wss://", "url");
  std::string_view rest = url.substr(kScheme.size());
  Endpoint ep;
  const auto slash = rest.find('/');
  if (slash != std::string_view::npos) {
    ep.target = std::string(rest.substr(slash));
    rest = rest.substr(0, slash);
  }
  auto hp = split_host_port(rest);
  if (!hp)
    return make_error(ErrorCode::kInvalidArgument, "agent link URL: " + hp.error().message, "url");
  if (hp->port == 0)
    return make_error(ErrorCode::kInvalidArgument, "agent link URL needs a port", "url");
  ep.host = hp->host;
  ep.port = hp->port;
  return ep;
}

struct Client::Impl : std::enable_shared_from_this<Client::Impl> {
  explicit Impl(ClientOptions o) : options(std::move(o)), rng(std::random_device{}()) {}

  ClientOptions options;
  Endpoint endpoint;
  std::shared_ptr<ssl::context> ctx;
  IoThread io;
  CallbackQueue callbacks;
  std::mt19937 rng;
  bool started = false;
  std::atomic<bool> stopping{false};
  std::shared_ptr<Connection> current;  // I/O thread only
  std::optional<net::steady_timer> retry_timer;

  mutable std::mutex mu;
  std::shared_ptr<Connection> accepted;  // the connection send() uses

  Timeouts timeouts() const {
    return Timeouts{options.connect_timeout, options.idle_timeout, options.heartbeat_interval,
                    options.write_timeout};
  }

  std::string controller() const {
    return endpoint.host.find(':') != std::string::npos
               ? "[" + endpoint.host + "]:" + std::to_string(endpoint.port)
               : endpoint.host + ":" + std::to_string(endpoint.port);
  }

  net::awaitable<void> run() {
    auto self = shared_from_this();
    std::uniform_real_distribution<double> dist(0.0, 1.0);
    int attempt = 0;
    while (!stopping) {
      if (co_await connect_and_serve()) attempt = 0;
      if (stopping) break;
      retry_timer->expires_after(reconnect_delay(options.backoff, attempt, dist(rng)));
      if (attempt < 64) ++attempt;
      error_code ec;
      co_await retry_timer->async_wait(net::redirect_error(net::use_awaitable, ec));
    }
  }

  // One connection: resolve, TCP, TLS, upgrade, Hello, then until it closes. True when the
  // controller accepted the Hello (the backoff starts over).
  net::awaitable<bool> connect_and_serve() {
    auto c = std::make_shared<Connection>(io.context().get_executor(), ctx, timeouts());
    c->peer = controller();
    current = c;
    SSL* ssl = c->native_ssl();
    error_code ec;
    net::ip::make_address(endpoint.host, ec);
    if (!ec) {
      // An IP literal must match an IP SAN of the controller certificate.
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), endpoint.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, endpoint.host.c_str());
      SSL_set1_host(ssl, endpoint.host.c_str());
    }

    tcp::resolver resolver(c->executor());
    tcp::resolver::results_type results;
    {
      Deadline deadline(c->executor(), options.connect_timeout, [&resolver] { resolver.cancel(); });
      results = co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port),
                                                net::redirect_error(net::use_awaitable, ec));
    }
    if (ec || stopping) co_return failed(*c, "resolve", ec);
    {
      auto deadline = c->step_deadline("connect");
      co_await beast::get_lowest_layer(c->ws).async_connect(
          results, net::redirect_error(net::use_awaitable, ec));
    }
    if (ec || c->finished()) co_return failed(*c, "connect", ec);
    {
      auto deadline = c->step_deadline("TLS handshake");
      co_await c->ws.next_layer().async_handshake(ssl::stream_base::client,
                                                  net::redirect_error(net::use_awaitable, ec));
    }
    if (ec || c->finished()) co_return failed(*c, "TLS handshake", ec);
    c->configure_websocket();
    {
      auto deadline = c->step_deadline("WebSocket upgrade");
      co_await c->ws.async_handshake(controller(), endpoint.target,
                                     net::redirect_error(net::use_awaitable, ec));
    }
    if (ec || c->finished()) co_return failed(*c, "WebSocket upgrade", ec);

    // The controller answers an accepted Hello with a heartbeat; until then the setup deadline
    // runs.
    c->arm_setup_deadline("hello");
    auto closed =
        std::make_shared<net::steady_timer>(c->executor(), net::steady_timer::time_point::max());
    std::weak_ptr<Impl> weak = shared_from_this();
    std::weak_ptr<Connection> weak_conn = c;
    c->start(
        [weak, weak_conn](Message&& m) {
          auto s = weak.lock();
          auto conn = weak_conn.lock();
          if (s && conn) s->on_message(*conn, std::move(m));
        },
        [weak, weak_conn, closed] {
          if (auto s = weak.lock()) s->on_closed();
          closed->cancel();
        });
    c->enqueue(Frame(encode(options.hello ? options.hello() : Hello{})));
    co_await closed->async_wait(net::redirect_error(net::use_awaitable, ec));
    report_close(*c);
    co_return c->accepted;
  }

  bool failed(Connection& c, const char* step, error_code ec) {
    if (!stopping)
      log::info("agent link connect failed",
                {{"controller", c.peer},
                 {"step", step},
                 {"error", ec ? ec.message() : std::string("deadline exceeded")}});
    c.abort();
    return false;
  }

  void report_close(const Connection& c) {
    if (stopping) return;
    if (!c.accepted) {
      if (!c.peer_close_reason.empty())
        log::warn("the controller refused this agent",
                  {{"controller", c.peer}, {"reason", c.peer_close_reason}});
      return;
    }
    if (!c.peer_close_reason.empty())
      log::warn("agent link closed by the controller",
                {{"controller", c.peer}, {"reason", c.peer_close_reason}});
    else
      log::info("agent link disconnected", {{"controller", c.peer}});
  }

  void on_message(Connection& c, Message&& m) {
    if (!controller_may_send(m)) {
      log::warn("agent link message type not allowed from the controller",
                {{"controller", c.peer}});
      c.refuse(websocket::close_code::policy_error, "message type not allowed");
      return;
    }
    if (!c.accepted) {
      c.accepted = true;
      c.setup_done();
      c.start_heartbeats();
      {
        std::lock_guard lock(mu);
        accepted = c.shared_from_this();
      }
      log::info("agent link connected", {{"controller", c.peer}});
    }
    if (std::holds_alternative<Heartbeat>(m)) return;
    if (options.on_message)
      callbacks.post(
          [self = shared_from_this(), msg = std::move(m)] { self->options.on_message(msg); });
  }

  void on_closed() {
    std::lock_guard lock(mu);
    accepted.reset();
  }
};

Client::Client(ClientOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {}

Client::~Client() { stop(); }

Status Client::start() {
  Impl& c = *impl_;
  if (c.started)
    return make_error(ErrorCode::kFailedPrecondition, "agent link client already started");
  auto ep = parse_url(c.options.url);
  if (!ep) return ep.error();
  c.endpoint = std::move(*ep);
  auto ctx = make_tls_context(false, c.options.ca_cert_pem, c.options.cert_pem, c.options.key_pem);
  if (!ctx) return ctx.error();
  c.ctx = std::move(ctx).value();
  c.started = true;
  c.retry_timer.emplace(c.io.context());
  net::co_spawn(c.io.context(), c.run(), net::detached);
  c.io.start();
  return Status::Ok();
}

void Client::stop() {
  Impl& c = *impl_;
  if (c.stopping.exchange(true)) return;
  c.io.shut_down(
      [&c] {
        if (c.retry_timer) c.retry_timer->cancel();
        if (c.current) c.current->abort();
      },
      [&c] {
        {
          std::lock_guard lock(c.mu);
          c.accepted.reset();
        }
        c.current.reset();
        c.retry_timer.reset();
      });
  c.callbacks.stop();
}

Status Client::send(const Message& message) {
  // The client sends the hello itself, on every (re)connect.
  if (!agent_may_send(message) || std::holds_alternative<Hello>(message))
    return make_error(ErrorCode::kInvalidArgument, "an agent cannot send this message type");
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(impl_->mu);
    conn = impl_->accepted;
  }
  if (!conn || impl_->stopping)
    return make_error(ErrorCode::kUnavailable, "not connected to the controller");
  auto frame = encode_frame(message);
  if (!frame) return frame.error();
  net::post(conn->executor(),
            [conn, f = std::make_shared<Frame>(std::move(frame).value())]() mutable {
              conn->enqueue(std::move(*f));
            });
  return Status::Ok();
}

bool Client::connected() const {
  std::lock_guard lock(impl_->mu);
  return impl_->accepted != nullptr;
}

}  // namespace berth::agentlink
