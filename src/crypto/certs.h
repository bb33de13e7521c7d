#pragma once
// X.509 for the agent link: the controller's CA (created in its data directory on first start),
// the controller's server certificate and agents' client certificates issued by that CA.
// Keys are ECDSA P-256. PEM in, PEM out; private keys are Secrets.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/secret.h"

namespace berth::crypto {

struct PemPair {
  std::string cert_pem;
  Secret key_pem;
};

struct CertRequest {
  std::string common_name;                // agent name, or "berth-controller"
  std::string zone;                       // agents: carried in the subject's OU
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries ("127.0.0.1")
  bool server = false;                    // extendedKeyUsage serverAuth
  bool client = false;                    // extendedKeyUsage clientAuth
  // Validity relative to now, in seconds (tests make expired certificates with negatives).
  std::int64_t not_before_offset_s = -300;
  std::int64_t not_after_offset_s = 365LL * 24 * 3600;
};

struct CertInfo {
  std::string common_name;
  std::string zone;         // subject OU, empty when none
  std::string fingerprint;  // SHA-256 of the DER, lowercase hex
  std::int64_t not_before_unix = 0;
  std::int64_t not_after_unix = 0;
};

Result<PemPair> create_ca(std::string_view common_name, std::int64_t valid_seconds);
Result<PemPair> issue_certificate(const PemPair& ca, const CertRequest& request);
Result<CertInfo> inspect_certificate(std::string_view cert_pem);

// Writes NAME.crt (0644) and NAME.key (0600) into dir (created 0700 when missing).
Status write_pem_files(const std::filesystem::path& dir, std::string_view name,
                       const PemPair& pair);
Result<PemPair> read_pem_files(const std::filesystem::path& dir, std::string_view name);

}  // namespace berth::crypto
