#include "support/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace berth::testing {

namespace {

constexpr int kPollMs = 100;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Closes with SO_LINGER 0: the peer sees a reset, as from a port nobody serves any more.
void reset_close(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

const char* reason_of(int status) {
  switch (status) {
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

}  // namespace

std::unique_ptr<FaultProxy> FaultProxy::start(std::uint16_t target_port) {
  std::unique_ptr<FaultProxy> p(new FaultProxy());
  p->target_port_ = target_port;
  p->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->listen_fd_ < 0) throw std::runtime_error("fault proxy: socket failed");
  int one = 1;
  ::setsockopt(p->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(0);
  if (::bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(p->listen_fd_, 64) != 0) {
    throw std::runtime_error(std::string("fault proxy: bind/listen failed: ") +
                             std::strerror(errno));
  }
  socklen_t len = sizeof a;
  ::getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  p->port_ = ntohs(a.sin_port);
  p->acceptor_ = std::thread([raw = p.get()] { raw->accept_loop(); });
  return p;
}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void FaultProxy::set_mode(Mode mode) { mode_ = mode; }

void FaultProxy::set_delay(std::chrono::milliseconds delay) { delay_ms_ = delay.count(); }

void FaultProxy::answer_with(HttpAnswer answer) {
  {
    std::lock_guard lock(mu_);
    answer_ = std::move(answer);
  }
  mode_ = Mode::kHttpStatus;
}

void FaultProxy::cut() { ++cut_generation_; }

void FaultProxy::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, kPollMs) <= 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++accepted_;
    const Mode m = mode();
    if (m == Mode::kRefuse) {
      reset_close(client);
      continue;
    }
    std::lock_guard lock(mu_);
    if (m == Mode::kHttpStatus) {
      threads_.emplace_back([this, client] { answer_http(client); });
    } else {
      threads_.emplace_back([this, client] { relay(client); });
    }
  }
}

void FaultProxy::relay(int client) {
  const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(target_port_);
  if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (server >= 0) ::close(server);
    reset_close(client);
    return;
  }
  ++open_;
  const int generation = cut_generation_.load();
  bool reset = false;
  char buf[16384];
  while (!stopping_) {
    const Mode m = mode();
    if (cut_generation_.load() != generation || m == Mode::kRefuse || m == Mode::kHttpStatus) {
      reset = true;
      break;
    }
    if (m == Mode::kStall) {
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
      continue;
    }
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    if (::poll(fds, 2, kPollMs) <= 0) continue;
    bool done = false;
    for (int i = 0; i < 2 && !done; ++i) {
      if (fds[i].revents == 0) continue;
      const int from = fds[i].fd;
      const int to = i == 0 ? server : client;
      const ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        done = true;
        break;
      }
      if (mode() == Mode::kDelay) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_.load()));
      }
      if (!write_all(to, buf, static_cast<std::size_t>(n))) {
        done = true;
        break;
      }
      bytes_ += n;
    }
    if (done) break;
  }
  --open_;
  if (reset) {
    reset_close(client);
    reset_close(server);
  } else {
    ::close(client);
    ::close(server);
  }
}

void FaultProxy::answer_http(int client) {
  HttpAnswer answer;
  {
    std::lock_guard lock(mu_);
    answer = answer_;
  }
  // Bounded reads and writes: a client that never speaks does not keep the thread.
  timeval tv{5, 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL* ssl = nullptr;
  if (ctx != nullptr && SSL_CTX_use_certificate_chain_file(ctx, answer.cert_file.c_str()) == 1 &&
      SSL_CTX_use_PrivateKey_file(ctx, answer.key_file.c_str(), SSL_FILETYPE_PEM) == 1) {
    ssl = SSL_new(ctx);
  }
  if (ssl != nullptr && SSL_set_fd(ssl, client) == 1 && SSL_accept(ssl) == 1) {
    // Answer each request on the connection until the client closes it or a read times out;
    // Connection: close asks it to reconnect for the next one.
    std::string in;
    char buf[4096];
    while (!stopping_) {
      const int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, static_cast<std::size_t>(n));
      const auto end = in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      in.erase(0, end + 4);
      const std::string body =
          "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"injected fault\"}]}";
      std::string response =
          "HTTP/1.1 " + std::to_string(answer.status) + " " + reason_of(answer.status) +
          "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\nConnection: close\r\n";
      if (answer.retry_after_seconds >= 0) {
        response += "Retry-After: " + std::to_string(answer.retry_after_seconds) + "\r\n";
      }
      response += "\r\n" + body;
      SSL_write(ssl, response.data(), static_cast<int>(response.size()));
      ++answered_;
      break;
    }
    SSL_shutdown(ssl);
  }
  ERR_clear_error();
  if (ssl != nullptr) SSL_free(ssl);
  if (ctx != nullptr) SSL_CTX_free(ctx);
  ::close(client);
}

}  // namespace berth::testing
