#pragma once
// The agent side of the agent link: dials the controller (wss://HOST:PORT), presents the
// agent's client certificate, verifies the controller (chain to ca_cert_pem only, and the
// certificate must name HOST: IP SAN for an IP literal, DNS name otherwise), sends a Hello and
// keeps the connection up, reconnecting with exponential backoff until stop().
//
// Threading: one I/O thread. options.hello is called on the I/O thread at every connect (keep it
// quick: it returns the agent's full observed state). on_message runs on a separate callback
// thread, in order, never concurrently; it may block and may call send(), but not stop().
// Heartbeat frames are handled internally and never reach on_message.
//
// Refusal: when the controller closes the connection with a reason (a revoked agent, a hello
// it refused), the client logs the reason as a warning ("the controller refused this agent" /
// "agent link closed by the controller") and keeps reconnecting with backoff, so an agent whose
// revocation is lifted comes back by itself.
//
// Frame limit: send() refuses a message whose frame exceeds kMaxFrameBytes with
// kPayloadTooLarge, because the controller would refuse the frame and drop the link. It is
// permanent for that message: the caller must shrink it (truncate logs at the source), never
// re-send it as is.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agentlink/limits.h"
#include "agentlink/messages.h"
#include "common/result.h"
#include "common/secret.h"

namespace berth::agentlink {

struct Backoff {
  std::chrono::milliseconds initial{200};
  std::chrono::milliseconds cap{10'000};
  double jitter = 0.5;  // the delay is drawn from [d * (1 - jitter), d]
};

// Delay before reconnect attempt `attempt` (0 = first retry): initial * 2^attempt capped at
// cap, then scaled by (1 - jitter * random01). Pure; random01 is in [0, 1].
std::chrono::milliseconds reconnect_delay(const Backoff& backoff, int attempt, double random01);

struct Endpoint {
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 0;
  std::string target = "/";
};
// Parses "wss://HOST:PORT[/path]". Plain ws:// is refused: the link is always TLS.
Result<Endpoint> parse_url(std::string_view url);

struct ClientOptions {
  std::string url;          // wss://HOST:PORT
  std::string ca_cert_pem;  // the controller CA
  std::string cert_pem;     // this agent's client certificate (CN = agent name)
  Secret key_pem;
  std::function<Hello()> hello;  // full observed state, at every connect
  std::function<void(const Message&)> on_message;
  Backoff backoff;
  std::chrono::milliseconds heartbeat_interval{10'000};
  std::chrono::milliseconds idle_timeout{30'000};
  std::chrono::milliseconds connect_timeout{10'000};  // resolve + TCP + TLS + upgrade
  std::chrono::milliseconds write_timeout{10'000};
};

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();  // stop()s
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Validates the options and starts connecting in the background. kInvalidArgument on a bad
  // url or PEM; kFailedPrecondition when started twice.
  Status start();
  // Closes the connection, stops reconnecting, joins the threads. Idempotent.
  void stop();

  // Queues a message on the current connection. kUnavailable while not connected; a frame
  // queued on a connection that then breaks is lost (the controller re-sends unacked tasks and
  // the agent re-reports in its next Hello). kPayloadTooLarge when the frame exceeds
  // kMaxFrameBytes (see above). Thread-safe.
  Status send(const Message& message);
  // True once the controller accepted this connection's Hello (it answers with a heartbeat)
  // and until the connection breaks.
  bool connected() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace berth::agentlink
