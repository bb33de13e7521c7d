#pragma once
// Internal to the agent link: one TLS WebSocket connection, shared by the server and the client.
//
// A Connection runs on its own strand. Its coroutines (read loop, write loop, heartbeats) each
// hold a shared_ptr to it, so it lives as long as any of them runs; abort() closes the socket,
// which makes every pending operation complete with an error and every loop end.
//
// Writes go through one queue drained by one coroutine, because a WebSocket allows one
// write-side operation (a frame or the close handshake) at a time; every write has a deadline.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "agentlink/messages.h"
#include "agentlink/server.h"

namespace berth::agentlink::detail {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

// A frame on its way to the socket. Wiped when it dies or is moved from, because a deploy frame
// carries a registry password.
class Frame {
 public:
  explicit Frame(std::string bytes) : bytes_(std::move(bytes)) {}
  Frame(Frame&& other) noexcept : bytes_(std::move(other.bytes_)) { wipe_string(other.bytes_); }
  Frame& operator=(Frame&& other) noexcept;
  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;
  ~Frame() { wipe_string(bytes_); }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// Encodes a message for sending; kPayloadTooLarge when the peer would refuse the frame.
Result<Frame> encode_frame(const Message& message);

struct Timeouts {
  std::chrono::milliseconds handshake;  // every setup step, and the closing handshake
  std::chrono::milliseconds idle;
  std::chrono::milliseconds heartbeat;
  std::chrono::milliseconds write;
};

// Calls on_expiry unless destroyed within `timeout`: the deadline of one awaited step. The
// expiry handler aborts the connection, which completes the pending step with an error.
class Deadline {
 public:
  Deadline(const net::any_io_executor& ex, std::chrono::milliseconds timeout,
           std::function<void()> on_expiry);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

 private:
  net::steady_timer timer_;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Ws = websocket::stream<ssl::stream<beast::tcp_stream>>;
  // Called on the strand for each decoded frame; the connection goes on reading afterwards
  // unless the handler refused or aborted it.
  using MessageHandler = std::function<void(Message&&)>;
  using ClosedHandler = std::function<void()>;

  // Server side: an accepted socket. Client side: a fresh socket on `ex`. The context is kept
  // alive with the connection (the server swaps contexts when it renews its certificate).
  Connection(tcp::socket socket, std::shared_ptr<ssl::context> ctx, Timeouts t);
  Connection(net::any_io_executor ex, std::shared_ptr<ssl::context> ctx, Timeouts t);

  net::any_io_executor executor() { return ws.get_executor(); }
  SSL* native_ssl() { return ws.next_layer().native_handle(); }
  // A deadline for one setup step that aborts this connection when it expires.
  Deadline step_deadline(const char* step);
  // The same for a step that is not one co_await (waiting for the first frame): armed until
  // setup_done().
  void arm_setup_deadline(const char* step);
  void setup_done() { setup_deadline_.reset(); }

  // WebSocket limits for the established phase: Beast closes a connection that receives
  // nothing for idle_timeout and pings at half of it, so a silent peer is noticed even between
  // heartbeats; frames over kMaxFrameBytes are refused.
  void configure_websocket();

  // Starts the read and write loops. on_closed runs once, on the strand, when the connection
  // is torn down for any reason.
  void start(MessageHandler on_message, ClosedHandler on_closed);
  void start_heartbeats();

  // Queues a frame (strand only). Dropped once the connection is closing.
  void enqueue(Frame frame);
  // Polite refusal: a close frame carrying `reason`, bounded by the handshake timeout, then the
  // socket goes. No message is delivered after it.
  void refuse(websocket::close_code code, std::string reason);
  // Immediate teardown (strand only).
  void abort();
  bool finished() const { return finished_; }
  bool closing() const { return finished_ || refusing_; }

  Ws ws;
  Timeouts timeouts;
  std::string peer;               // remote endpoint, for logs
  std::string peer_close_reason;  // what the peer's close frame said, when it sent one
  AgentIdentity identity;         // server side: from the certificate
  bool accepted = false;          // the Hello exchange succeeded

 private:
  struct Close {
    websocket::close_code code;
    std::string reason;
  };
  using Outgoing = std::variant<Frame, Close>;

  net::awaitable<void> read_loop();
  net::awaitable<void> write_loop();
  net::awaitable<void> heartbeat_loop();
  void finish();

  std::shared_ptr<ssl::context> ctx_;
  std::optional<Deadline> setup_deadline_;
  beast::flat_buffer buffer_;
  net::steady_timer wake_writer_;
  std::deque<Outgoing> queue_;
  bool finished_ = false;
  bool refusing_ = false;
  MessageHandler on_message_;
  ClosedHandler on_closed_;
};

std::string endpoint_text(const tcp::socket& socket);

}  // namespace berth::agentlink::detail
