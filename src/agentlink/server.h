#pragma once
// The controller side of the agent link: a WebSocket server over TLS 1.3 that only accepts
// agents presenting a client certificate issued by the controller's CA.
//
// Security contract:
//   - TLS 1.3 only; plaintext and TLS <= 1.2 clients fail at the TLS handshake.
//   - The client certificate is verified against ca_cert_pem only (no system roots); a missing,
//     expired or foreign certificate fails the handshake.
//   - The agent's identity comes from its certificate (name = subject CN, zone = subject OU,
//     SHA-256 fingerprint of the DER). The first frame must be a Hello whose name equals the
//     certificate CN, otherwise the connection is closed and no callback runs.
//   - A second accepted connection for the same agent name replaces the first (the old one is
//     closed without an on_disconnect, because the agent is still connected).
//   - Refusal (revocation): when refusal_reason returns a reason for an agent's identity, its
//     connection is refused right after the WebSocket upgrade with a close frame (policy error)
//     carrying the reason, so the agent can log why; no callback runs for it. An agent already
//     connected when it becomes refused is closed the same way at the next maintenance tick,
//     with an on_disconnect.
//   - Certificate renewal: with renew_certificate set, the server checks its certificate at
//     start and every maintenance_interval; once a third or less of its validity is left, it
//     calls renew_certificate() and every later TLS handshake presents the new certificate
//     (connections already up keep theirs). A failed renewal is logged and retried at the next
//     tick; the old certificate stays in use meanwhile.
//   - Frame limit: send() refuses a message whose frame exceeds kMaxFrameBytes with
//     kPayloadTooLarge (the agent would refuse the frame and drop the link). It is a permanent
//     error for that message: re-sending it can never succeed, so the caller must fail the task
//     or shrink the message, not retry it.
//
// Threading: one I/O thread runs the sockets. Callbacks run on one separate callback thread, in
// the order the events happened, never concurrently with each other; they may block (that only
// delays later callbacks) and may call send()/connected(), but must not call stop().
// refusal_reason, renew_certificate and now_unix_s run on the I/O thread: keep them quick (a
// stat and a small file read, one key generation).
// Heartbeat frames are answered internally and never reach on_message.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agentlink/limits.h"
#include "agentlink/messages.h"
#include "common/result.h"
#include "common/secret.h"
#include "crypto/certs.h"

namespace berth::agentlink {

struct AgentIdentity {
  std::string name;         // certificate subject CN
  std::string zone;         // certificate subject OU (empty when none)
  std::string fingerprint;  // SHA-256 of the certificate DER, lowercase hex
};

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT ("[::1]:0" for IPv6); port 0 picks one
  std::string ca_cert_pem;             // the controller CA: the only trust anchor for agents
  std::string server_cert_pem;         // may carry intermediates after the leaf
  Secret server_key_pem;
  // The server sends a Heartbeat this often; a connection that receives nothing (frames or
  // pongs) for idle_timeout is closed. idle_timeout should be > 2 * heartbeat_interval.
  std::chrono::milliseconds heartbeat_interval{10'000};
  std::chrono::milliseconds idle_timeout{30'000};
  // TCP accept -> TLS -> WebSocket upgrade -> first Hello must complete within this.
  std::chrono::milliseconds handshake_timeout{10'000};
  // A frame that cannot be written within this closes the connection.
  std::chrono::milliseconds write_timeout{10'000};

  std::function<void(const AgentIdentity&, const Hello&)> on_hello;
  std::function<void(const std::string& agent, const Message&)> on_message;
  std::function<void(const std::string& agent)> on_disconnect;

  // Empty when the agent may connect; otherwise one sentence the agent is told (e.g. "agent
  // certificate revoked"). Consulted at every handshake and, for connected agents, at every
  // maintenance tick.
  std::function<std::string(const AgentIdentity&)> refusal_reason;
  // Issues a new server certificate (from the controller CA) when the current one is due.
  std::function<Result<crypto::PemPair>()> renew_certificate;
  std::chrono::milliseconds maintenance_interval{5'000};
  // Unix seconds for the renewal decision; the system clock when empty (tests inject one).
  std::function<std::int64_t()> now_unix_s;
};

// True when a certificate valid from not_before to not_after (Unix seconds) has a third or less
// of its validity left at `now` (or is already expired). Pure.
bool certificate_due_for_renewal(std::int64_t not_before, std::int64_t not_after, std::int64_t now);

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads the certificates, binds and starts the I/O thread. Errors: kInvalidArgument (bad
  // listen address or PEM), kUnavailable (address in use), kFailedPrecondition (started twice).
  Status start();
  // The bound port (useful with port 0); 0 before start().
  std::uint16_t port() const;

  // Queues one message for the agent and returns; delivery is not confirmed here (the agent
  // acks task ids). kUnavailable when the agent has no accepted connection; a frame queued on a
  // connection that then breaks is lost, so callers keep tasks in an outbox until acked.
  // kPayloadTooLarge when the encoded frame exceeds kMaxFrameBytes (permanent: see above);
  // kInvalidArgument for a message type the controller does not send. Thread-safe.
  Status send(const std::string& agent, const Message& message);
  // Names of agents with an accepted connection (Hello received and matching the certificate).
  std::vector<std::string> connected() const;

  // Closes every connection and joins the threads. Idempotent; no callback runs after it returns.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace berth::agentlink
