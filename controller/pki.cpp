#include "pki.h"

#include <arpa/inet.h>

#include <cctype>
#include <fstream>

namespace berth::controller {
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kCaValidity = 10LL * 365 * 24 * 3600;
constexpr std::int64_t kServerValidity = 90LL * 24 * 3600;

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool is_label(const std::string& s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return false;
    }
  }
  return s.front() != '-' && s.back() != '-';
}

}  // namespace

Result<Pki> ensure_pki(const fs::path& data_dir, const std::vector<std::string>& extra_names) {
  const fs::path dir = data_dir / "pki";
  Pki pki;
  auto ca = crypto::read_pem_files(dir, "ca");
  if (ca.ok()) {
    pki.ca = std::move(ca).value();
  } else if (ca.error().code == ErrorCode::kNotFound && !fs::exists(dir / "ca.crt") &&
             !fs::exists(dir / "ca.key")) {
    // Only a CA that is wholly absent is created: half of one is an operator's problem to see,
    // not something to paper over with a new CA that no agent trusts.
    auto created = crypto::create_ca("berth agent-link CA", kCaValidity);
    if (!created.ok()) return created.error();
    if (Status st = crypto::write_pem_files(dir, "ca", *created); !st.ok()) return st.error();
    pki.ca = std::move(created).value();
  } else {
    return ca.error();
  }

  crypto::CertRequest req;
  req.common_name = "berth-controller";
  req.server = true;
  req.ip_addresses = {"127.0.0.1", "::1"};
  req.dns_names = {"localhost"};
  for (const auto& n : extra_names) {
    if (n.empty()) continue;
    (is_ip(n) ? req.ip_addresses : req.dns_names).push_back(n);
  }
  req.not_after_offset_s = kServerValidity;
  auto server = crypto::issue_certificate(pki.ca, req);
  if (!server.ok()) return server.error();
  pki.server = std::move(server).value();
  return pki;
}

Status issue_agent_credentials(const crypto::PemPair& ca, const std::string& name,
                               const std::string& zone, const fs::path& out_dir,
                               std::int64_t valid_seconds) {
  if (!is_label(name, 63)) {
    return make_error(
        ErrorCode::kValidation,
        "agent name must be a DNS label: lowercase letters, digits and '-', at most 63", "name");
  }
  if (!is_label(zone, 63)) {
    return make_error(ErrorCode::kValidation,
                      "zone must be lowercase letters, digits and '-', at most 63", "zone");
  }
  crypto::CertRequest req;
  req.common_name = name;
  req.zone = zone;
  req.client = true;
  req.not_after_offset_s = valid_seconds;
  auto cert = crypto::issue_certificate(ca, req);
  if (!cert.ok()) return cert.error();
  if (Status st = crypto::write_pem_files(out_dir, "agent", *cert); !st.ok()) return st;
  // Only the CA certificate (public) goes beside them, never the CA key.
  const fs::path ca_path = out_dir / "ca.crt";
  const fs::path tmp = out_dir / "ca.crt.tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << ca.cert_pem;
    out.flush();
    if (!out) return make_error(ErrorCode::kResourceExhausted, "could not write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, ca_path, ec);
  if (ec)
    return make_error(ErrorCode::kInternal,
                      "could not write " + ca_path.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace berth::controller
