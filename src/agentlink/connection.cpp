#include "agentlink/connection.h"
#include "common/secret.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agentlink/limits.h"
#include "agentlink/tls.h"
#include "common/log.h"

namespace berth::agentlink::detail {

Frame& Frame::operator=(Frame&& other) noexcept {
  wipe_string(bytes_);
  bytes_ = std::move(other.bytes_);
  wipe_string(other.bytes_);
  return *this;
}

Result<Frame> encode_frame(const Message& message) {
  Frame frame(encode(message));
  // The peer's read limit and decode() refuse a larger frame and close the link; sending it
  // would only drop the connection, and a sender that re-sends after reconnecting would loop.
  if (frame.bytes().size() > kMaxFrameBytes)
    return make_error(ErrorCode::kPayloadTooLarge, "the message encodes to " +
                                                       std::to_string(frame.bytes().size()) +
                                                       " bytes, over the agent link's limit of " +
                                                       std::to_string(kMaxFrameBytes) + " bytes");
  return frame;
}

Deadline::Deadline(const net::any_io_executor& ex, std::chrono::milliseconds timeout,
                   std::function<void()> on_expiry)
    : timer_(ex, timeout) {
  timer_.async_wait([on_expiry = std::move(on_expiry)](error_code ec) {
    if (!ec) on_expiry();
  });
}

Deadline::~Deadline() { timer_.cancel(); }

Connection::Connection(tcp::socket socket, std::shared_ptr<ssl::context> ctx, Timeouts t)
    : ws(std::move(socket), *ctx),
      timeouts(t),
      ctx_(std::move(ctx)),
      wake_writer_(ws.get_executor()) {}

Connection::Connection(net::any_io_executor ex, std::shared_ptr<ssl::context> ctx, Timeouts t)
    : ws(ex, *ctx), timeouts(t), ctx_(std::move(ctx)), wake_writer_(ex) {}

Deadline Connection::step_deadline(const char* step) {
  return Deadline(executor(), timeouts.handshake, [weak = weak_from_this(), step] {
    auto self = weak.lock();
    if (!self || self->finished_) return;
    log::warn("agent link step timed out", {{"peer", self->peer}, {"step", step}});
    self->abort();
  });
}

void Connection::arm_setup_deadline(const char* step) {
  setup_deadline_.emplace(executor(), timeouts.handshake, [weak = weak_from_this(), step] {
    auto self = weak.lock();
    if (!self || self->finished_) return;
    log::warn("agent link step timed out", {{"peer", self->peer}, {"step", step}});
    self->abort();
  });
}

void Connection::configure_websocket() {
  ws.set_option(websocket::stream_base::timeout{timeouts.handshake, timeouts.idle, true});
  ws.read_message_max(kMaxFrameBytes);
  ws.text(true);
}

void Connection::start(MessageHandler on_message, ClosedHandler on_closed) {
  on_message_ = std::move(on_message);
  on_closed_ = std::move(on_closed);
  net::co_spawn(executor(), read_loop(), net::detached);
  net::co_spawn(executor(), write_loop(), net::detached);
}

void Connection::start_heartbeats() { net::co_spawn(executor(), heartbeat_loop(), net::detached); }

void Connection::enqueue(Frame frame) {
  if (closing()) return;
  queue_.emplace_back(std::move(frame));
  wake_writer_.cancel();
}

void Connection::refuse(websocket::close_code code, std::string reason) {
  if (closing()) return;
  refusing_ = true;
  // Frames queued before the refusal are dropped: the close frame is the last word.
  queue_.clear();
  queue_.emplace_back(Close{code, std::move(reason)});
  wake_writer_.cancel();
}

void Connection::abort() {
  error_code ignored;
  beast::get_lowest_layer(ws).socket().close(ignored);
  finish();
}

net::awaitable<void> Connection::read_loop() {
  auto self = shared_from_this();
  for (;;) {
    error_code ec;
    co_await ws.async_read(buffer_, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      if (ec == websocket::error::closed) {
        // The owner logs it: a refusal's reason is what an operator needs.
        peer_close_reason = std::string(ws.reason().reason.c_str());
        if (peer_close_reason.empty()) peer_close_reason = "closed without a reason";
      } else if (!finished_ && ec != net::error::operation_aborted) {
        log::info("agent link connection lost", {{"peer", peer}, {"error", ec.message()}});
      }
      break;
    }
    auto data = buffer_.data();
    char* bytes = static_cast<char*>(data.data());
    Result<Message> message = ws.got_text()
                                  ? decode(std::string_view(bytes, data.size()))
                                  : Result<Message>(make_error(ErrorCode::kInvalidArgument,
                                                               "binary frames are not allowed"));
    secure_wipe(bytes, data.size());
    buffer_.consume(buffer_.size());
    if (!message) {
      log::warn(
          "agent link frame refused",
          {{"peer", peer}, {"error", message.error().message}, {"field", message.error().field}});
      refuse(websocket::close_code::policy_error, "invalid frame");
      continue;  // drain until the peer answers the close frame
    }
    if (on_message_ && !closing()) on_message_(std::move(message.value()));
    if (finished_) break;
  }
  finish();
}

net::awaitable<void> Connection::write_loop() {
  auto self = shared_from_this();
  while (!finished_) {
    if (queue_.empty()) {
      error_code ignored;
      wake_writer_.expires_at(net::steady_timer::time_point::max());
      co_await wake_writer_.async_wait(net::redirect_error(net::use_awaitable, ignored));
      continue;
    }
    Outgoing next = std::move(queue_.front());
    queue_.pop_front();
    error_code ec;
    if (auto* frame = std::get_if<Frame>(&next)) {
      Deadline deadline(executor(), timeouts.write, [weak = weak_from_this()] {
        if (auto c = weak.lock(); c && !c->finished_) {
          log::warn("agent link write timed out", {{"peer", c->peer}});
          c->abort();
        }
      });
      co_await ws.async_write(net::buffer(frame->bytes()),
                              net::redirect_error(net::use_awaitable, ec));
      if (ec) break;
    } else {
      // Beast bounds the closing handshake with the handshake timeout.
      auto& close = std::get<Close>(next);
      co_await ws.async_close(websocket::close_reason(close.code, close.reason),
                              net::redirect_error(net::use_awaitable, ec));
      break;
    }
  }
  abort();
}

net::awaitable<void> Connection::heartbeat_loop() {
  auto self = shared_from_this();
  net::steady_timer timer(executor());
  while (!closing()) {
    timer.expires_after(timeouts.heartbeat);
    error_code ec;
    co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (closing()) break;
    enqueue(Frame(encode(Heartbeat{now_unix_ms()})));
  }
}

void Connection::finish() {
  if (finished_) return;
  finished_ = true;
  setup_deadline_.reset();
  queue_.clear();
  wake_writer_.cancel();
  error_code ignored;
  beast::get_lowest_layer(ws).socket().close(ignored);
  auto on_closed = std::move(on_closed_);
  on_message_ = nullptr;
  on_closed_ = nullptr;
  if (on_closed) on_closed();
}

std::string endpoint_text(const tcp::socket& socket) {
  error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace berth::agentlink::detail
