#pragma once
// Internal to the agent link: the TLS settings, peer identity and address parsing that the
// server and the client share. Includes Asio, so only the module's .cpp files include it.
#include <boost/asio/ssl.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agentlink/server.h"
#include "common/result.h"
#include "common/secret.h"

namespace berth::agentlink::detail {

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};
// "HOST:PORT" or "[IPV6]:PORT", port 0-65535.
Result<HostPort> split_host_port(std::string_view text);

// A TLS 1.3-only context with ca_pem as the only trust anchor, our own chain + key, peer
// certificates required, and the peer's certificate purpose checked (client certificates for
// the server, server certificates for the client).
Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(bool server,
                                                                    const std::string& ca_pem,
                                                                    const std::string& cert_pem,
                                                                    const Secret& key_pem);

// The verified peer certificate's identity; nullopt when the peer presented none or it has no
// CN.
std::optional<AgentIdentity> peer_identity(SSL* ssl);

std::int64_t now_unix_ms();

}  // namespace berth::agentlink::detail
