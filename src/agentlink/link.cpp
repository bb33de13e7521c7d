// The TLS WebSocket transport of the agent link: Server (controller side) and Client (agent
// side) share one Connection type, so both live in this file to keep Asio/Beast/OpenSSL out of
// every header.
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "agentlink/client.h"
#include "agentlink/server.h"
#include "common/log.h"

namespace berth::agentlink {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

constexpr std::size_t kMaxFrameBytes = 1024 * 1024;
// How long stop() waits for the closes it posted before it stops the I/O thread anyway.
constexpr auto kStopGrace = std::chrono::seconds(2);

void wipe_string(std::string& s) noexcept {
  if (s.capacity() > 0) secure_wipe(s.data(), s.capacity());
  s.clear();
}

// A frame on its way to the socket. Wiped when it dies or is moved from, because a deploy frame
// carries a registry password.
class Frame {
 public:
  explicit Frame(std::string bytes) : bytes_(std::move(bytes)) {}
  Frame(Frame&& other) noexcept : bytes_(std::move(other.bytes_)) { wipe_string(other.bytes_); }
  Frame& operator=(Frame&& other) noexcept {
    wipe_string(bytes_);
    bytes_ = std::move(other.bytes_);
    wipe_string(other.bytes_);
    return *this;
  }
  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;
  ~Frame() { wipe_string(bytes_); }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// Runs user callbacks on a thread of their own, in order, so a slow callback never stalls the
// I/O thread (and with it heartbeats and every other connection).
class CallbackQueue {
 public:
  CallbackQueue() : thread_([this] { run(); }) {}
  ~CallbackQueue() { stop(); }

  void post(std::function<void()> fn) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }
  // Runs what is queued, then joins. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};

Result<HostPort> split_host_port(std::string_view text) {
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return make_error(ErrorCode::kInvalidArgument, "address must be HOST:PORT or [IPV6]:PORT");
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return make_error(ErrorCode::kInvalidArgument, "address must be HOST:PORT or [IPV6]:PORT");
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (out.host.empty() || port_text.empty() || ec != std::errc() ||
      ptr != port_text.data() + port_text.size() || value > 65535)
    return make_error(ErrorCode::kInvalidArgument, "address must be HOST:PORT with a port 0-65535");
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Common TLS settings: TLS 1.3 only, the given CA as the only trust anchor, our own chain + key.
Status configure_tls(ssl::context& ctx, const std::string& ca_pem, const std::string& cert_pem,
                     const Secret& key_pem) {
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION) != 1)
    return make_error(ErrorCode::kInternal, "cannot restrict TLS to version 1.3");
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
  if (ca_pem.empty() || cert_pem.empty() || key_pem.empty())
    return make_error(ErrorCode::kInvalidArgument,
                      "the agent link needs a CA certificate, a certificate and a private key");
  error_code ec;
  ctx.add_certificate_authority(net::buffer(ca_pem), ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "CA certificate is not valid PEM");
  ctx.use_certificate_chain(net::buffer(cert_pem), ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "certificate is not valid PEM");
  ctx.use_private_key(net::buffer(key_pem.reveal().data(), key_pem.size()), ssl::context::pem, ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "private key is not valid PEM");
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    return make_error(ErrorCode::kInvalidArgument, "private key does not match the certificate");
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
  if (ec) return make_error(ErrorCode::kInternal, "cannot enable peer verification");
  return Status::Ok();
}

std::string name_entry(X509_NAME* name, int nid) {
  const int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return {};
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

// The verified peer certificate's identity; nullopt when the peer presented none.
std::optional<AgentIdentity> peer_identity(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  std::unique_ptr<X509, decltype(&X509_free)> cert(SSL_get1_peer_certificate(ssl), &X509_free);
  if (!cert) return std::nullopt;
  AgentIdentity id;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  id.name = name_entry(subject, NID_commonName);
  id.zone = name_entry(subject, NID_organizationalUnitName);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &md_len) != 1) return std::nullopt;
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned i = 0; i < md_len; ++i) {
    id.fingerprint.push_back(kHex[md[i] >> 4]);
    id.fingerprint.push_back(kHex[md[i] & 0xf]);
  }
  if (id.name.empty()) return std::nullopt;
  return id;
}

