// The agent link over real loopback sockets with certificates from berth's own CA code.
#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>

#include "agentlink/client.h"
#include "agentlink/server.h"
#include "common/log.h"
#include "crypto/certs.h"
#include "support/link_certs.h"

using namespace berth;
using namespace berth::agentlink;
using namespace std::chrono_literals;

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Certificates come from the helpers shared with the access suite (support/link_certs.h).
crypto::PemPair make_ca(const std::string& name) { return testing::link_ca(name); }
crypto::PemPair issue(const crypto::PemPair& ca, const crypto::CertRequest& req) {
  return testing::link_issue(ca, req);
}
crypto::PemPair server_cert(const crypto::PemPair& ca, const std::string& ip = "127.0.0.1") {
  return testing::link_server_cert(ca, ip);
}
crypto::PemPair agent_cert(const crypto::PemPair& ca, const std::string& name,
                           const std::string& zone) {
  return testing::link_agent_cert(ca, name, zone);
}

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// What the controller side saw, filled from the server's callback thread.
struct ServerLog {
  std::mutex mu;
  std::vector<std::pair<AgentIdentity, Hello>> hellos;
  std::vector<std::pair<std::string, Message>> messages;
  std::vector<std::string> disconnects;

  std::size_t hello_count() {
    std::lock_guard l(mu);
    return hellos.size();
  }
  std::size_t message_count() {
    std::lock_guard l(mu);
    return messages.size();
  }
  std::size_t disconnect_count() {
    std::lock_guard l(mu);
    return disconnects.size();
  }
};

ServerOptions server_options(const crypto::PemPair& trusted_ca, const crypto::PemPair& cert,
                             ServerLog& log, const std::string& listen = "127.0.0.1:0") {
  ServerOptions o;
  o.listen = listen;
  o.ca_cert_pem = trusted_ca.cert_pem;
  o.server_cert_pem = cert.cert_pem;
  o.server_key_pem = cert.key_pem;
  o.heartbeat_interval = 200ms;
  o.idle_timeout = 2s;
  o.handshake_timeout = 2s;
  o.write_timeout = 2s;
  o.on_hello = [&log](const AgentIdentity& id, const Hello& h) {
    std::lock_guard l(log.mu);
    log.hellos.emplace_back(id, h);
  };
  o.on_message = [&log](const std::string& agent, const Message& m) {
    std::lock_guard l(log.mu);
    log.messages.emplace_back(agent, m);
  };
  o.on_disconnect = [&log](const std::string& agent) {
    std::lock_guard l(log.mu);
    log.disconnects.push_back(agent);
  };
  return o;
}

struct AgentLog {
  std::mutex mu;
  std::vector<Message> messages;
  std::atomic<int> hello_calls{0};
  std::size_t count() {
    std::lock_guard l(mu);
    return messages.size();
  }
};

ClientOptions client_options(std::uint16_t port, const crypto::PemPair& trusted_ca,
                             const crypto::PemPair& cert, AgentLog& log,
                             const std::string& hello_name = "vm-1") {
  ClientOptions o;
  o.url = "wss://127.0.0.1:" + std::to_string(port);
  o.ca_cert_pem = trusted_ca.cert_pem;
  o.cert_pem = cert.cert_pem;
  o.key_pem = cert.key_pem;
  o.backoff.initial = 100ms;
  o.backoff.cap = 1s;
  o.heartbeat_interval = 200ms;
  o.idle_timeout = 2s;
  o.connect_timeout = 2s;
  o.write_timeout = 2s;
  o.hello = [&log, hello_name] {
    ++log.hello_calls;
    return Hello{hello_name,
                 "eu-1",
                 "0.1.0",
                 {ObservedApp{"svc-1", "rev-1", "sha256:aa", 41000, "berth-svc-1", true, "t-0"}}};
  };
  o.on_message = [&log](const Message& m) {
    std::lock_guard l(log.mu);
    log.messages.push_back(m);
  };
  return o;
}

DeployTask deploy_with_password() {
  DeployTask d;
  d.task_id = "t-1";
  d.service_id = "svc-1";
  d.revision_id = "rev-2";
  d.revision = 2;
  d.image_ref = "127.0.0.1:5000/acme/web:2";
  d.image_digest = "sha256:bb";
  d.pull_ref = "127.0.0.1:5000/acme/web@sha256:bb";
  d.container_port = 8080;
  d.auth = RegistryAuth{{"127.0.0.1:5000"}, "alice", Secret("pa55-w0rd")};
  return d;
}

