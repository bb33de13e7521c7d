#include "pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace berth::controller {
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kCaValidity = 10LL * 365 * 24 * 3600;

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
    auto created = create_agent_ca();
    if (!created.ok()) return created.error();
    if (Status st = crypto::write_pem_files(dir, "ca", *created); !st.ok()) return st.error();
    pki.ca = std::move(created).value();
  } else {
    return ca.error();
  }

  auto server = issue_server_certificate(pki.ca, extra_names);
  if (!server.ok()) return server.error();
  pki.server = std::move(server).value();
  return pki;
}

Result<crypto::PemPair> create_agent_ca() {
  return crypto::create_ca("berth agent-link CA", kCaValidity);
}

Result<crypto::PemPair> issue_server_certificate(const crypto::PemPair& ca,
                                                 const std::vector<std::string>& extra_names,
                                                 std::int64_t valid_seconds) {
  crypto::CertRequest req;
  req.common_name = "berth-controller";
  req.server = true;
  req.ip_addresses = {"127.0.0.1", "::1"};
  req.dns_names = {"localhost"};
  for (const auto& n : extra_names) {
    if (n.empty()) continue;
    (is_ip(n) ? req.ip_addresses : req.dns_names).push_back(n);
  }
  req.not_after_offset_s = valid_seconds;
  return crypto::issue_certificate(ca, req);
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

namespace {

bool is_fingerprint(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c)) && !(c >= 'a' && c <= 'f')) return false;
  return true;
}

}  // namespace

Status validate_revocation(const Revocation& r) {
  if (!is_label(r.name, 63))
    return make_error(
        ErrorCode::kValidation,
        "agent name must be a DNS label: lowercase letters, digits and '-', at most 63", "name");
  if (!r.fingerprint.empty() && !is_fingerprint(r.fingerprint))
    return make_error(ErrorCode::kValidation,
                      "fingerprint must be the certificate's SHA-256 as 64 lowercase hex digits",
                      "fingerprint");
  return Status::Ok();
}

std::string revocation_line(const Revocation& revocation) {
  std::string line = revocation.name;
  if (!revocation.fingerprint.empty()) line += " " + revocation.fingerprint;
  return line + "\n";
}

namespace {

// The revocation list is not secret, but it is the controller's: nothing beyond a sane size.
constexpr std::size_t kMaxRevocationFile = 4 * 1024 * 1024;

}  // namespace

fs::path revocation_file(const fs::path& data_dir) { return data_dir / "pki" / "revoked-agents"; }

Result<std::vector<Revocation>> parse_revocations(std::string_view text) {
  std::vector<Revocation> out;
  std::istringstream in{std::string(text)};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    Revocation r;
    std::string extra;
    if (!(fields >> r.name)) continue;  // blank or comment
    fields >> r.fingerprint;
    if (fields >> extra || !validate_revocation(r).ok())
      return make_error(ErrorCode::kDataLoss, "the revocation list has an invalid entry on line " +
                                                  std::to_string(number) +
                                                  " (expected NAME [SHA256-FINGERPRINT])");
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<Revocation>> read_revocations(const fs::path& data_dir) {
  const fs::path file = revocation_file(data_dir);
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(file, ec) && !ec) return std::vector<Revocation>{};
    return make_error(ErrorCode::kUnavailable, "cannot read " + file.string());
  }
  std::string text;
  text.resize(kMaxRevocationFile + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxRevocationFile)
    return make_error(ErrorCode::kDataLoss, file.string() + " is larger than 4 MiB");
  return parse_revocations(text);
}

Status revoke_agent(const fs::path& data_dir, const Revocation& revocation) {
  if (Status st = validate_revocation(revocation); !st.ok()) return st;
  const fs::path file = revocation_file(data_dir);
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec)
    return make_error(ErrorCode::kUnavailable, "cannot create " + file.parent_path().string());
  // One line appended in one write(): a concurrent revoke-agent appends its own line, and the
  // running serve never reads half of one.
  const std::string line = revocation_line(revocation);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(ErrorCode::kUnavailable, "cannot open " + file.string());
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return make_error(ErrorCode::kResourceExhausted, "cannot write " + file.string());
  return Status::Ok();
}

std::string revocation_reason(const std::vector<Revocation>& list, const std::string& name,
                              const std::string& fingerprint) {
  for (const auto& r : list) {
    if (r.name != name) continue;
    if (r.fingerprint.empty())
      return "agent " + name + " is revoked by the controller (revoke-agent)";
    if (r.fingerprint == fingerprint)
      return "this certificate of agent " + name + " is revoked by the controller (revoke-agent)";
  }
  return {};
}

Result<std::unique_ptr<RevocationWatcher>> RevocationWatcher::open(const fs::path& data_dir) {
  std::unique_ptr<RevocationWatcher> watcher(new RevocationWatcher(revocation_file(data_dir)));
  std::lock_guard lock(watcher->mu_);
  if (Status st = watcher->refresh_locked(); !st.ok()) return st.error();
  return watcher;
}

Status RevocationWatcher::refresh_locked() {
  struct stat now {};
  if (::stat(file_.c_str(), &now) != 0) {
    if (errno != ENOENT)
      return make_error(ErrorCode::kUnavailable, "cannot stat " + file_.string());
    // Removed: nothing is revoked any more.
    if (seen_) log::info("agent revocation list removed", {{"file", file_.string()}});
    list_.clear();
    seen_ = false;
    return Status::Ok();
  }
  if (seen_ && now.st_ino == stat_.st_ino && now.st_size == stat_.st_size &&
      now.st_mtim.tv_sec == stat_.st_mtim.tv_sec && now.st_mtim.tv_nsec == stat_.st_mtim.tv_nsec)
    return Status::Ok();
  auto list = read_revocations(file_.parent_path().parent_path());
  if (!list.ok()) return list.error();
  list_ = std::move(list).value();
  stat_ = now;
  seen_ = true;
  log::info("agent revocation list loaded", {{"file", file_.string()}, {"entries", list_.size()}});
  return Status::Ok();
}

std::string RevocationWatcher::reason(const std::string& name, const std::string& fingerprint) {
  std::lock_guard lock(mu_);
  if (Status st = refresh_locked(); !st.ok())
    log::error("agent revocation list unreadable; keeping the last one read",
               {{"error", st.error().message}});
  return revocation_reason(list_, name, fingerprint);
}

}  // namespace berth::controller
