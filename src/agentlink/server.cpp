// The controller side of the agent link (see server.h). One I/O thread runs three kinds of
// coroutine: the accept loop, one session per accepted socket (TLS, upgrade, then the
// connection's own read/write loops) and the maintenance loop (certificate renewal and
// refusal re-checks). Everything they touch, except `agents`, is I/O-thread only.
#include "agentlink/server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>
#include <mutex>
#include <optional>

#include "agentlink/callback_queue.h"
#include "agentlink/connection.h"
#include "agentlink/io_thread.h"
#include "agentlink/tls.h"
#include "common/log.h"

namespace berth::agentlink {

using namespace detail;

bool certificate_due_for_renewal(std::int64_t not_before, std::int64_t not_after,
                                 std::int64_t now) {
  const std::int64_t lifetime = not_after - not_before;
  if (lifetime <= 0) return true;
  return now >= not_after - lifetime / 3;
}

namespace {

std::int64_t system_unix_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}

  ServerOptions options;
  IoThread io;
  CallbackQueue callbacks;
  std::atomic<std::uint16_t> bound_port{0};
  bool started = false;
  std::atomic<bool> stopping{false};

  // I/O thread only.
  std::optional<tcp::acceptor> acceptor;
  std::shared_ptr<ssl::context> ctx;  // swapped on renewal; sessions keep theirs
  std::int64_t cert_not_before = 0;
  std::int64_t cert_not_after = 0;
  std::map<Connection*, std::weak_ptr<Connection>> live;  // every connection, for stop()

  mutable std::mutex mu;  // guards agents
  std::map<std::string, std::shared_ptr<Connection>> agents;

  Timeouts timeouts() const {
    return Timeouts{options.handshake_timeout, options.idle_timeout, options.heartbeat_interval,
                    options.write_timeout};
  }

  std::string refusal(const AgentIdentity& id) const {
    return options.refusal_reason ? options.refusal_reason(id) : std::string();
  }

  Status use_certificate(const std::string& cert_pem, const Secret& key_pem) {
    auto info = crypto::inspect_certificate(cert_pem);
    if (!info) return info.error();
    auto made = make_tls_context(true, options.ca_cert_pem, cert_pem, key_pem);
    if (!made) return made.error();
    ctx = std::move(made).value();
    cert_not_before = info->not_before_unix;
    cert_not_after = info->not_after_unix;
    return Status::Ok();
  }

