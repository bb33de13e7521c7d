#include "support/http_client.h"

#include <optional>
#include <variant>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace berth::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = beast::error_code;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string HttpResult::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

nlohmann::json HttpResult::json() const { return nlohmann::json::parse(body, nullptr, false); }

struct HttpConnection::Impl {
  explicit Impl(HttpClientOptions o) : opts(std::move(o)), tls_ctx(ssl::context::tls_client) {
    if (opts.tls) {
      tls_ctx.set_verify_mode(ssl::verify_peer);
      error_code ec;
      tls_ctx.add_certificate_authority(asio::buffer(opts.ca_pem), ec);
    }
  }

  HttpClientOptions opts;
  asio::io_context ioc;
  ssl::context tls_ctx;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  // Runs the io_context until the started operation completes (its deadline is the stream's).
  void drive() {
    ioc.restart();
    ioc.run();
  }

  void reset() {
    plain.reset();
    secure.reset();
    buffer.clear();
  }

  std::string connect(std::chrono::steady_clock::time_point deadline) {
    reset();
    error_code ec;
    tcp::resolver resolver(ioc);
    auto endpoints = resolver.resolve(opts.host, std::to_string(opts.port), ec);
    if (ec) return "resolve: " + ec.message();
    if (opts.tls) {
      secure.emplace(ioc, tls_ctx);
    } else {
      plain.emplace(ioc);
    }
    lowest().expires_at(deadline);
    lowest().async_connect(endpoints, [&](error_code e, const tcp::endpoint&) { ec = e; });
    drive();
    if (ec) return "connect: " + ec.message();
    if (opts.tls) {
      SSL* handle = secure->native_handle();
      (void)asio::ip::make_address(opts.host, ec);
      if (!ec) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), opts.host.c_str());
      } else {
        SSL_set_tlsext_host_name(handle, opts.host.c_str());
        SSL_set1_host(handle, opts.host.c_str());
      }
      ec = {};
      secure->async_handshake(ssl::stream_base::client, [&](error_code e) { ec = e; });
      drive();
      if (ec) return "tls handshake: " + ec.message();
    }
    return {};
  }

  template <class Stream>
  HttpResult exchange(Stream& stream, http::request<http::string_body>& req) {
    HttpResult out;
    error_code ec;
    http::async_write(stream, req, [&](error_code e, std::size_t) { ec = e; });
    drive();
    // A server may answer early (413) and stop reading; its answer is still worth reading.
    const error_code write_ec = ec;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::async_read(stream, buffer, parser, [&](error_code e, std::size_t) { ec = e; });
    drive();
    if (ec) {
      out.error = write_ec ? "write: " + write_ec.message() : "read: " + ec.message();
      return out;
    }
    auto res = parser.release();
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res)
      out.headers[lower(std::string(f.name_string()))] = std::string(f.value());
    out.body = std::move(res.body());
    if (!res.keep_alive()) reset();
    return out;
  }
};

HttpConnection::HttpConnection(HttpClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpConnection::~HttpConnection() = default;

bool HttpConnection::connected() const { return impl_->plain || impl_->secure; }

HttpResult HttpConnection::request(const std::string& method, const std::string& target,
                                   const std::string& body,
                                   const std::map<std::string, std::string>& headers) {
  auto& d = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + d.opts.timeout;
  if (!connected()) {
    if (auto err = d.connect(deadline); !err.empty()) {
      d.reset();
      HttpResult r;
      r.error = err;
      return r;
    }
  }
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, d.opts.host + ":" + std::to_string(d.opts.port));
  req.set(http::field::user_agent, "berth-tests");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  if (!body.empty() || method == "POST" || method == "PATCH" || method == "PUT") {
    req.prepare_payload();
  }
  d.lowest().expires_at(deadline);
  HttpResult r = d.secure ? d.exchange(*d.secure, req) : d.exchange(*d.plain, req);
  if (!r.ok()) d.reset();
  return r;
}

HttpResult http_request(const HttpClientOptions& options, const std::string& method,
                        const std::string& target, const std::string& body,
                        const std::map<std::string, std::string>& headers) {
  HttpConnection c(options);
  return c.request(method, target, body, headers);
}

RawResult raw_exchange(const std::string& host, std::uint16_t port, const std::string& bytes,
                       std::chrono::milliseconds timeout) {
  RawResult out;
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  error_code ec;
  stream.expires_after(timeout);
  stream.async_connect(tcp::endpoint(asio::ip::make_address(host), port),
                       [&](error_code e) { ec = e; });
  ioc.run();
  if (ec) {
    out.error = ec.message();
    return out;
  }
  ioc.restart();
  asio::async_write(stream, asio::buffer(bytes), [&](error_code e, std::size_t) { ec = e; });
  ioc.run();
  // A write error means the peer already closed; still read what it sent before.
  char buf[4096];
  for (;;) {
    ioc.restart();
    std::size_t n = 0;
    stream.async_read_some(asio::buffer(buf), [&](error_code e, std::size_t got) {
      ec = e;
      n = got;
    });
    ioc.run();
    out.received.append(buf, n);
    if (ec) {
      out.closed_by_peer = ec != beast::error::timeout;
      break;
    }
  }
  return out;
}

std::string basic_auth(const std::string& user, const std::string& password) {
  const std::string plain = user + ":" + password;
  std::string encoded(beast::detail::base64::encoded_size(plain.size()), '\0');
  encoded.resize(beast::detail::base64::encode(encoded.data(), plain.data(), plain.size()));
  return "Basic " + encoded;
}

}  // namespace berth::testing