// Captures log lines for the duration of a test.
struct LogCapture {
  std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();
  LogCapture() {
    log::set_sink([mu = mu, lines = lines](std::string_view line) {
      std::lock_guard l(*mu);
      lines->emplace_back(line);
    });
  }
  ~LogCapture() { log::set_sink({}); }
  bool contains(const std::string& a, const std::string& b = "") { return count(a, b) > 0; }
  int count(const std::string& a, const std::string& b = "") {
    std::lock_guard l(*mu);
    int n = 0;
    for (const auto& line : *lines)
      if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) ++n;
    return n;
  }
  std::string all() {
    std::lock_guard l(*mu);
    std::string out;
    for (const auto& line : *lines) out += line + "\n";
    return out;
  }
};

// Asserts that a connection attempt did not get through: no hello reached the controller and the
// client never saw its hello accepted. It waits for the refusal (log lines holding `a` and `b`)
// twice: the client was refused, backed off and was refused again, so an attempt that could get
// through had its chance and the assertions below are not made too early.
void require_refused(Server& server, ServerLog& slog, Client& client, LogCapture& logs,
                     const std::string& a, const std::string& b) {
  REQUIRE(wait_until([&] { return logs.count(a, b) >= 2; }, 10s));
  CHECK(slog.hello_count() == 0);
  CHECK(server.connected().empty());
  CHECK_FALSE(client.connected());
}

}  // namespace

TEST_CASE("An agent's hello reaches the controller with the identity from its certificate",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());
  REQUIRE(server.port() != 0);

  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  REQUIRE(wait_until([&] { return slog.hello_count() == 1; }));
  REQUIRE(wait_until([&] { return client.connected(); }));

  std::lock_guard l(slog.mu);
  const auto& [identity, hello] = slog.hellos[0];
  CHECK(identity.name == "vm-1");
  CHECK(identity.zone == "eu-1");
  auto info = crypto::inspect_certificate(agent.cert_pem);
  REQUIRE(info.ok());
  CHECK(identity.fingerprint == info->fingerprint);
  CHECK(hello.name == "vm-1");
  REQUIRE(hello.apps.size() == 1);
  CHECK(hello.apps[0].service_id == "svc-1");
  CHECK(server.connected() == std::vector<std::string>{"vm-1"});
}

TEST_CASE(
    "A deploy from the controller reaches the agent and the agent's ack and result reach the "
    "controller",
    "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  REQUIRE(wait_until([&] { return client.connected() && !server.connected().empty(); }));

  REQUIRE(server.send("vm-1", deploy_with_password()).ok());
  REQUIRE(wait_until([&] { return alog.count() == 1; }));
  {
    std::lock_guard l(alog.mu);
    const auto* d = std::get_if<DeployTask>(&alog.messages[0]);
    REQUIRE(d != nullptr);
    CHECK(d->task_id == "t-1");
    CHECK(d->pull_ref == "127.0.0.1:5000/acme/web@sha256:bb");
    REQUIRE(d->auth.has_value());
    CHECK(d->auth->username == "alice");
    CHECK(d->auth->password.reveal() == "pa55-w0rd");
  }

  REQUIRE(client.send(Ack{"t-1"}).ok());
  REQUIRE(client.send(TaskResult{"t-1", "svc-1", "rev-2", true, "", "sha256:bb", 41000, {}}).ok());
  REQUIRE(wait_until([&] { return slog.message_count() == 2; }));
  std::lock_guard l(slog.mu);
  CHECK(slog.messages[0].first == "vm-1");
  CHECK(std::get<Ack>(slog.messages[0].second).task_id == "t-1");
  const auto& result = std::get<TaskResult>(slog.messages[1].second);
  CHECK(result.ok);
  CHECK(result.stable_port == 41000);
}

