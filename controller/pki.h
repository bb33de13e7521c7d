#pragma once
// The controller's PKI for the agent link, kept in DATA_DIR/pki: a CA created on first start
// (ca.crt, ca.key 0600), a server certificate issued at every start (and again by the running
// link before it expires, see issue_server_certificate) for the names the agent endpoint answers
// to, agent credentials issued on request (agent-credentials command and the local agent), and
// the revocation list of agents the link refuses (revoked-agents, see docs/agent-link.md).
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "crypto/certs.h"

namespace berth::controller {

struct Pki {
  crypto::PemPair ca;
  crypto::PemPair server;
};

// Validity of the agent-link server certificate; the link renews it with a third left.
inline constexpr std::int64_t kServerCertValidity = 90LL * 24 * 3600;

// Loads (or creates) the CA and issues a fresh server certificate for 127.0.0.1, ::1, localhost
// and `extra_names` (IP literals become IP SANs, anything else DNS SANs).
Result<Pki> ensure_pki(const std::filesystem::path& data_dir,
                       const std::vector<std::string>& extra_names);

// A new agent-link CA (what ensure_pki creates on first start; Kubernetes mode keeps it in the
// key Secret instead of DATA_DIR/pki).
Result<crypto::PemPair> create_agent_ca();

// The server certificate alone, from the CA (what ensure_pki issues; the agent link calls it
// again through ServerOptions::renew_certificate).
Result<crypto::PemPair> issue_server_certificate(const crypto::PemPair& ca,
                                                 const std::vector<std::string>& extra_names,
                                                 std::int64_t valid_seconds = kServerCertValidity);

// One entry of DATA_DIR/pki/revoked-agents: every certificate of agent `name`, or only the one
// with `fingerprint` (SHA-256 of the DER, lowercase hex) when that is set.
struct Revocation {
  std::string name;
  std::string fingerprint;
};

std::filesystem::path revocation_file(const std::filesystem::path& data_dir);
// Parses the file's text: one "NAME [FINGERPRINT]" per line, '#' comments and blank lines
// ignored. kDataLoss naming the line for anything else.
Result<std::vector<Revocation>> parse_revocations(std::string_view text);
// The whole list; empty when the file does not exist.
Result<std::vector<Revocation>> read_revocations(const std::filesystem::path& data_dir);
// kValidation for a name that is not a DNS label or a fingerprint that is not 64 lowercase hex
// digits (what every entry of the list must be, in either mode).
Status validate_revocation(const Revocation& revocation);
// One entry as a line of the list ("NAME[ FINGERPRINT]\n").
std::string revocation_line(const Revocation& revocation);
// Appends one entry (a line, O_APPEND, fsynced): safe while serve runs. kValidation as
// validate_revocation.
Status revoke_agent(const std::filesystem::path& data_dir, const Revocation& revocation);
// The sentence the agent is told when an entry matches, empty otherwise.
std::string revocation_reason(const std::vector<Revocation>& list, const std::string& name,
                              const std::string& fingerprint);

// The revocation list as the running link sees it: re-read when the file's size, mtime or inode
// changes (one stat per call), so `revoke-agent` takes effect without a restart. A file that
// turns unreadable or malformed keeps the last good list and logs an error. Thread-safe.
class RevocationWatcher {
 public:
  // Fails when the file exists but cannot be read or parsed: serve should not start with a
  // revocation list it cannot honour.
  static Result<std::unique_ptr<RevocationWatcher>> open(const std::filesystem::path& data_dir);
  std::string reason(const std::string& name, const std::string& fingerprint);

 private:
  explicit RevocationWatcher(std::filesystem::path file) : file_(std::move(file)) {}
  Status refresh_locked();

  std::filesystem::path file_;
  std::mutex mu_;
  std::vector<Revocation> list_;
  bool seen_ = false;
  struct stat stat_ {};
};

// Writes ca.crt, agent.crt and agent.key (0600) for agent `name` in `zone` into out_dir (0700).
// The name must be a DNS label (it is the agent's identity on the link) and the zone a
// non-empty label of [a-z0-9-].
Status issue_agent_credentials(const crypto::PemPair& ca, const std::string& name,
                               const std::string& zone, const std::filesystem::path& out_dir,
                               std::int64_t valid_seconds);

}  // namespace berth::controller
