#include "agent/health_probe.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <thread>

namespace berth::agent {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string probe_once(const ProbeSpec& spec) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  boost::system::error_code addr_ec;
  const auto address = asio::ip::make_address(spec.host, addr_ec);
  if (addr_ec) return "The probe address " + spec.host + " is not an IP address.";
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(spec.port));
  std::string failure;
  http::request<http::empty_body> req{http::verb::get, spec.path.empty() ? "/" : spec.path, 11};
  req.set(http::field::host, spec.host + ":" + std::to_string(spec.port));
  req.set(http::field::user_agent, "berth-agent-probe");
  req.set(http::field::connection, "close");
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);

  // One deadline for the whole attempt: connect, write and read share it.
  stream.expires_after(spec.attempt_timeout);
  stream.async_connect(endpoint, [&](boost::system::error_code ec) {
    if (ec) {
      failure =
          "Connecting to port " + std::to_string(spec.port) + " failed: " + ec.message() + ".";
      return;
    }
    if (spec.path.empty()) return;
    http::async_write(stream, req, [&](boost::system::error_code wec, std::size_t) {
      if (wec) {
        failure = "Sending the health request failed: " + wec.message() + ".";
        return;
      }
      http::async_read_header(
          stream, buffer, parser, [&](boost::system::error_code rec, std::size_t) {
            if (rec) {
              failure = "Reading the health response failed: " + rec.message() + ".";
              return;
            }
            const unsigned status = parser.get().result_int();
            if (status < 200 || status >= 400)
              failure = "GET " + spec.path + " answered " + std::to_string(status) + ".";
          });
    });
  });
  io.run();
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
  return failure;
}

ProbeOutcome AsioHealthProber::probe(const ProbeSpec& spec) {
  ProbeOutcome outcome;
  const auto start = std::chrono::steady_clock::now();
  const auto until = start + spec.deadline;
  int consecutive = 0;
  const int threshold = spec.healthy_threshold < 1 ? 1 : spec.healthy_threshold;
  for (;;) {
    const auto attempt_start = std::chrono::steady_clock::now();
    ++outcome.attempts;
    std::string err = probe_once(spec);
    if (err.empty()) {
      if (++consecutive >= threshold) {
        outcome.healthy = true;
        outcome.last_error.clear();
        return outcome;
      }
    } else {
      consecutive = 0;
      outcome.last_error = std::move(err);
    }
    const auto next = attempt_start + spec.interval;
    if (next >= until) break;
    std::this_thread::sleep_until(next);
  }
  if (outcome.last_error.empty())
    outcome.last_error = "The health threshold was not reached in time.";
  return outcome;
}

}  // namespace berth::agent