struct Timeouts {
  std::chrono::milliseconds handshake;
  std::chrono::milliseconds idle;
  std::chrono::milliseconds heartbeat;
  std::chrono::milliseconds write;
};

// One TLS WebSocket connection after (or during) its handshakes: a read loop that decodes
// frames, a write queue where every write has a deadline, a heartbeat timer, and a deadline
// for the whole setup phase. Everything runs on the connection's strand (the I/O thread).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Ws = websocket::stream<ssl::stream<beast::tcp_stream>>;
  using MessageHandler = std::function<void(Connection&, Message&&)>;
  using ClosedHandler = std::function<void(Connection&)>;

  Connection(tcp::socket socket, ssl::context& ctx, Timeouts t)
      : ws(std::move(socket), ctx),
        timeouts(t),
        setup_timer_(ws.get_executor()),
        write_timer_(ws.get_executor()),
        heartbeat_timer_(ws.get_executor()) {}
  Connection(net::any_io_executor ex, ssl::context& ctx, Timeouts t)
      : ws(ex, ctx), timeouts(t), setup_timer_(ex), write_timer_(ex), heartbeat_timer_(ex) {}

  // Aborts the connection unless finish_setup() runs within the handshake timeout: covers
  // resolve, TCP, TLS, the upgrade and the Hello exchange.
  void arm_setup_deadline() {
    setup_timer_.expires_after(timeouts.handshake);
    setup_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) {
        log::warn("agent link setup timed out", {{"peer", self->peer}});
        self->abort();
      }
    });
  }
  void finish_setup() { setup_timer_.cancel(); }
  // True once the connection was torn down (a step that completes afterwards must not go on:
  // a closed tcp_stream would happily reopen on the next connect).
  bool finished() const { return finished_; }

  // WebSocket-level limits for the established phase: Beast closes a connection that receives
  // nothing for idle_timeout and pings at half of it, so a silent peer is noticed even between
  // heartbeats.
  void configure_websocket() {
    ws.set_option(websocket::stream_base::timeout{timeouts.handshake, timeouts.idle, true});
    ws.read_message_max(kMaxFrameBytes);
    ws.text(true);
  }

  void start_reading(MessageHandler on_message, ClosedHandler on_closed) {
    on_message_ = std::move(on_message);
    on_closed_ = std::move(on_closed);
    read();
  }

  void start_heartbeats() {
    heartbeat_timer_.expires_after(timeouts.heartbeat);
    heartbeat_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->finished_) return;
      self->enqueue(Frame(encode(Heartbeat{now_unix_ms()})));
      self->start_heartbeats();
    });
  }

  void enqueue(Frame frame) {
    if (finished_) return;
    queue_.push_back(std::move(frame));
    if (!writing_) write_next();
  }

  // Polite refusal: a WebSocket close frame with a reason, bounded by the handshake timeout
  // (Beast applies it to the closing handshake), then the socket goes.
  void refuse(websocket::close_code code, const char* reason) {
    if (finished_ || refusing_) return;
    refusing_ = true;
    ws.async_close(websocket::close_reason(code, reason),
                   [self = shared_from_this()](error_code) { self->abort(); });
  }

  // Immediate teardown; pending operations complete with errors and the read loop ends.
  void abort() {
    error_code ignored;
    beast::get_lowest_layer(ws).socket().close(ignored);
    finish();
  }

  Ws ws;
  Timeouts timeouts;
  std::string peer;  // remote endpoint, for logs
  // Set by the owner once the peer is known (server: from the certificate).
  AgentIdentity identity;
  bool accepted = false;

 private:
  void read() {
    ws.async_read(buffer_,
                  [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (ec) {
      if (!finished_ && ec != websocket::error::closed && ec != net::error::operation_aborted)
        log::info("agent link connection lost", {{"peer", peer}, {"error", ec.message()}});
      finish();
      return;
    }
    auto data = buffer_.data();
    char* bytes = static_cast<char*>(data.data());
    const bool text = ws.got_text();
    Result<Message> message = text ? decode(std::string_view(bytes, data.size()))
                                   : Result<Message>(make_error(ErrorCode::kInvalidArgument,
                                                                "binary frames are not allowed"));
    secure_wipe(bytes, data.size());
    buffer_.consume(buffer_.size());
    if (!message) {
      log::warn(
          "agent link frame refused",
          {{"peer", peer}, {"error", message.error().message}, {"field", message.error().field}});
      refuse(websocket::close_code::policy_error, "invalid frame");
      return;
    }
    // After a refusal the read loop only drains until the peer answers the close frame.
    if (on_message_ && !refusing_) on_message_(*this, std::move(message.value()));
    if (!finished_) read();
  }

  void write_next() {
    writing_ = true;
    write_timer_.expires_after(timeouts.write);
    write_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) {
        log::warn("agent link write timed out", {{"peer", self->peer}});
        self->abort();
      }
    });
    ws.async_write(net::buffer(queue_.front().bytes()),
                   [self = shared_from_this()](error_code ec, std::size_t) {
                     self->write_timer_.cancel();
                     self->writing_ = false;
                     if (!self->queue_.empty()) self->queue_.pop_front();
                     if (ec) {
                       self->abort();
                       return;
                     }
                     if (!self->queue_.empty() && !self->finished_) self->write_next();
                   });
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    setup_timer_.cancel();
    heartbeat_timer_.cancel();
    if (!writing_) queue_.clear();  // an in-flight frame stays until its write completes
    error_code ignored;
    beast::get_lowest_layer(ws).socket().close(ignored);
    auto on_closed = std::move(on_closed_);
    on_message_ = nullptr;
    on_closed_ = nullptr;
    if (on_closed) on_closed(*this);
  }

  beast::flat_buffer buffer_;
  net::steady_timer setup_timer_;
  net::steady_timer write_timer_;
  net::steady_timer heartbeat_timer_;
  std::deque<Frame> queue_;
  bool writing_ = false;
  bool finished_ = false;
  bool refusing_ = false;
  MessageHandler on_message_;
  ClosedHandler on_closed_;
};

