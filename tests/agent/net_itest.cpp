#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "agent/health_probe.h"
#include "agent/port_proxy.h"
#include "net_helpers.h"

using namespace berth::agent;
using namespace berth::agent::testing;
using namespace std::chrono_literals;

namespace {

ProbeSpec fast_probe(int port, std::string path) {
  ProbeSpec s;
  s.port = port;
  s.path = std::move(path);
  s.attempt_timeout = 500ms;
  s.interval = 100ms;
  s.deadline = 1500ms;
  return s;
}

int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("An HTTP probe is healthy on a 2xx or 3xx answer", "[probe]") {
  TcpServer ok(http_responder(200, "fine"));
  TcpServer redirect(http_responder(302, ""));
  AsioHealthProber prober;
  auto a = prober.probe(fast_probe(ok.port(), "/health"));
  CHECK(a.healthy);
  CHECK(a.attempts == 1);
  CHECK(prober.probe(fast_probe(redirect.port(), "/")).healthy);
}

TEST_CASE("An HTTP probe answered 404 fails with the status in its reason", "[probe]") {
  TcpServer missing(http_responder(404, "no"));
  AsioHealthProber prober;
  auto r = prober.probe(fast_probe(missing.port(), "/health"));
  CHECK_FALSE(r.healthy);
  CHECK(r.attempts >= 2);
  CHECK_THAT(r.last_error, Catch::Contains("404"));
}

TEST_CASE("A TCP probe is healthy when the port accepts and fails when nothing listens",
          "[probe]") {
  TcpServer any([](int) {});
  AsioHealthProber prober;
  CHECK(prober.probe(fast_probe(any.port(), "")).healthy);
  auto r = prober.probe(fast_probe(closed_port(), ""));
  CHECK_FALSE(r.healthy);
  CHECK_THAT(r.last_error, Catch::Contains("refused"));
}

TEST_CASE("A probe attempt against a server that never answers times out", "[probe]") {
  TcpServer silent([](int) { std::this_thread::sleep_for(3000ms); });
  ProbeSpec s = fast_probe(silent.port(), "/");
  s.attempt_timeout = 200ms;
  s.deadline = 300ms;
  const auto start = std::chrono::steady_clock::now();
  auto r = AsioHealthProber().probe(s);
  CHECK_FALSE(r.healthy);
  // Without the deadline the probe would wait for the server's 3 s silence to end.
  CHECK(std::chrono::steady_clock::now() - start < 2500ms);
}

TEST_CASE("The healthy threshold needs that many consecutive successes", "[probe]") {
  TcpServer ok(http_responder(200, "fine"));
  ProbeSpec s = fast_probe(ok.port(), "/");
  s.healthy_threshold = 3;
  auto r = AsioHealthProber().probe(s);
  CHECK(r.healthy);
  CHECK(r.attempts == 3);
}

TEST_CASE("The proxy forwards a connection to the backend and the answer back", "[proxy]") {
  TcpServer blue(http_responder(200, "blue"));
  auto proxy = PortProxy::start(0, blue.port());
  REQUIRE(proxy.ok());
  CHECK((*proxy)->port() != 0);
  auto r = http_get((*proxy)->port());
  CHECK(r.status == 200);
  CHECK(r.body == "blue");
}

TEST_CASE("After a switch new connections reach green while an open one finishes on blue",
          "[proxy]") {
  // blue answers only after the client sends "go", so the connection stays open across the switch.
  TcpServer blue([](int fd) {
    std::string got;
    char buf[64];
    timeval tv{3, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (got.find("go") == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      got.append(buf, static_cast<std::size_t>(n));
    }
    send_all(fd, "blue");
  });
  TcpServer green(http_responder(200, "green"));
  auto proxy = PortProxy::start(0, blue.port());
  REQUIRE(proxy.ok());
  const int port = (*proxy)->port();

  const int open = connect_loopback(port);
  REQUIRE(open >= 0);
  for (int i = 0; i < 100 && (*proxy)->connections_to(blue.port()) == 0; ++i)
    std::this_thread::sleep_for(10ms);
  CHECK((*proxy)->connections_to(blue.port()) == 1);

  (*proxy)->switch_backend(green.port());
  CHECK((*proxy)->backend() == green.port());
  CHECK(http_get(port).body == "green");

  send_all(open, "go");
  ::shutdown(open, SHUT_WR);
  CHECK(read_all(open) == "blue");
  ::close(open);
  for (int i = 0; i < 100 && (*proxy)->connections_to(blue.port()) > 0; ++i)
    std::this_thread::sleep_for(10ms);
  CHECK((*proxy)->connections_to(blue.port()) == 0);
}

TEST_CASE("The proxy forwards a half-close: the backend sees EOF and its reply still arrives",
          "[proxy]") {
  // An uppercasing server that replies only after reading to EOF.
  TcpServer upper([](int fd) {
    timeval tv{3, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string all = read_all(fd);
    for (char& c : all) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    send_all(fd, all);
  });
  auto proxy = PortProxy::start(0, upper.port());
  REQUIRE(proxy.ok());
  const int fd = connect_loopback((*proxy)->port());
  REQUIRE(fd >= 0);
  // More than one proxy buffer, so the bounded buffer has to cycle.
  std::string big(100 * 1024, 'a');
  send_all(fd, big);
  ::shutdown(fd, SHUT_WR);
  const std::string back = read_all(fd);
  ::close(fd);
  CHECK(back.size() == big.size());
  CHECK(back == std::string(big.size(), 'A'));
}

TEST_CASE("A closed proxy refuses new connections and the same port can be reopened", "[proxy]") {
  TcpServer blue(http_responder(200, "blue"));
  auto proxy = PortProxy::start(0, blue.port());
  REQUIRE(proxy.ok());
  const int port = (*proxy)->port();
  (*proxy)->close();
  CHECK(connect_loopback(port) < 0);
  auto again = PortProxy::start(port, blue.port());
  REQUIRE(again.ok());
  CHECK(http_get(port).body == "blue");
  auto taken = PortProxy::start(port, blue.port());
  CHECK_FALSE(taken.ok());
}