TEST_CASE("Heartbeats keep an idle connection open past the idle timeout",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  ServerLog slog;
  auto so = server_options(ca, srv, slog);
  so.idle_timeout = 600ms;
  so.heartbeat_interval = 100ms;
  Server server(so);
  REQUIRE(server.start().ok());
  AgentLog alog;
  auto co = client_options(server.port(), ca, agent, alog);
  co.idle_timeout = 600ms;
  co.heartbeat_interval = 100ms;
  Client client(co);
  REQUIRE(client.start().ok());
  REQUIRE(wait_until([&] { return client.connected(); }));
  // Idle well past both idle timeouts: the connection must stay up the whole time, not only at
  // the end, so watch it rather than look once after a sleep.
  const auto idle_until = std::chrono::steady_clock::now() + 3 * so.idle_timeout;
  const bool dropped =
      wait_until([&] { return !client.connected() || slog.disconnect_count() > 0; },
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     idle_until - std::chrono::steady_clock::now()));
  CHECK_FALSE(dropped);
  CHECK(slog.hello_count() == 1);
  CHECK(slog.disconnect_count() == 0);
  CHECK(alog.count() == 0);  // heartbeats never reach on_message
  // The same connection still carries a message after the idle period: it was never replaced.
  REQUIRE(server.send("vm-1", deploy_with_password()).ok());
  REQUIRE(wait_until([&] { return alog.count() == 1; }));
  CHECK(slog.hello_count() == 1);
}

TEST_CASE("When the controller restarts the agent reconnects with backoff and re-sends its hello",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  LogCapture logs;
  ServerLog first_log;
  auto first = std::make_unique<Server>(server_options(ca, srv, first_log));
  REQUIRE(first->start().ok());
  const auto port = first->port();
  AgentLog alog;
  Client client(client_options(port, ca, agent, alog));
  REQUIRE(client.start().ok());
  REQUIRE(wait_until([&] { return client.connected() && first_log.hello_count() == 1; }));
  CHECK(alog.hello_calls == 1);

  first->stop();
  REQUIRE(wait_until([&] { return !client.connected(); }));
  CHECK(client.send(Ack{"t-1"}).error().code == ErrorCode::kUnavailable);
  // Let a few connection attempts fail against the closed port.
  REQUIRE(wait_until([&] { return logs.count("agent link connect failed") >= 2; }));
  const int calls_while_down = alog.hello_calls;

  ServerLog second_log;
  Server second(server_options(ca, srv, second_log, "127.0.0.1:" + std::to_string(port)));
  REQUIRE(second.start().ok());
  REQUIRE(wait_until([&] { return second_log.hello_count() == 1 && client.connected(); }));
  // hello() is only asked for once a connection is open, so the down period asked for nothing.
  CHECK(calls_while_down == 1);
  CHECK(alog.hello_calls == 2);
  std::lock_guard l(second_log.mu);
  CHECK(second_log.hellos[0].first.name == "vm-1");
  CHECK(second_log.hellos[0].second.apps.size() == 1);
}

TEST_CASE("A second connection for the same agent replaces the first without a disconnect",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());
  AgentLog old_log;
  auto old_options = client_options(server.port(), ca, agent, old_log);
  old_options.backoff.initial = 30s;  // stays away once replaced
  old_options.backoff.cap = 30s;
  old_options.backoff.jitter = 0;
  Client old_client(old_options);
  REQUIRE(old_client.start().ok());
  REQUIRE(wait_until([&] { return old_client.connected(); }));

  AgentLog new_log;
  Client new_client(client_options(server.port(), ca, agent, new_log));
  REQUIRE(new_client.start().ok());
  REQUIRE(wait_until([&] { return new_client.connected() && slog.hello_count() == 2; }));
  REQUIRE(wait_until([&] { return !old_client.connected(); }));
  CHECK(server.connected() == std::vector<std::string>{"vm-1"});
  CHECK(slog.disconnect_count() == 0);

  REQUIRE(server.send("vm-1", RestartTask{"t-7", "svc-1"}).ok());
  REQUIRE(wait_until([&] { return new_log.count() == 1; }));
  CHECK(old_log.count() == 0);
}

TEST_CASE("Sending to an agent that is not connected is unavailable so the outbox retries later",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());

  auto never = server.send("vm-1", deploy_with_password());
  REQUIRE_FALSE(never.ok());
  CHECK(never.error().code == ErrorCode::kUnavailable);
  CHECK(never.error().retryable());

  AgentLog alog;
  auto client = std::make_unique<Client>(client_options(server.port(), ca, agent, alog));
  REQUIRE(client->start().ok());
  REQUIRE(wait_until([&] { return !server.connected().empty(); }));
  client->stop();
  REQUIRE(wait_until([&] { return slog.disconnect_count() == 1; }));
  {
    std::lock_guard l(slog.mu);
    CHECK(slog.disconnects[0] == "vm-1");
  }
  CHECK(server.connected().empty());
  auto gone = server.send("vm-1", deploy_with_password());
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == ErrorCode::kUnavailable);
}

