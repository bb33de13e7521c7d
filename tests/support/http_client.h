#pragma once
// A small blocking HTTP/1.1 (and HTTPS) client for integration tests, on Boost.Beast. Every
// operation has a deadline; TLS peers are verified against the given CA (certificate chain
// and the host name or IP address). Plain types in, plain types out, so suites that include
// this header do not compile Beast.
//
//   berth::testing::HttpConnection c({.port = port});
//   auto r = c.request("GET", "/app-services", "", {{"Authorization", "Bearer ..."}});
//   REQUIRE(r.status == 200);
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace berth::testing {

struct HttpClientOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  bool tls = false;
  std::string ca_pem;                        // trusted CA (PEM) when tls
  std::chrono::milliseconds timeout{10000};  // per request: connect + write + read
};

struct HttpResult {
  int status = 0;                              // 0 when `error` is set
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string error;  // transport failure, empty on success

  bool ok() const { return error.empty(); }
  std::string header(const std::string& lower_name) const;
  // The body as JSON; a discarded value when it is not JSON.
  nlohmann::json json() const;
};

// One connection, reused across requests while the server keeps it alive (reconnects when the
// previous response closed it).
class HttpConnection {
 public:
  explicit HttpConnection(HttpClientOptions options);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = {},
                     const std::map<std::string, std::string>& headers = {});
  // True while a connection from a previous request is open.
  bool connected() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection.
HttpResult http_request(const HttpClientOptions& options, const std::string& method,
                        const std::string& target, const std::string& body = {},
                        const std::map<std::string, std::string>& headers = {});

// Plain TCP: sends `bytes`, then reads until the peer closes or `timeout` passes. For requests
// no well-behaved client would send. Returns what was read; `closed_by_peer` tells which.
struct RawResult {
  std::string received;
  bool closed_by_peer = false;
  std::string error;  // connect failure
};
RawResult raw_exchange(const std::string& host, std::uint16_t port, const std::string& bytes,
                       std::chrono::milliseconds timeout);

// "Basic base64(user:password)".
std::string basic_auth(const std::string& user, const std::string& password);

}  // namespace berth::testing
