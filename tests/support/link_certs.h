#pragma once
// Agent-link certificates for tests, from berth's own CA code (crypto/certs.h, what
// controller/pki issues with): a CA, a controller server certificate, agent client
// certificates, any of them expired or from another CA on request. Shared by the agent-link
// suite (tests/agentlink) and the access suite (tests/access). Header-only; failures FAIL the
// running Catch2 test.
#include <cstdint>
#include <string>

#include <catch2/catch.hpp>

#include "crypto/certs.h"

namespace berth::testing {

inline crypto::PemPair link_issue(const crypto::PemPair& ca, const crypto::CertRequest& req) {
  auto cert = crypto::issue_certificate(ca, req);
  if (!cert) FAIL("issue_certificate: " << cert.error().message);
  return std::move(cert).value();
}

inline crypto::PemPair link_ca(const std::string& name) {
  auto ca = crypto::create_ca(name, 3600);
  if (!ca) FAIL("create_ca: " << ca.error().message);
  return std::move(ca).value();
}

inline crypto::PemPair link_server_cert(const crypto::PemPair& ca,
                                        const std::string& ip = "127.0.0.1") {
  crypto::CertRequest req;
  req.common_name = "berth-controller";
  req.ip_addresses = {ip};
  req.server = true;
  return link_issue(ca, req);
}

// An agent's client certificate (CN = name, OU = zone), valid from now-5 min for `valid_s`.
// A negative `expired_s` makes one that expired that many seconds ago instead.
inline crypto::PemPair link_agent_cert(const crypto::PemPair& ca, const std::string& name,
                                       const std::string& zone, std::int64_t expired_s = 0) {
  crypto::CertRequest req;
  req.common_name = name;
  req.zone = zone;
  req.client = true;
  if (expired_s < 0) {
    req.not_before_offset_s = 2 * expired_s;
    req.not_after_offset_s = expired_s;
  }
  return link_issue(ca, req);
}

inline std::string link_fingerprint(const crypto::PemPair& pair) {
  auto info = crypto::inspect_certificate(pair.cert_pem);
  if (!info) FAIL("inspect_certificate: " << info.error().message);
  return info->fingerprint;
}

}  // namespace berth::testing