TEST_CASE("A client certificate from another CA is refused at the handshake",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto rogue_ca = make_ca("rogue CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(rogue_ca, "vm-1", "eu-1");
  LogCapture logs;
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  require_refused(server, slog, client, logs, "agent link TLS handshake failed",
                  "unable to get local issuer certificate");
  INFO(logs.all());
  CHECK(logs.contains("agent link TLS handshake failed", "unable to get local issuer certificate"));
}

TEST_CASE("An expired client certificate is refused at the handshake", "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  crypto::CertRequest req;
  req.common_name = "vm-1";
  req.client = true;
  req.not_before_offset_s = -7200;
  req.not_after_offset_s = -3600;
  auto agent = issue(ca, req);
  LogCapture logs;
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  require_refused(server, slog, client, logs, "agent link TLS handshake failed",
                  "certificate has expired");
  INFO(logs.all());
  CHECK(logs.contains("agent link TLS handshake failed", "certificate has expired"));
}

TEST_CASE("A hello whose name differs from the certificate CN is refused",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  LogCapture logs;
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog, "vm-2"));
  REQUIRE(client.start().ok());
  require_refused(server, slog, client, logs, "name differs from certificate", "vm-2");
  CHECK(alog.hello_calls >= 1);  // it did connect and speak
  INFO(logs.all());
  CHECK(logs.contains("name differs from certificate", "vm-2"));
}

TEST_CASE("The agent refuses a controller certificate from another CA",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto rogue_ca = make_ca("rogue CA");
  auto rogue_srv = server_cert(rogue_ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  LogCapture logs;
  ServerLog slog;
  Server server(server_options(ca, rogue_srv, slog));  // would accept the agent
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  require_refused(server, slog, client, logs, "agent link connect failed", "TLS handshake");
  CHECK(alog.hello_calls == 0);
  INFO(logs.all());
  CHECK(logs.contains("agent link connect failed", "TLS handshake"));
}

TEST_CASE("The agent refuses a controller certificate that does not name the dialled address",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca, "127.0.0.2");
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  LogCapture logs;
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  require_refused(server, slog, client, logs, "agent link connect failed", "TLS handshake");
  CHECK(alog.hello_calls == 0);
  INFO(logs.all());
  CHECK(logs.contains("agent link connect failed", "TLS handshake"));
}

TEST_CASE("A plaintext client writing a WebSocket upgrade gets no WebSocket",
          "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());

  net::io_context ioc;
  boost::beast::tcp_stream stream(ioc);
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port()));
  const std::string upgrade =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  net::write(stream.socket(), net::buffer(upgrade));

  std::string received;
  boost::system::error_code ec;
  std::array<char, 4096> buf{};
  stream.expires_after(5s);
  for (;;) {
    std::size_t n = 0;
    bool done = false;
    stream.async_read_some(net::buffer(buf), [&](boost::system::error_code e, std::size_t bytes) {
      ec = e;
      n = bytes;
      done = true;
    });
    ioc.restart();
    ioc.run();
    REQUIRE(done);
    received.append(buf.data(), n);
    if (ec) break;
  }
  // The server closed the connection (it did not leave it hanging until our deadline) ...
  CHECK(ec != boost::beast::error::timeout);
  // ... and never spoke HTTP, let alone switched protocols.
  CHECK(received.find("HTTP/1.1") == std::string::npos);
  CHECK(received.find("101") == std::string::npos);
  CHECK(slog.hello_count() == 0);
}

