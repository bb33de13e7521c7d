#pragma once
// The simulated registry of the benchmarks (and the load suite, through kube_sim.h): a blocking
// TLS 1.3 server written with Asio directly and the anonymous registry every benchmark image
// resolves at. The simulated agents are bench/sim_agent.h.
//
// Contract: bench code. A TLS context that cannot be built, or a file that cannot be read, ends
// the process (bench::die).
// Threading: TlsServer serves on its own threads; serve_registry counts on an atomic.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_fixture.h"
#include "bench_util.h"
#include "crypto/certs.h"

namespace berth::bench::sim {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

inline std::shared_ptr<ssl::context> server_context(const crypto::PemPair& leaf) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_3_VERSION);
  boost::system::error_code ec;
  ctx->use_certificate_chain(asio::buffer(leaf.cert_pem), ec);
  if (!ec) {
    const auto key = leaf.key_pem.reveal();
    ctx->use_private_key(asio::buffer(key.data(), key.size()), ssl::context::pem, ec);
  }
  if (ec) bench::die("TLS server context", ec.message());
  return ctx;
}

inline void set_socket_deadline(int fd, std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// A blocking TLS 1.3 server on 127.0.0.1:<free port>: `threads` threads accept and each serves
// one connection at a time with `serve`. Every socket read and write has a 10 s deadline.
class TlsServer {
 public:
  using Serve = std::function<void(ssl::stream<tcp::socket>&)>;
  TlsServer(const crypto::PemPair& leaf, int threads, Serve serve)
      : ctx_(server_context(leaf)), serve_(std::move(serve)), acceptor_(io_) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(512);
    port_ = acceptor_.local_endpoint().port();
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~TlsServer() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocked accept()s
    for (auto& t : threads_) t.join();
  }
  std::uint16_t port() const { return port_; }
  std::uint64_t connections() const { return connections_.load(); }

 private:
  void loop() {
    while (!stopping_) {
      const int fd = ::accept(acceptor_.native_handle(), nullptr, nullptr);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      ++connections_;
      set_socket_deadline(fd, 10s);
      asio::io_context io;
      ssl::stream<tcp::socket> s(io, *ctx_);
      boost::system::error_code ec;
      s.next_layer().assign(tcp::v4(), fd, ec);
      if (ec) {
        ::close(fd);
        continue;
      }
      s.next_layer().set_option(tcp::no_delay(true), ec);
      s.handshake(ssl::stream_base::server, ec);
      if (!ec) serve_(s);
      s.next_layer().close(ec);
    }
  }

  std::shared_ptr<ssl::context> ctx_;
  Serve serve_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> connections_{0};
  std::vector<std::thread> threads_;
};

// The registry every service names: anonymous, answers HEAD /v2/<name>/manifests/<ref> with one
// digest (what the controller's resolve step needs); anything else is a 404.
inline void serve_registry(ssl::stream<tcp::socket>& s, std::atomic<std::uint64_t>& heads) {
  boost::beast::flat_buffer buf;
  for (;;) {
    http::request<http::empty_body> req;
    boost::system::error_code ec;
    http::read(s, buf, req, ec);
    if (ec) return;
    http::response<http::empty_body> res;
    res.version(11);
    res.keep_alive(req.keep_alive());
    const std::string target(req.target());
    if (req.method() == http::verb::head && target.find("/manifests/") != std::string::npos) {
      ++heads;
      res.result(http::status::ok);
      res.set(http::field::content_type, "application/vnd.oci.image.manifest.v1+json");
      res.set("Docker-Content-Digest", bench::fixed_digest());
      res.content_length(0);
    } else {
      res.result(http::status::not_found);
      res.content_length(0);
    }
    http::write(s, res, ec);
    if (ec || !req.keep_alive()) return;
  }
}

// A whole file; ends the benchmark when it cannot be read.
inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) bench::die("read", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls pred every `step` until it holds (true) or `limit` has passed (false).
template <class Pred>
inline bool wait_for(Pred pred, std::chrono::milliseconds limit,
                     std::chrono::milliseconds step = 5ms) {
  const auto end = bench::Clock::now() + limit;
  while (!pred()) {
    if (bench::Clock::now() > end) return false;
    std::this_thread::sleep_for(step);
  }
  return true;
}

}  // namespace berth::bench::sim