std::string endpoint_text(const tcp::socket& socket) {
  error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

bool agent_may_send(const Message& m) {
  return std::holds_alternative<Hello>(m) || std::holds_alternative<Ack>(m) ||
         std::holds_alternative<Progress>(m) || std::holds_alternative<TaskResult>(m) ||
         std::holds_alternative<AppStatus>(m) || std::holds_alternative<Heartbeat>(m);
}

bool controller_may_send(const Message& m) {
  return std::holds_alternative<DeployTask>(m) || std::holds_alternative<RestartTask>(m) ||
         std::holds_alternative<RemoveTask>(m) || std::holds_alternative<Heartbeat>(m);
}

// Runs the posted closes, waits for them (bounded), then stops the I/O thread.
void shut_down_io(net::io_context& ioc, std::thread& io_thread, std::function<void()> closes) {
  if (!io_thread.joinable()) return;
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  net::post(ioc, [closes = std::move(closes), done] {
    closes();
    done->set_value();
  });
  future.wait_for(kStopGrace);
  ioc.stop();
  io_thread.join();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Server

struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}

  ServerOptions options;
  ssl::context ctx{ssl::context::tls_server};
  net::io_context ioc{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> accept_retry;
  std::thread io_thread;
  CallbackQueue callbacks;
  std::atomic<std::uint16_t> bound_port{0};
  bool started = false;
  std::atomic<bool> stopping{false};

  mutable std::mutex mu;  // guards agents
  std::map<std::string, std::shared_ptr<Connection>> agents;
  // Every live connection, for stop(); I/O thread only.
  std::map<Connection*, std::weak_ptr<Connection>> live;

  Timeouts timeouts() const {
    return Timeouts{options.handshake_timeout, options.idle_timeout, options.heartbeat_interval,
                    options.write_timeout};
  }

  void accept() {
    acceptor->async_accept(net::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || stopping) return;
      if (ec) {
        // Usually descriptor exhaustion: back off instead of spinning.
        log::warn("agent link accept failed", {{"error", ec.message()}});
        accept_retry->expires_after(std::chrono::milliseconds(100));
        accept_retry->async_wait([this](error_code wec) {
          if (!wec) accept();
        });
        return;
      }
      on_accept(std::move(socket));
      accept();
    });
  }

  void on_accept(tcp::socket socket) {
    auto peer = endpoint_text(socket);
    auto conn = std::make_shared<Connection>(std::move(socket), ctx, timeouts());
    conn->peer = std::move(peer);
    live[conn.get()] = conn;
    conn->arm_setup_deadline();
    conn->ws.next_layer().async_handshake(ssl::stream_base::server, [this, conn](error_code ec) {
      if (ec) {
        // The certificate check's own reason (expired, unknown CA, ...) is what an operator
        // needs; the handshake error alone only says "verify failed".
        const long verify = SSL_get_verify_result(conn->ws.next_layer().native_handle());
        if (!stopping)
          log::warn(
              "agent link TLS handshake failed",
              {{"peer", conn->peer},
               {"error", ec.message()},
               {"certificate", verify == X509_V_OK ? "" : X509_verify_cert_error_string(verify)}});
        forget(*conn);
        conn->abort();
        return;
      }
      auto id = peer_identity(conn->ws.next_layer().native_handle());
      if (!id) {
        log::warn("agent link peer has no usable certificate", {{"peer", conn->peer}});
        forget(*conn);
        conn->abort();
        return;
      }
      conn->identity = std::move(*id);
      conn->configure_websocket();
      conn->ws.async_accept([this, conn](error_code aec) {
        if (aec) {
          log::warn("agent link upgrade failed", {{"peer", conn->peer}, {"error", aec.message()}});
          forget(*conn);
          conn->abort();
          return;
        }
        conn->start_reading([this](Connection& c, Message&& m) { on_message(c, std::move(m)); },
                            [this](Connection& c) { on_closed(c); });
      });
    });
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
    if (!c.accepted) {
      c.accepted = true;
      c.finish_setup();
      register_agent(c);
      // The first heartbeat tells the agent its hello was accepted.
      c.enqueue(Frame(encode(Heartbeat{now_unix_ms()})));
      c.start_heartbeats();
      log::info("agent connected", {{"agent", c.identity.name},
                                    {"zone", c.identity.zone},
                                    {"fingerprint", c.identity.fingerprint},
                                    {"peer", c.peer},
                                    {"apps", hello->apps.size()}});
    }
    if (std::holds_alternative<Heartbeat>(m)) return;
    if (hello != nullptr) {
      if (options.on_hello)
        callbacks.post([this, id = c.identity, h = std::move(std::get<Hello>(m))] {
          options.on_hello(id, h);
        });
      return;
    }
    if (options.on_message)
      callbacks.post(
          [this, name = c.identity.name, msg = std::move(m)] { options.on_message(name, msg); });
  }

  void register_agent(Connection& c) {
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
      previous->abort();
    }
  }

  void forget(Connection& c) { live.erase(&c); }

  void on_closed(Connection& c) {
    forget(c);
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
      callbacks.post([this, name = c.identity.name] { options.on_disconnect(name); });
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
  if (auto st = configure_tls(s.ctx, s.options.ca_cert_pem, s.options.server_cert_pem,
                              s.options.server_key_pem);
      !st)
    return st;
  // Agents must present a certificate made for a client.
  SSL_CTX_set_purpose(s.ctx.native_handle(), X509_PURPOSE_SSL_CLIENT);

  error_code ec;
  auto address = net::ip::make_address(hp->host, ec);
  tcp::endpoint endpoint;
  if (ec) {
    tcp::resolver resolver(s.ioc);
    auto results = resolver.resolve(hp->host, std::to_string(hp->port), ec);
    if (ec || results.empty())
      return make_error(ErrorCode::kInvalidArgument,
                        "cannot resolve the listen address " + hp->host);
    endpoint = results.begin()->endpoint();
  } else {
    endpoint = tcp::endpoint(address, hp->port);
  }
  s.acceptor.emplace(s.ioc);
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
  s.accept_retry.emplace(s.ioc);
  s.started = true;
  s.work.emplace(s.ioc.get_executor());
  s.accept();
  s.io_thread = std::thread([&s] { s.ioc.run(); });
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
  net::post(conn->ws.get_executor(),
            [conn, frame = std::make_shared<Frame>(encode(message))]() mutable {
              conn->enqueue(std::move(*frame));
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
  shut_down_io(s.ioc, s.io_thread, [&s] {
    error_code ignored;
    if (s.acceptor) s.acceptor->close(ignored);
    if (s.accept_retry) s.accept_retry->cancel();
    for (auto& [ptr, weak] : std::map(s.live))
      if (auto conn = weak.lock()) conn->abort();
  });
  s.callbacks.stop();
  {
    std::lock_guard lock(s.mu);
    s.agents.clear();
  }
  s.live.clear();
  if (s.started) log::info("agent link stopped", {{"port", s.bound_port.load()}});
}

// ---------------------------------------------------------------------------------------------
// Client

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

struct Client::Impl {
  explicit Impl(ClientOptions o)
      : options(std::move(o)), retry_timer(ioc), rng(std::random_device{}()) {}

  ClientOptions options;
  Endpoint endpoint;
  ssl::context ctx{ssl::context::tls_client};
  net::io_context ioc{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  net::steady_timer retry_timer;
  std::thread io_thread;
  CallbackQueue callbacks;
  std::mt19937 rng;
  int attempt = 0;
  bool started = false;
  std::atomic<bool> stopping{false};
  std::shared_ptr<Connection> current;      // I/O thread only
  std::shared_ptr<tcp::resolver> resolver;  // I/O thread only

  mutable std::mutex mu;
  std::shared_ptr<Connection> accepted;  // the connection send() uses

  Timeouts timeouts() const {
    return Timeouts{options.connect_timeout, options.idle_timeout, options.heartbeat_interval,
                    options.write_timeout};
  }

  void connect() {
    if (stopping) return;
    auto conn = std::make_shared<Connection>(net::make_strand(ioc), ctx, timeouts());
    conn->peer = endpoint.host + ":" + std::to_string(endpoint.port);
    current = conn;
    SSL* ssl = conn->ws.next_layer().native_handle();
    error_code ec;
    net::ip::make_address(endpoint.host, ec);
    if (!ec) {
      // An IP literal must match an IP SAN of the controller certificate.
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), endpoint.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, endpoint.host.c_str());
      SSL_set1_host(ssl, endpoint.host.c_str());
    }
    conn->arm_setup_deadline();
    resolver = std::make_shared<tcp::resolver>(conn->ws.get_executor());
    resolver->async_resolve(
        endpoint.host, std::to_string(endpoint.port),
        [this, conn, r = resolver](error_code rec, tcp::resolver::results_type results) {
          if (rec || conn->finished()) return failed(conn, "resolve", rec);
          beast::get_lowest_layer(conn->ws).async_connect(
              results, [this, conn](error_code cec, const tcp::endpoint&) {
                if (cec || conn->finished()) return failed(conn, "connect", cec);
                conn->ws.next_layer().async_handshake(
                    ssl::stream_base::client, [this, conn](error_code hec) {
                      if (hec || conn->finished()) return failed(conn, "TLS handshake", hec);
                      conn->configure_websocket();
                      const std::string host =
                          endpoint.host.find(':') != std::string::npos
                              ? "[" + endpoint.host + "]:" + std::to_string(endpoint.port)
                              : endpoint.host + ":" + std::to_string(endpoint.port);
                      conn->ws.async_handshake(host, endpoint.target, [this, conn](error_code wec) {
                        if (wec || conn->finished()) return failed(conn, "WebSocket upgrade", wec);
                        on_open(conn);
                      });
                    });
              });
        });
  }

  void failed(const std::shared_ptr<Connection>& conn, const char* step, error_code ec) {
    if (!stopping)
      log::info("agent link connect failed",
                {{"controller", conn->peer},
                 {"step", step},
                 {"error", ec ? ec.message() : std::string("setup deadline exceeded")}});
    conn->abort();
    schedule_reconnect();
  }

  void on_open(const std::shared_ptr<Connection>& conn) {
    Hello hello = options.hello ? options.hello() : Hello{};
    conn->enqueue(Frame(encode(hello)));
    conn->start_reading([this](Connection& c, Message&& m) { on_message(c, std::move(m)); },
                        [this](Connection& c) { on_closed(c); });
  }

  void on_message(Connection& c, Message&& m) {
    if (!controller_may_send(m)) {
      log::warn("agent link message type not allowed from the controller",
                {{"controller", c.peer}});
      c.refuse(websocket::close_code::policy_error, "message type not allowed");
      return;
    }
    if (!c.accepted) {
      // The controller answers an accepted hello with a heartbeat (or, later, anything).
      c.accepted = true;
      c.finish_setup();
      c.start_heartbeats();
      attempt = 0;
      {
        std::lock_guard lock(mu);
        accepted = c.shared_from_this();
      }
      log::info("agent link connected", {{"controller", c.peer}});
    }
    if (std::holds_alternative<Heartbeat>(m)) return;
    if (options.on_message) callbacks.post([this, msg = std::move(m)] { options.on_message(msg); });
  }

  void on_closed(Connection& c) {
    {
      std::lock_guard lock(mu);
      if (accepted.get() == &c) accepted.reset();
    }
    if (c.accepted && !stopping) log::info("agent link disconnected", {{"controller", c.peer}});
    schedule_reconnect();
  }

  void schedule_reconnect() {
    if (stopping) return;
    std::uniform_real_distribution<double> dist(0.0, 1.0);
    const auto delay = reconnect_delay(options.backoff, attempt, dist(rng));
    if (attempt < 64) ++attempt;
    retry_timer.expires_after(delay);
    retry_timer.async_wait([this](error_code ec) {
      if (!ec) connect();
    });
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
  if (auto st = configure_tls(c.ctx, c.options.ca_cert_pem, c.options.cert_pem, c.options.key_pem);
      !st)
    return st;
  // The controller must present a certificate made for a server.
  SSL_CTX_set_purpose(c.ctx.native_handle(), X509_PURPOSE_SSL_SERVER);
  c.started = true;
  c.work.emplace(c.ioc.get_executor());
  net::post(c.ioc, [&c] { c.connect(); });
  c.io_thread = std::thread([&c] { c.ioc.run(); });
  return Status::Ok();
}

void Client::stop() {
  Impl& c = *impl_;
  if (c.stopping.exchange(true)) return;
  shut_down_io(c.ioc, c.io_thread, [&c] {
    c.retry_timer.cancel();
    if (c.resolver) c.resolver->cancel();
    if (c.current) c.current->abort();
  });
  c.callbacks.stop();
  std::lock_guard lock(c.mu);
  c.accepted.reset();
  c.current.reset();
}

Status Client::send(const Message& message) {
  if (!agent_may_send(message) || std::holds_alternative<Hello>(message))
    return make_error(ErrorCode::kInvalidArgument, "an agent cannot send this message type");
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(impl_->mu);
    conn = impl_->accepted;
  }
  if (!conn || impl_->stopping)
    return make_error(ErrorCode::kUnavailable, "not connected to the controller");
  net::post(conn->ws.get_executor(),
            [conn, frame = std::make_shared<Frame>(encode(message))]() mutable {
              conn->enqueue(std::move(*frame));
            });
  return Status::Ok();
}

bool Client::connected() const {
  std::lock_guard lock(impl_->mu);
  return impl_->accepted != nullptr;
}

}  // namespace berth::agentlink