TEST_CASE("A TLS 1.2 client is refused at the handshake", "[agentlink][integration]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());

  net::ssl::context ctx(net::ssl::context::tls_client);
  REQUIRE(SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_2_VERSION) == 1);
  ctx.set_verify_mode(net::ssl::verify_none);
  ctx.use_certificate_chain(net::buffer(agent.cert_pem));
  ctx.use_private_key(net::buffer(agent.key_pem.reveal().data(), agent.key_pem.size()),
                      net::ssl::context::pem);

  net::io_context ioc;
  net::ssl::stream<tcp::socket> stream(ioc, ctx);
  stream.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port()));
  boost::system::error_code ec;
  bool done = false;
  stream.async_handshake(net::ssl::stream_base::client, [&](boost::system::error_code e) {
    ec = e;
    done = true;
  });
  ioc.run_for(5s);
  REQUIRE(done);
  CHECK(ec);  // the handshake failed ...
  CHECK(slog.hello_count() == 0);

  // ... while the same certificate over TLS 1.3 completes it, so the version is the reason.
  net::ssl::context ctx13(net::ssl::context::tls_client);
  ctx13.set_verify_mode(net::ssl::verify_none);
  ctx13.use_certificate_chain(net::buffer(agent.cert_pem));
  ctx13.use_private_key(net::buffer(agent.key_pem.reveal().data(), agent.key_pem.size()),
                        net::ssl::context::pem);
  net::ssl::stream<tcp::socket> stream13(ioc, ctx13);
  stream13.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port()));
  done = false;
  stream13.async_handshake(net::ssl::stream_base::client, [&](boost::system::error_code e) {
    ec = e;
    done = true;
  });
  ioc.restart();
  ioc.run_for(5s);
  REQUIRE(done);
  CHECK_FALSE(ec);
  CHECK(std::string(SSL_get_version(stream13.native_handle())) == "TLSv1.3");
}

namespace {

// The SHA-256 fingerprint of the certificate the server presents to a fresh TLS handshake.
std::string presented_fingerprint(std::uint16_t port, const crypto::PemPair& ca,
                                  const crypto::PemPair& agent) {
  net::io_context ioc;
  net::ssl::context ctx(net::ssl::context::tls_client);
  ctx.add_certificate_authority(net::buffer(ca.cert_pem));
  ctx.use_certificate_chain(net::buffer(agent.cert_pem));
  ctx.use_private_key(net::buffer(agent.key_pem.reveal().data(), agent.key_pem.size()),
                      net::ssl::context::pem);
  ctx.set_verify_mode(net::ssl::verify_peer);
  net::ssl::stream<tcp::socket> stream(ioc, ctx);
  stream.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  stream.handshake(net::ssl::stream_base::client);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      SSL_get1_peer_certificate(stream.native_handle()), &X509_free);
  REQUIRE(cert);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(X509_digest(cert.get(), EVP_sha256(), md, &len) == 1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  boost::system::error_code ignored;
  stream.next_layer().close(ignored);
  return out;
}

std::string fingerprint_of(const crypto::PemPair& pair) { return testing::link_fingerprint(pair); }

}  // namespace

TEST_CASE("A message whose frame exceeds the link's limit is refused by send and the link stays up",
          "[agentlink][integration][frame-limit]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  ServerLog slog;
  Server server(server_options(ca, srv, slog));
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  REQUIRE(wait_until([&] { return client.connected() && !server.connected().empty(); }));

  auto huge_deploy = deploy_with_password();
  huge_deploy.env["BIG"] = std::string(kMaxFrameBytes, 'x');
  auto refused = server.send("vm-1", huge_deploy);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::kPayloadTooLarge);
  CHECK_FALSE(refused.error().retryable());

  TaskResult huge_result{"t-1", "svc-1", "rev-2", false, "failed", "", 0, {}};
  core::DeployLogEntry entry;
  entry.message = std::string(kMaxFrameBytes, 'y');
  huge_result.logs.push_back(entry);
  auto refused_back = client.send(huge_result);
  REQUIRE_FALSE(refused_back.ok());
  CHECK(refused_back.error().code == ErrorCode::kPayloadTooLarge);

  // Neither side dropped the link: messages that fit still flow, and nothing reconnected.
  REQUIRE(server.send("vm-1", deploy_with_password()).ok());
  REQUIRE(client.send(Ack{"t-1"}).ok());
  REQUIRE(wait_until([&] { return alog.count() == 1 && slog.message_count() == 1; }));
  CHECK(slog.disconnect_count() == 0);
  CHECK(slog.hello_count() == 1);
  CHECK(alog.hello_calls == 1);
}

TEST_CASE("A refused agent is closed after the upgrade and its log says why",
          "[agentlink][integration][revocation]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  LogCapture logs;
  ServerLog slog;
  auto so = server_options(ca, srv, slog);
  so.refusal_reason = [](const AgentIdentity& id) {
    return id.name == "vm-1" ? std::string("agent vm-1 is revoked by the controller") : "";
  };
  Server server(so);
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  REQUIRE(wait_until(
      [&] { return logs.contains("the controller refused this agent", "is revoked by the"); }));
  CHECK(slog.hello_count() == 0);
  CHECK(server.connected().empty());
  CHECK_FALSE(client.connected());
  CHECK(logs.contains("agent refused", "vm-1"));
}

