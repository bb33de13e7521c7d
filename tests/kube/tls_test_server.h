#pragma once
// A small HTTPS/1.1 server for the transport's own tests, where the test must control what the
// test API server does not expose: how the bytes of a chunked body are cut, how many TCP
// connections were accepted, a server that closes a keep-alive connection behind the client's
// back. Loopback, port 0, a throwaway CA (crypto/certs.h); one thread per connection.
//
// The handler runs on the connection's thread and answers through Exchange. Stopping (the
// destructor) releases handlers blocked in Exchange::hold() and shuts every socket down.
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "crypto/certs.h"

namespace berth::kube::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct Pki {
  crypto::PemPair ca;
  crypto::PemPair server;  // SAN IP 127.0.0.1 and DNS kube.test
  crypto::PemPair client;  // CN berth-client

  static Pki make() {
    Pki p;
    auto ca = crypto::create_ca("kube-test-ca", 3600);
    if (!ca.ok()) throw std::runtime_error(ca.error().message);
    p.ca = std::move(*ca);
    crypto::CertRequest server;
    server.common_name = "kube-test-server";
    server.ip_addresses = {"127.0.0.1"};
    server.dns_names = {"kube.test"};
    server.server = true;
    auto s = crypto::issue_certificate(p.ca, server);
    if (!s.ok()) throw std::runtime_error(s.error().message);
    p.server = std::move(*s);
    crypto::CertRequest client;
    client.common_name = "berth-client";
    client.client = true;
    auto c = crypto::issue_certificate(p.ca, client);
    if (!c.ok()) throw std::runtime_error(c.error().message);
    p.client = std::move(*c);
    return p;
  }
};

struct Seen {
  std::string method;
  std::string target;
  std::string authorization;
  std::string client_cn;  // CN of the client certificate, "" without one
  int connection = 0;     // which accepted connection (1, 2, ...)
};

class TlsTestServer;

class Exchange {
 public:
  using Stream = asio::ssl::stream<asio::ip::tcp::socket>;
  Exchange(Stream& stream, TlsTestServer& server) : stream_(stream), server_(server) {}

  void respond(int status, const std::string& body,
               const std::string& content_type = "application/json") {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, content_type);
    res.keep_alive(true);
    res.body() = body;
    res.prepare_payload();
    beast::error_code ec;
    http::write(stream_, res, ec);
  }
  void start_chunked(int status = 200) {
    write("HTTP/1.1 " + std::to_string(status) +
          " OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
  }
  void chunk(const std::string& data) {
    std::ostringstream size;
    size << std::hex << data.size();
    write(size.str() + "\r\n" + data + "\r\n");
  }
  void finish_chunked() { write("0\r\n\r\n"); }
  // Drops the connection after this exchange (without telling the client in a header).
  void close_after() { close_after_ = true; }
  bool closing() const { return close_after_; }
  // Blocks until the server stops.
  void hold();

 private:
  void write(const std::string& bytes) {
    beast::error_code ec;
    asio::write(stream_, asio::buffer(bytes), ec);
  }
  Stream& stream_;
  TlsTestServer& server_;
  bool close_after_ = false;
};

class TlsTestServer {
 public:
  using Handler = std::function<void(const http::request<http::string_body>&, Exchange&)>;

  explicit TlsTestServer(Handler handler, bool require_client_cert = false)
      : pki_(Pki::make()), handler_(std::move(handler)), ssl_(asio::ssl::context::tls_server) {
    ssl_.use_certificate_chain(asio::buffer(pki_.server.cert_pem));
    ssl_.use_private_key(asio::buffer(pki_.server.key_pem.reveal()), asio::ssl::context::pem);
    ssl_.add_certificate_authority(asio::buffer(pki_.ca.cert_pem));
    if (require_client_cert)
      ssl_.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    acceptor_.open(asio::ip::tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~TlsTestServer() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    beast::error_code ec;
    acceptor_.close(ec);
    accept_thread_.join();
    for (auto& t : threads_) t.join();
  }

  std::string server() const { return "https://127.0.0.1:" + std::to_string(port_); }
  const Pki& pki() const { return pki_; }
  int connections() const { return accepted_.load(); }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

  void hold() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stopping_; });
  }

 private:
  void accept_loop() {
    for (;;) {
      beast::error_code ec;
      asio::ip::tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      std::lock_guard lock(mu_);
      if (stopping_) return;
      fds_.push_back(socket.native_handle());
      const int n = ++accepted_;
      threads_.emplace_back([this, n, s = std::move(socket)]() mutable { serve(std::move(s), n); });
    }
  }

  void serve(asio::ip::tcp::socket socket, int n) {
    const int fd = socket.native_handle();
    Exchange::Stream stream(std::move(socket), ssl_);
    // Forgets the descriptor before `stream` closes it, so the destructor never shuts down a
    // number the process has since reused (the client's own sockets live in this process).
    struct Forget {
      TlsTestServer& s;
      int fd;
      ~Forget() {
        std::lock_guard lock(s.mu_);
        std::erase(s.fds_, fd);
      }
    } forget{*this, fd};
    beast::error_code ec;
    stream.handshake(asio::ssl::stream_base::server, ec);
    if (ec) return;
    std::string cn;
    if (X509* peer = SSL_get1_peer_certificate(stream.native_handle())) {
      char buf[256] = {0};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof buf);
      cn = buf;
      X509_free(peer);
    }
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      http::read(stream, buffer, req, ec);
      if (ec) return;
      {
        std::lock_guard lock(mu_);
        seen_.push_back({std::string(req.method_string()), std::string(req.target()),
                         std::string(req[http::field::authorization]), cn, n});
      }
      Exchange exchange(stream, *this);
      handler_(req, exchange);
      if (exchange.closing()) {
        ::shutdown(stream.lowest_layer().native_handle(), SHUT_RDWR);
        return;
      }
    }
  }

  Pki pki_;
  Handler handler_;
  asio::ssl::context ssl_;
  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_{ioc_};
  unsigned short port_ = 0;
  std::thread accept_thread_;
  std::list<std::thread> threads_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<int> fds_;
  std::vector<Seen> seen_;
  std::atomic<int> accepted_{0};
};

inline void Exchange::hold() { server_.hold(); }

}  // namespace berth::kube::testing
