#pragma once
// Simulated peers of the controller for the benchmarks (and the load suite): TLS servers written
// with Asio directly (the anonymous registry every benchmark image resolves at), and agents that
// speak the real agent link (agentlink::Client: TLS 1.3, client certificates, Hello, ack,
// result) and acknowledge and report success at once, without podman.
//
// Contract: bench code. A TLS context that cannot be built, or a credential file that cannot be
// read, ends the process (bench::die); SimAgent::start returns its error.
// Threading: TlsServer serves on its own threads; a SimAgent answers on its client's thread;
// Arrivals is safe from any thread.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "agentlink/client.h"
#include "bench_fixture.h"
#include "bench_util.h"
#include "common/secret.h"
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

// --- simulated agents ---------------------------------------------------------------------------

struct Credentials {
  std::string name;
  std::string ca_pem;
  std::string cert_pem;
  Secret key_pem;
};

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) bench::die("read", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// When each service's latest DeployTask reached an agent (the dispatch-latency phase resets an
// entry before it changes that service).
struct Arrivals {
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, bench::Clock::time_point> deploy_at;
  std::atomic<std::uint64_t> deploys{0}, results{0};

  void deployed(const std::string& service) {
    const auto now = bench::Clock::now();
    std::lock_guard lock(mu);
    deploy_at.try_emplace(service, now);
    ++deploys;
    cv.notify_all();
  }
};

// An agent that acknowledges every task and reports success at once: what berth-agent sends,
// minus podman. Its hello reports no apps (a fresh machine).
class SimAgent {
 public:
  SimAgent(Credentials c, std::string url, Arrivals& arrivals) : arrivals_(arrivals) {
    agentlink::ClientOptions o;
    o.url = std::move(url);
    o.ca_cert_pem = c.ca_pem;
    o.cert_pem = c.cert_pem;
    o.key_pem = std::move(c.key_pem);
    o.hello = [name = c.name] { return agentlink::Hello{name, "local", "bench", {}}; };
    o.on_message = [this](const agentlink::Message& m) { handle(m); };
    // The controller may not listen yet: retry quickly so start-up is measured, not backoff.
    o.backoff = agentlink::Backoff{20ms, 200ms, 0.0};
    client_ = std::make_unique<agentlink::Client>(std::move(o));
  }
  Status start() { return client_->start(); }
  void stop() { client_->stop(); }
  bool connected() const { return client_->connected(); }

 private:
  void handle(const agentlink::Message& m) {
    agentlink::TaskResult r;
    if (const auto* d = std::get_if<agentlink::DeployTask>(&m)) {
      arrivals_.deployed(d->service_id);
      r.task_id = d->task_id;
      r.service_id = d->service_id;
      r.revision_id = d->revision_id;
      r.image_digest = d->image_digest.empty() ? bench::fixed_digest() : d->image_digest;
      r.stable_port = port_++;
      const core::UnixMillis now = bench::kEpoch;
      r.logs.push_back(core::DeployLogEntry{"pull", "ok", "pulled", "", now, 0});
      r.logs.push_back(core::DeployLogEntry{"switch", "ok", "switched", "", now, 0});
    } else if (const auto* t = std::get_if<agentlink::RestartTask>(&m)) {
      r.task_id = t->task_id;
      r.service_id = t->service_id;
    } else if (const auto* t2 = std::get_if<agentlink::RemoveTask>(&m)) {
      r.task_id = t2->task_id;
      r.service_id = t2->service_id;
    } else {
      return;
    }
    r.ok = true;
    (void)client_->send(agentlink::Ack{r.task_id});
    if (client_->send(r).ok()) ++arrivals_.results;
  }

  Arrivals& arrivals_;
  std::unique_ptr<agentlink::Client> client_;
  int port_ = 20000;
};

inline std::string agent_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "sim-%03d", i);
  return buf;
}

inline std::vector<std::unique_ptr<SimAgent>> start_agents(const std::vector<Credentials>& creds,
                                                           const std::string& url,
                                                           Arrivals& arrivals) {
  std::vector<std::unique_ptr<SimAgent>> agents;
  for (const auto& c : creds) {
    agents.push_back(std::make_unique<SimAgent>(
        Credentials{c.name, c.ca_pem, c.cert_pem, Secret(c.key_pem.reveal())}, url, arrivals));
    if (Status st = agents.back()->start(); !st.ok()) bench::die("agent start", st.error().message);
  }
  return agents;
}

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