TEST_CASE("A connected agent that becomes refused is disconnected and told why",
          "[agentlink][integration][revocation]") {
  auto ca = make_ca("berth test CA");
  auto srv = server_cert(ca);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  LogCapture logs;
  ServerLog slog;
  auto revoked = std::make_shared<std::atomic<bool>>(false);
  auto so = server_options(ca, srv, slog);
  so.maintenance_interval = 100ms;
  so.refusal_reason = [revoked](const AgentIdentity&) {
    return revoked->load() ? std::string("agent vm-1 is revoked by the controller") : "";
  };
  Server server(so);
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  REQUIRE(wait_until([&] { return client.connected() && slog.hello_count() == 1; }));

  revoked->store(true);
  REQUIRE(wait_until([&] { return slog.disconnect_count() == 1; }));
  REQUIRE(wait_until(
      [&] { return logs.contains("agent link closed by the controller", "is revoked by the"); }));
  // It keeps trying, and is refused every time.
  REQUIRE(wait_until([&] { return logs.contains("the controller refused this agent"); }));
  CHECK(server.connected().empty());
  CHECK(slog.hello_count() == 1);
}

TEST_CASE("The server renews its certificate before it expires and new handshakes present it",
          "[agentlink][integration][renewal]") {
  auto ca = make_ca("berth test CA");
  crypto::CertRequest short_lived;
  short_lived.common_name = "berth-controller";
  short_lived.ip_addresses = {"127.0.0.1"};
  short_lived.server = true;
  short_lived.not_before_offset_s = 0;
  short_lived.not_after_offset_s = 60;
  auto first = issue(ca, short_lived);
  auto agent = agent_cert(ca, "vm-1", "eu-1");
  auto first_info = crypto::inspect_certificate(first.cert_pem);
  REQUIRE(first_info.ok());

  ServerLog slog;
  auto so = server_options(ca, first, slog);
  so.maintenance_interval = 50ms;
  // The injected clock starts in the first half of the certificate's life.
  auto now = std::make_shared<std::atomic<std::int64_t>>(first_info->not_before_unix + 10);
  so.now_unix_s = [now] { return now->load(); };
  auto renewed = std::make_shared<std::vector<std::string>>();
  auto renew_mu = std::make_shared<std::mutex>();
  so.renew_certificate = [ca, renewed, renew_mu]() -> Result<crypto::PemPair> {
    auto next = crypto::issue_certificate(ca, [] {
      crypto::CertRequest req;
      req.common_name = "berth-controller";
      req.ip_addresses = {"127.0.0.1"};
      req.server = true;
      req.not_after_offset_s = 3600;
      return req;
    }());
    if (next) {
      std::lock_guard l(*renew_mu);
      renewed->push_back(next->cert_pem);
    }
    return next;
  };
  auto renewed_count = [renewed, renew_mu] {
    std::lock_guard l(*renew_mu);
    return renewed->size();
  };
  Server server(so);
  REQUIRE(server.start().ok());
  AgentLog alog;
  Client client(client_options(server.port(), ca, agent, alog));
  REQUIRE(client.start().ok());
  REQUIRE(wait_until([&] { return client.connected(); }));
  CHECK(renewed_count() == 0);
  CHECK(presented_fingerprint(server.port(), ca, agent) == fingerprint_of(first));

  // Less than a third of the 60 s left: the next tick renews.
  now->store(first_info->not_after_unix - 19);
  REQUIRE(wait_until([&] { return renewed_count() == 1; }));
  std::string renewed_fingerprint;
  {
    std::lock_guard l(*renew_mu);
    auto info = crypto::inspect_certificate(renewed->front());
    REQUIRE(info.ok());
    renewed_fingerprint = info->fingerprint;
  }
  REQUIRE(wait_until(
      [&] { return presented_fingerprint(server.port(), ca, agent) == renewed_fingerprint; }));
  // The renewed certificate is not due at the same clock, so it is not renewed again, and the
  // connection made before the renewal is still up.
  std::this_thread::sleep_for(300ms);
  CHECK(renewed_count() == 1);
  CHECK(client.connected());
  CHECK(slog.disconnect_count() == 0);
}
