#pragma once
// Where the bearer token (or an exec plugin's client certificate) of each request comes from.
//
// - a static token from the kubeconfig;
// - a token file (tokenFile, or the in-cluster service-account token), re-read once a `period`
//   (a minute by default, as client-go does: kubelet rotates projected tokens well before they
//   expire) and at once after a 401; a read that fails keeps the last good token;
// - an exec plugin (client.authentication.k8s.io/v1 or v1beta1): run without a terminal with
//   KUBERNETES_EXEC_INFO (an ExecCredential with spec.interactive=false, and spec.cluster when
//   provideClusterInfo), its stdout read as an ExecCredential, the result cached until its
//   expirationTimestamp (forever without one) and fetched afresh after a 401. Its stderr goes
//   to our log as a trimmed field. The plugin runs under the calling request's deadline, and
//   never longer than a minute; past it, it is killed.
//
// The token lives in berth::Secret from the moment it is read: never in argv, never in the
// environment of this process (so no other child inherits it), never in a log line.
//
// Threading: get() and invalidate() may be called from any thread; a source fetches one
// credential at a time (concurrent callers wait for the one fetch).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/secret.h"
#include "kube/config.h"

namespace berth::kube {

struct Credential {
  Secret token;                 // "" when this source gives a client certificate only
  std::string client_cert_pem;  // from an exec plugin; "" = the ClusterConfig's own (if any)
  Secret client_key_pem;
  // Changes whenever the credential does, so a 401 answered to an old one is not taken as a
  // reason to fetch again.
  std::uint64_t generation = 0;
};

class CredentialSource {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  virtual ~CredentialSource() = default;
  // The credential to use now. Errors: kUnauthenticated (no credential could be obtained:
  // unreadable file, plugin failed or returned garbage), kDeadlineExceeded (the plugin did not
  // finish before `deadline`).
  virtual Result<Credential> get(Deadline deadline) = 0;
  // The server answered 401 to a request made with `generation`. Returns true when the next
  // get() may return something else (the file is re-read, the plugin re-run), false when
  // nothing can change (a static token, or the credential changed since).
  virtual bool invalidate(std::uint64_t generation) = 0;
};

using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;
using WallNow = std::function<std::chrono::system_clock::time_point()>;

std::unique_ptr<CredentialSource> make_static_token_source(Secret token);
std::unique_ptr<CredentialSource> make_token_file_source(
    std::string path, std::chrono::steady_clock::duration period = std::chrono::minutes(1),
    SteadyNow now = [] { return std::chrono::steady_clock::now(); });
std::unique_ptr<CredentialSource> make_exec_source(
    ExecConfig exec, const ClusterConfig& cluster,
    WallNow now = [] { return std::chrono::system_clock::now(); });
// The source the ClusterConfig asks for; nullptr when it has no token source (a client
// certificate alone, or no credential at all).
std::unique_ptr<CredentialSource> make_credential_source(const ClusterConfig& config);

// Pure pieces of the exec protocol (unit-tested).
struct ExecCredential {
  Secret token;
  std::string client_cert_pem;
  Secret client_key_pem;
  std::optional<std::chrono::system_clock::time_point> expiry;
};
// Decodes a plugin's stdout. Errors (kUnauthenticated) say what is wrong without quoting it.
Result<ExecCredential> parse_exec_credential(std::string_view output,
                                             const std::string& api_version);
// The KUBERNETES_EXEC_INFO value for the plugin (it holds no secret: the CA is public).
std::string exec_info(const ExecConfig& exec, const ClusterConfig& cluster);
// RFC 3339 ("2026-11-27T20:00:00Z", "...T20:00:00.5+01:00"); nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace berth::kube
