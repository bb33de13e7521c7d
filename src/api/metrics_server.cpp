#include "api/metrics_server.h"

#include <atomic>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace berth::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

}  // namespace

struct MetricsServer::Impl {
  Impl(MetricsServerOptions o, metrics::Registry& r) : opts(std::move(o)), registry(r) {}

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping) co_return;
        continue;  // e.g. too many open files: keep listening
      }
      if (connections >= opts.max_connections) continue;  // the socket closes here
      ++connections;
      asio::co_spawn(ioc, session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    http::request<http::empty_body> req;
    stream.expires_after(opts.io_timeout);
    auto [rec, rn] = co_await http::async_read(stream, buffer, req, kNoThrow);
    (void)rn;
    if (!rec) {
      http::response<http::string_body> res;
      res.version(req.version());
      res.keep_alive(false);
      const std::string path(req.target().substr(0, req.target().find('?')));
      if (path != "/metrics") {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = "no such endpoint\n";
      } else if (req.method() != http::verb::get) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET");
      } else {
        res.result(http::status::ok);
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = registry.render();
      }
      res.prepare_payload();
      stream.expires_after(opts.io_timeout);
      auto [wec, wn] = co_await http::async_write(stream, res, kNoThrow);
      (void)wec;
      (void)wn;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    --connections;
  }

  MetricsServerOptions opts;
  metrics::Registry& registry;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  std::atomic<bool> started{false};
  std::atomic<bool> stopping{false};
  std::size_t connections = 0;  // touched on the io thread only
};

MetricsServer::MetricsServer(MetricsServerOptions options, metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(options), registry)) {}

MetricsServer::~MetricsServer() { stop(); }

Status MetricsServer::start() {
  auto& d = *impl_;
  if (d.started) return make_error(ErrorCode::kFailedPrecondition, "already started");
  beast::error_code ec;
  const auto address = asio::ip::make_address(d.opts.listen_host, ec);
  if (ec)
    return make_error(ErrorCode::kInvalidArgument, "not an IP address: " + d.opts.listen_host);
  const tcp::endpoint endpoint(address, d.opts.listen_port);
  d.acceptor.open(endpoint.protocol(), ec);
  if (!ec) d.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) d.acceptor.bind(endpoint, ec);
  if (!ec) d.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return make_error(ErrorCode::kUnavailable,
                      "cannot listen for metrics on " + d.opts.listen_host + ":" +
                          std::to_string(d.opts.listen_port) + ": " + ec.message());
  }
  d.started = true;
  asio::co_spawn(d.ioc, d.accept_loop(), asio::detached);
  d.thread = std::thread([&d] { d.ioc.run(); });
  return Status::Ok();
}

std::uint16_t MetricsServer::port() const {
  beast::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void MetricsServer::stop() {
  auto& d = *impl_;
  if (!d.started || d.stopping.exchange(true)) return;
  // Stopping the io_context abandons sessions in flight: each is a scrape that will be retried.
  d.ioc.stop();
  if (d.thread.joinable()) d.thread.join();
  beast::error_code ignored;
  d.acceptor.close(ignored);
}

}  // namespace berth::api
