#include "agent/port_proxy.h"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/log.h"

namespace berth::agent {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

class ProxyImpl;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ProxyImpl& owner, tcp::socket client, int backend)
      : owner_(owner),
        client_(std::move(client)),
        backend_sock_(client_.get_executor()),
        timer_(client_.get_executor()),
        backend_(backend) {}

  void start();
  void close() {
    error_code ec;
    client_.close(ec);
    backend_sock_.close(ec);
    timer_.cancel();
  }
  int backend() const { return backend_; }

 private:
  void arm(std::chrono::milliseconds after) {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->close();  // deadline passed: connect too slow or connection idle
    });
  }
  void pump(tcp::socket& from, tcp::socket& to, std::vector<char>& buf);
  void direction_done();

  ProxyImpl& owner_;
  tcp::socket client_;
  tcp::socket backend_sock_;
  asio::steady_timer timer_;
  int backend_;
  std::vector<char> up_, down_;
  int open_directions_ = 2;
  bool finished_ = false;
};

class ProxyImpl final : public PortProxy {
 public:
  ProxyImpl(ProxyOptions o, int backend) : options_(o), acceptor_(io_), backend_(backend) {}
  ~ProxyImpl() override { close(); }

  Status listen(int port) {
    try {
      const tcp::endpoint ep(asio::ip::address_v4::loopback(), static_cast<unsigned short>(port));
      acceptor_.open(ep.protocol());
      acceptor_.set_option(tcp::acceptor::reuse_address(true));
      acceptor_.bind(ep);
      acceptor_.listen();
      port_ = acceptor_.local_endpoint().port();
    } catch (const boost::system::system_error& e) {
      return make_error(ErrorCode::kUnavailable,
                        "Could not listen on 127.0.0.1:" + std::to_string(port) + ": " +
                            e.code().message() + ".");
    }
    accept();
    thread_ = std::thread([this] { io_.run(); });
    return Status::Ok();
  }

  int port() const override { return port_; }
  int backend() const override { return backend_.load(); }
  void switch_backend(int b) override { backend_.store(b); }
  int connections_to(int b) const override {
    std::lock_guard lock(mu_);
    auto it = counts_.find(b);
    return it == counts_.end() ? 0 : it->second;
  }
  void close() override {
    if (closed_.exchange(true)) return;
    if (!thread_.joinable()) return;
    std::promise<void> done;
    asio::post(io_, [this, &done] {
      error_code ec;
      acceptor_.close(ec);
      std::vector<std::shared_ptr<Session>> open;
      {
        std::lock_guard lock(mu_);
        for (auto& w : sessions_)
          if (auto s = w.lock()) open.push_back(s);
      }
      for (auto& s : open) s->close();
      done.set_value();
    });
    done.get_future().wait();
    io_.stop();
    thread_.join();
  }

  const ProxyOptions& options() const { return options_; }
  void session_started(int backend) {
    std::lock_guard lock(mu_);
    ++counts_[backend];
  }
  void session_finished(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(mu_);
    if (--counts_[s->backend()] <= 0) counts_.erase(s->backend());
    sessions_.erase(s);
  }

 private:
  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket sock) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (!ec) {
        auto s = std::make_shared<Session>(*this, std::move(sock), backend_.load());
        {
          std::lock_guard lock(mu_);
          sessions_.insert(s);
        }
        session_started(s->backend());
        s->start();
      }
      accept();
    });
  }

  ProxyOptions options_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<int> backend_;
  std::atomic<bool> closed_{false};
  int port_ = 0;
  mutable std::mutex mu_;
  std::map<int, int> counts_;  // guarded by mu_
  std::set<std::weak_ptr<Session>, std::owner_less<std::weak_ptr<Session>>>
      sessions_;  // io thread + mu_
};

void Session::start() {
  const auto& o = owner_.options();
  up_.resize(o.buffer_size);
  down_.resize(o.buffer_size);
  arm(o.connect_timeout);
  const tcp::endpoint ep(asio::ip::address_v4::loopback(), static_cast<unsigned short>(backend_));
  backend_sock_.async_connect(ep, [self = shared_from_this()](error_code ec) {
    if (ec) {
      self->close();
      self->open_directions_ = 1;
      self->direction_done();
      return;
    }
    self->arm(self->owner_.options().idle_timeout);
    self->pump(self->client_, self->backend_sock_, self->up_);
    self->pump(self->backend_sock_, self->client_, self->down_);
  });
}

void Session::pump(tcp::socket& from, tcp::socket& to, std::vector<char>& buf) {
  from.async_read_some(asio::buffer(buf),
                       [self = shared_from_this(), &from, &to, &buf](error_code ec, std::size_t n) {
                         if (ec) {
                           error_code ignored;
                           if (ec == asio::error::eof) {
                             // Half-close: the peer finished sending; tell the other side, keep the
                             // reverse open.
                             to.shutdown(tcp::socket::shutdown_send, ignored);
                           } else {
                             self->close();
                           }
                           self->direction_done();
                           return;
                         }
                         self->arm(self->owner_.options().idle_timeout);
                         asio::async_write(to, asio::buffer(buf.data(), n),
                                           [self, &from, &to, &buf](error_code wec, std::size_t) {
                                             if (wec) {
                                               self->close();
                                               self->direction_done();
                                               return;
                                             }
                                             self->pump(from, to, buf);
                                           });
                       });
}

void Session::direction_done() {
  if (--open_directions_ > 0 || finished_) return;
  finished_ = true;
  close();
  owner_.session_finished(shared_from_this());
}

}  // namespace

Result<std::unique_ptr<PortProxy>> PortProxy::start(int listen_port, int backend_port,
                                                    ProxyOptions options) {
  auto p = std::make_unique<ProxyImpl>(options, backend_port);
  if (auto st = p->listen(listen_port); !st.ok()) return st.error();
  return std::unique_ptr<PortProxy>(std::move(p));
}

}  // namespace berth::agent
