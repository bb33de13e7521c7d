#pragma once
// The controller's PKI for the agent link, kept in DATA_DIR/pki: a CA created on first start
// (ca.crt, ca.key 0600), a server certificate re-issued at every start for the names the agent
// endpoint answers to, and agent credentials issued on request (agent-credentials command and
// the local agent).
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"
#include "crypto/certs.h"

namespace berth::controller {

struct Pki {
  crypto::PemPair ca;
  crypto::PemPair server;
};

// Loads (or creates) the CA and issues a fresh server certificate for 127.0.0.1, ::1, localhost
// and `extra_names` (IP literals become IP SANs, anything else DNS SANs).
Result<Pki> ensure_pki(const std::filesystem::path& data_dir,
                       const std::vector<std::string>& extra_names);

// Writes ca.crt, agent.crt and agent.key (0600) for agent `name` in `zone` into out_dir (0700).
// The name must be a DNS label (it is the agent's identity on the link) and the zone a
// non-empty label of [a-z0-9-].
Status issue_agent_credentials(const crypto::PemPair& ca, const std::string& name,
                               const std::string& zone, const std::filesystem::path& out_dir,
                               std::int64_t valid_seconds);

}  // namespace berth::controller