  net::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    net::steady_timer backoff(io.context());
    for (;;) {
      error_code ec;
      tcp::socket socket = co_await acceptor->async_accept(
          net::make_strand(io.context()), net::redirect_error(net::use_awaitable, ec));
      if (ec == net::error::operation_aborted || stopping) co_return;
      if (ec) {
        // Usually descriptor exhaustion: back off instead of spinning.
        log::warn("agent link accept failed", {{"error", ec.message()}});
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(net::redirect_error(net::use_awaitable, ec));
        continue;
      }
      auto peer = endpoint_text(socket);
      auto conn = std::make_shared<Connection>(std::move(socket), ctx, timeouts());
      conn->peer = std::move(peer);
      live[conn.get()] = conn;
      net::co_spawn(conn->executor(), session(conn), net::detached);
    }
  }

  // TLS handshake -> identity -> refusal check -> WebSocket upgrade -> read loop. The Hello
  // must then arrive within the handshake timeout (see on_message).
  net::awaitable<void> session(std::shared_ptr<Connection> c) {
    auto self = shared_from_this();
    error_code ec;
    {
      auto deadline = c->step_deadline("TLS handshake");
      co_await c->ws.next_layer().async_handshake(ssl::stream_base::server,
                                                  net::redirect_error(net::use_awaitable, ec));
    }
    if (ec || c->finished()) {
      // The certificate check's own reason (expired, unknown CA, ...) is what an operator
      // needs; the handshake error alone only says "verify failed".
      const long verify = SSL_get_verify_result(c->native_ssl());
      if (!stopping && !c->finished()) {
        nlohmann::json fields = {{"peer", c->peer}, {"error", ec.message()}};
        if (verify != X509_V_OK) fields["certificate"] = X509_verify_cert_error_string(verify);
        log::warn("agent link TLS handshake failed", fields);
      }
      drop(*c);
      co_return;
    }
    auto id = peer_identity(c->native_ssl());
    if (!id) {
      log::warn("agent link peer has no usable certificate", {{"peer", c->peer}});
      drop(*c);
      co_return;
    }
    c->identity = std::move(*id);
    c->configure_websocket();
    {
      auto deadline = c->step_deadline("WebSocket upgrade");
      co_await c->ws.async_accept(net::redirect_error(net::use_awaitable, ec));
    }
    if (ec || c->finished()) {
      if (!c->finished())
        log::warn("agent link upgrade failed", {{"peer", c->peer}, {"error", ec.message()}});
      drop(*c);
      co_return;
    }
    std::weak_ptr<Impl> weak = self;
    std::weak_ptr<Connection> weak_conn = c;
    c->start(
        [weak, weak_conn](Message&& m) {
          auto s = weak.lock();
          auto conn = weak_conn.lock();
          if (s && conn) s->on_message(*conn, std::move(m));
        },
        [weak, weak_conn] {
          auto s = weak.lock();
          auto conn = weak_conn.lock();
          if (s && conn) s->on_closed(*conn);
        });
    // Refused after the upgrade, not at the TLS handshake, so the close frame can tell the
    // agent why.
    if (auto reason = refusal(c->identity); !reason.empty()) {
      log::warn("agent refused", {{"agent", c->identity.name},
                                  {"fingerprint", c->identity.fingerprint},
                                  {"peer", c->peer},
                                  {"reason", reason}});
      c->refuse(websocket::close_code::policy_error, reason);
      co_return;
    }
    c->arm_setup_deadline("hello");
  }

  void drop(Connection& c) {
    live.erase(&c);
    c.abort();
  }

  void on_message(Connection& c, Message&& m) {
    if (!agent_may_send(m)) {
      log::warn("agent link message type not allowed from an agent", {{"agent", c.identity.name}});
      c.refuse(websocket::close_code::policy_error, "message type not allowed");
      return;
    }
    const auto* hello = std::get_if<Hello>(&m);
    if (!c.accepted && hello == nullptr) {
      log::warn("agent link first frame is not a hello",
                {{"peer", c.peer}, {"agent", c.identity.name}});
      c.refuse(websocket::close_code::policy_error, "hello expected");
      return;
    }
    // The identity is fixed by the certificate for the whole connection, so every hello (the
    // first and any refresh) must carry the certificate's name.
    if (hello != nullptr && hello->name != c.identity.name) {
      log::warn(
          "agent hello refused: name differs from certificate",
          {{"peer", c.peer}, {"certificate_name", c.identity.name}, {"hello_name", hello->name}});
      c.refuse(websocket::close_code::policy_error, "hello name does not match the certificate");
      return;
    }
    if (!c.accepted) accept(c, *hello);
    if (std::holds_alternative<Heartbeat>(m)) return;
    auto self = shared_from_this();
    if (hello != nullptr) {
      if (options.on_hello)
        callbacks.post([self, id = c.identity, h = std::move(std::get<Hello>(m))] {
          self->options.on_hello(id, h);
        });
      return;
    }
    if (options.on_message)
      callbacks.post([self, name = c.identity.name, msg = std::move(m)] {
        self->options.on_message(name, msg);
      });
  }

  void accept(Connection& c, const Hello& hello) {
    c.accepted = true;
    c.setup_done();
    std::shared_ptr<Connection> previous;
    {
      std::lock_guard lock(mu);
      auto& slot = agents[c.identity.name];
      previous = std::move(slot);
      slot = c.shared_from_this();
    }
    if (previous && previous.get() != &c) {
      log::info("agent connection replaced by a newer one",
                {{"agent", c.identity.name}, {"peer", previous->peer}});
      net::post(previous->executor(), [previous] { previous->abort(); });
    }
    // The first heartbeat tells the agent its hello was accepted.
    c.enqueue(Frame(encode(Heartbeat{now_unix_ms()})));
    c.start_heartbeats();
    log::info("agent connected", {{"agent", c.identity.name},
                                  {"zone", c.identity.zone},
                                  {"fingerprint", c.identity.fingerprint},
                                  {"peer", c.peer},
                                  {"apps", hello.apps.size()}});
  }

  void on_closed(Connection& c) {
    live.erase(&c);
    if (!c.accepted) return;
    bool current = false;
    {
      std::lock_guard lock(mu);
      auto it = agents.find(c.identity.name);
      if (it != agents.end() && it->second.get() == &c) {
        agents.erase(it);
        current = true;
      }
    }
    if (!current || stopping) return;
    log::info("agent disconnected", {{"agent", c.identity.name}, {"peer", c.peer}});
    if (options.on_disconnect)
      callbacks.post([self = shared_from_this(), name = c.identity.name] {
        self->options.on_disconnect(name);
      });
  }

  net::awaitable<void> maintenance_loop() {
    auto self = shared_from_this();
    net::steady_timer timer(io.context());
    for (;;) {
      renew_certificate_if_due();
      refuse_connected_agents();
      timer.expires_after(options.maintenance_interval);
      error_code ec;
      co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      if (ec || stopping) co_return;
    }
  }

  void renew_certificate_if_due() {
    if (!options.renew_certificate) return;
    const std::int64_t now = options.now_unix_s ? options.now_unix_s() : system_unix_s();
    if (!certificate_due_for_renewal(cert_not_before, cert_not_after, now)) return;
    auto renewed = options.renew_certificate();
    Status st = renewed ? use_certificate(renewed->cert_pem, renewed->key_pem) : renewed.error();
    if (!st) {
      log::error("agent link certificate renewal failed; retrying at the next check",
                 {{"error", st.error().message}, {"not_after", cert_not_after}});
      return;
    }
    log::info("agent link certificate renewed",
              {{"not_before", cert_not_before}, {"not_after", cert_not_after}});
  }

  void refuse_connected_agents() {
    if (!options.refusal_reason) return;
    std::vector<std::shared_ptr<Connection>> connected;
    {
      std::lock_guard lock(mu);
      for (const auto& [name, conn] : agents) connected.push_back(conn);
    }
    for (auto& conn : connected) {
      net::post(conn->executor(), [self = shared_from_this(), conn] {
        if (conn->closing()) return;
        auto reason = self->refusal(conn->identity);
        if (reason.empty()) return;
        log::warn("connected agent refused; closing its connection",
                  {{"agent", conn->identity.name},
                   {"fingerprint", conn->identity.fingerprint},
                   {"reason", reason}});
        conn->refuse(websocket::close_code::policy_error, reason);
      });
    }
  }
};

