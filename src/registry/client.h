#pragma once
// OCI distribution client, controller side (SPEC section 6): resolves an image reference to the
// manifest digest the agent will pull, authenticating the way registries ask (Basic, or Bearer
// through the registry's token endpoint).
//
// Contract:
// - Blocking; safe to call from several threads at once. Idempotent: it only reads.
// - Connections are reused (HTTP/1.1 keep-alive): after an answer read whole, the connection
//   goes to a process-wide pool of idle connections, at most 4 per endpoint (scheme, host,
//   port and the CA file that verified it), each for at most 30 s; a connection verified with
//   a trust store since rebuilt is not reused. A request on a pooled connection the peer has
//   closed is sent once more on a new one (HEAD and GET only). Credentials are sent with every
//   request, never remembered per connection, and nothing else is cached between calls: no
//   digest, no token, no verdict (a moved tag resolves to its new digest on the next call).
//   Trust stores are shared, see trust_store_builds.
// - Every network step (resolve, connect, TLS handshake, write, read) shares one deadline of
//   `options.timeout` from the start of the call.
// - TLS is always verified: the system trust store, plus `options.ca_files[host]` for the
//   registry host on connections to the registry's own endpoint only. A token endpoint on
//   another host (or port) gets only its own entry, keyed by its authority ("auth.example:443"
//   is not implied: the key is the realm URL's host[:port] as written). Plain HTTP only for
//   loopback hosts and only with `plain_http_for_loopback`. Credentials are never sent over
//   plain HTTP to a non-loopback host.
// - The password leaves the process only in an Authorization header to the registry (Basic) or
//   to its token endpoint (Bearer), and to a token endpoint only when it is the registry's own
//   host and port or `options.trusted_token_realms` (or the built-in list, protocol.h) names
//   it for this registry; otherwise the call fails with kFailedPrecondition before anything
//   is sent there. Nothing here logs the password or the Authorization header.
// Errors:
//   kPermissionDenied  the registry or token endpoint refused the credentials (or, without
//                      credentials, refused anonymous access)
//   kNotFound          the repository or tag/digest does not exist ("image <ref> not found")
//   kUnavailable       connection refused, DNS failure, 5xx, 429: retry later
//   kDeadlineExceeded  the deadline passed
//   kFailedPrecondition TLS verification failed, unsupported auth scheme, an untrusted token
//                      realm, other 4xx
//   kDataLoss          the registry answered with a digest other than the one asked for
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/secret.h"
#include "core/image_ref.h"
#include "registry/protocol.h"

namespace berth::registry {

struct ManifestInfo {
  std::string digest;      // "sha256:<64 hex>"
  std::string media_type;  // Content-Type of the manifest (OCI index/manifest, Docker list/v2)
  std::string body;        // the manifest's bytes (fetch_manifest only)
};

struct RegistryCredential {
  std::string username;
  Secret password;
};

struct RegistryOptions {
  std::map<std::string, std::string> ca_files;  // registry host ("127.0.0.1:5000") -> CA PEM path
  std::chrono::milliseconds timeout{30000};
  bool plain_http_for_loopback = false;
  // Token realms trusted with a registry's password besides its own host (see protocol.h).
  TrustedRealms trusted_token_realms;
};

// HEAD /v2/<repository>/manifests/<digest, else tag, else "latest">.
Result<ManifestInfo> resolve_digest(const core::ImageRef& ref,
                                    const std::optional<RegistryCredential>& cred,
                                    const RegistryOptions& options);

// How many trust stores (system roots + one registry CA file) this process has built. Resolves
// share a store per CA file and rebuild it only when the file or the system bundle changes on
// disk; exposed so tests can check that. Thread-safe.
std::uint64_t trust_store_builds();

// How many connections (TCP, and TLS when https) this process has opened to registries and
// token endpoints; exposed so tests can check that connections are reused. Thread-safe.
std::uint64_t connections_opened();

// GET /v2/<repository>/manifests/<reference>: the manifest's bytes, with the same rules,
// deadline and errors as resolve_digest. `digest` is the hash of the bytes received, so a
// pinned reference whose bytes hash to something else is kDataLoss. Used by the agent to learn
// an image's layer sizes before it pulls (pull progress, docs/agent.md).
Result<ManifestInfo> fetch_manifest(const core::ImageRef& ref,
                                    const std::optional<RegistryCredential>& cred,
                                    const RegistryOptions& options);

}  // namespace berth::registry