Server::Server(ServerOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {}

Server::~Server() { stop(); }

Status Server::start() {
  Impl& s = *impl_;
  if (s.started)
    return make_error(ErrorCode::kFailedPrecondition, "agent link server already started");
  auto hp = split_host_port(s.options.listen);
  if (!hp) return hp.error();
  if (Status st = s.use_certificate(s.options.server_cert_pem, s.options.server_key_pem); !st)
    return st;

  error_code ec;
  auto address = net::ip::make_address(hp->host, ec);
  tcp::endpoint endpoint;
  if (ec) {
    tcp::resolver resolver(s.io.context());
    auto results = resolver.resolve(hp->host, std::to_string(hp->port), ec);
    if (ec || results.empty())
      return make_error(ErrorCode::kInvalidArgument,
                        "cannot resolve the listen address " + hp->host);
    endpoint = results.begin()->endpoint();
  } else {
    endpoint = tcp::endpoint(address, hp->port);
  }
  s.acceptor.emplace(s.io.context());
  s.acceptor->open(endpoint.protocol(), ec);
  if (!ec) s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(endpoint, ec);
  if (!ec) s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    s.acceptor.reset();
    return make_error(ErrorCode::kUnavailable,
                      "cannot listen on " + s.options.listen + ": " + ec.message());
  }
  s.bound_port = s.acceptor->local_endpoint().port();
  s.started = true;
  net::co_spawn(s.io.context(), s.accept_loop(), net::detached);
  net::co_spawn(s.io.context(), s.maintenance_loop(), net::detached);
  s.io.start();
  log::info("agent link listening",
            {{"address", endpoint.address().to_string()}, {"port", s.bound_port.load()}});
  return Status::Ok();
}

std::uint16_t Server::port() const { return impl_->bound_port; }

Status Server::send(const std::string& agent, const Message& message) {
  if (!controller_may_send(message))
    return make_error(ErrorCode::kInvalidArgument, "the controller cannot send this message type");
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->agents.find(agent);
    if (it != impl_->agents.end()) conn = it->second;
  }
  if (!conn || impl_->stopping)
    return make_error(ErrorCode::kUnavailable, "agent " + agent + " is not connected");
  auto frame = encode_frame(message);
  if (!frame) return frame.error();
  net::post(conn->executor(),
            [conn, f = std::make_shared<Frame>(std::move(frame).value())]() mutable {
              conn->enqueue(std::move(*f));
            });
  return Status::Ok();
}

std::vector<std::string> Server::connected() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> names;
  for (const auto& [name, conn] : impl_->agents) names.push_back(name);
  return names;
}

void Server::stop() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  s.io.shut_down(
      [&s] {
        error_code ignored;
        if (s.acceptor) s.acceptor->close(ignored);
        for (auto& [ptr, weak] : std::map(s.live))
          if (auto conn = weak.lock()) conn->abort();
      },
      [&s] {
        {
          std::lock_guard lock(s.mu);
          s.agents.clear();
        }
        s.live.clear();
        s.acceptor.reset();
      });
  s.callbacks.stop();
  if (s.started) log::info("agent link stopped", {{"port", s.bound_port.load()}});
}

}  // namespace berth::agentlink
