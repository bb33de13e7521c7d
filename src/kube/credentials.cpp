#include "kube/credentials.h"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/base64.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "common/text.h"

namespace berth::kube {
namespace {

using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

// What an exec plugin may print before we stop reading (a certificate chain fits easily).
constexpr std::size_t kMaxPluginOutput = 1 << 20;
// However long the request may take (a watch may take minutes), a plugin that has not answered
// in this long is stuck.
constexpr std::chrono::milliseconds kMaxPluginRun{60000};
// The longest stderr excerpt that reaches the log.
constexpr std::size_t kMaxStderrLogged = 2048;

class StaticTokenSource : public CredentialSource {
 public:
  explicit StaticTokenSource(Secret token) { credential_.token = std::move(token); }
  Result<Credential> get(Deadline) override { return credential_; }
  bool invalidate(std::uint64_t) override { return false; }

 private:
  Credential credential_;
};

class TokenFileSource : public CredentialSource {
 public:
  TokenFileSource(std::string path, SteadyClock::duration period, SteadyNow now)
      : path_(std::move(path)), period_(period), now_(std::move(now)) {}

  Result<Credential> get(Deadline) override {
    std::lock_guard lock(mu_);
    const auto now = now_();
    if (!loaded_ || stale_ || now >= next_read_) {
      auto read = read_token();
      if (read.ok()) {
        if (!loaded_ || !read->equals(credential_.token)) {
          credential_.token = std::move(*read);
          ++credential_.generation;
        }
        loaded_ = true;
      } else if (loaded_) {
        // A rotation in progress (the kubelet swaps the file by symlink) must not break
        // requests that the old token still serves.
        log::warn("kube token file unreadable, keeping the last token",
                  {{"path", path_}, {"error", read.error().message}});
      } else {
        return read.take_error();
      }
      stale_ = false;
      next_read_ = now + period_;
    }
    return credential_;
  }

  bool invalidate(std::uint64_t generation) override {
    std::lock_guard lock(mu_);
    if (generation != credential_.generation) return true;  // already changed since
    stale_ = true;
    return true;
  }

 private:
  Result<Secret> read_token() const {
    std::ifstream in(path_, std::ios::binary);
    if (!in) return make_error(ErrorCode::kUnauthenticated, "cannot read the token file " + path_);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string raw = ss.str();
    std::string token(trim_ascii_whitespace(raw));
    wipe_string(raw);
    Secret secret(token);
    wipe_string(token);
    if (secret.empty())
      return make_error(ErrorCode::kUnauthenticated, "the token file " + path_ + " is empty");
    return secret;
  }

  const std::string path_;
  const SteadyClock::duration period_;
  const SteadyNow now_;
  std::mutex mu_;
  Credential credential_;
  bool loaded_ = false;
  bool stale_ = false;
  SteadyClock::time_point next_read_;
};

class ExecSource : public CredentialSource {
 public:
  ExecSource(ExecConfig exec, const ClusterConfig& cluster, WallNow now)
      : exec_(std::move(exec)), info_(exec_info(exec_, cluster)), now_(std::move(now)) {}

  Result<Credential> get(Deadline deadline) override {
    std::lock_guard lock(mu_);
    if (cached_ && !stale_ && (!expiry_ || now_() < *expiry_)) return credential_;
    auto fresh = run(deadline);
    if (!fresh.ok()) return fresh.take_error();
    credential_.token = std::move(fresh->token);
    credential_.client_cert_pem = std::move(fresh->client_cert_pem);
    credential_.client_key_pem = std::move(fresh->client_key_pem);
    ++credential_.generation;
    expiry_ = fresh->expiry;
    cached_ = true;
    stale_ = false;
    return credential_;
  }

  bool invalidate(std::uint64_t generation) override {
    std::lock_guard lock(mu_);
    if (generation != credential_.generation) return true;
    stale_ = true;
    return true;
  }

 private:
  Result<ExecCredential> run(Deadline deadline) {
    std::vector<std::string> argv{exec_.command};
    argv.insert(argv.end(), exec_.args.begin(), exec_.args.end());
    RunOptions options;
    const auto left = deadline - SteadyClock::now();
    options.deadline = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(left),
                                  std::chrono::milliseconds(1), kMaxPluginRun);
    options.max_output = kMaxPluginOutput;
    options.env = exec_.env;
    options.env.emplace_back("KUBERNETES_EXEC_INFO", info_);
    auto out = run_process(argv, options);
    if (!out.ok())
      return make_error(ErrorCode::kUnauthenticated,
                        "exec credential plugin " + exec_.command +
                            " could not be started: " + out.error().message);
    const std::string err(trim_ascii_whitespace(out->err));
    if (!err.empty()) {
      log::warn("kube exec plugin wrote to stderr",
                {{"command", exec_.command},
                 {"stderr",
                  err.size() > kMaxStderrLogged ? err.substr(0, kMaxStderrLogged) + "..." : err}});
    }
    if (out->timed_out) {
      wipe_string(out->out);
      return make_error(ErrorCode::kDeadlineExceeded,
                        "exec credential plugin " + exec_.command +
                            " did not finish in time (the request's deadline, at most " +
                            std::to_string(kMaxPluginRun.count() / 1000) + " s)");
    }
    if (out->exit_code != 0) {
      wipe_string(out->out);
      return make_error(ErrorCode::kUnauthenticated, "exec credential plugin " + exec_.command +
                                                         " failed with exit code " +
                                                         std::to_string(out->exit_code));
    }
    auto parsed = parse_exec_credential(out->out, exec_.api_version);
    wipe_string(out->out);
    if (!parsed.ok())
      return make_error(ErrorCode::kUnauthenticated,
                        "exec credential plugin " + exec_.command + ": " + parsed.error().message);
    log::debug("kube exec plugin ran",
               {{"command", exec_.command}, {"expires", parsed->expiry.has_value()}});
    return parsed;
  }

  const ExecConfig exec_;
  const std::string info_;
  const WallNow now_;
  std::mutex mu_;
  Credential credential_;
  std::optional<SystemClock::time_point> expiry_;
  bool cached_ = false;
  bool stale_ = false;
};

// Reads `digits` decimal digits at s[pos]; -1 when they are not all digits.
int digits_at(std::string_view s, std::size_t pos, std::size_t digits) {
  if (pos + digits > s.size()) return -1;
  int v = 0;
  for (std::size_t i = pos; i < pos + digits; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

void wipe_json_string(nlohmann::json& j) {
  if (j.is_string()) wipe_string(j.get_ref<std::string&>());
}

}  // namespace

std::optional<SystemClock::time_point> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  const int year = digits_at(s, 0, 4), month = digits_at(s, 5, 2), day = digits_at(s, 8, 2);
  const int hour = digits_at(s, 11, 2), minute = digits_at(s, 14, 2), second = digits_at(s, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return std::nullopt;
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
    return std::nullopt;
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
  // system_clock counts nanoseconds in an int64: years outside 1678-2261 overflow it (found
  // by tests/fuzz/kube_watch). No timestamp berth reads is that far away.
  if (year < 1678 || year > 2261) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(year),
                                        std::chrono::month(static_cast<unsigned>(month)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return std::nullopt;
  std::size_t pos = 19;
  std::chrono::nanoseconds fraction{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::int64_t scale = 100000000;
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      fraction += std::chrono::nanoseconds((s[pos] - '0') * scale);
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  std::chrono::minutes offset{0};
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int oh = digits_at(s, pos + 1, 2), om = digits_at(s, pos + 4, 2);
    if (oh < 0 || om < 0 || s[pos + 3] != ':' || oh > 23 || om > 59) return std::nullopt;
    offset = std::chrono::minutes(oh * 60 + om);
    if (s[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const auto local = std::chrono::sys_days(ymd) + std::chrono::hours(hour) +
                     std::chrono::minutes(minute) + std::chrono::seconds(second);
  return std::chrono::time_point_cast<SystemClock::duration>(local - offset + fraction);
}

Result<ExecCredential> parse_exec_credential(std::string_view output,
                                             const std::string& api_version) {
  auto fail = [](const std::string& what) { return make_error(ErrorCode::kUnauthenticated, what); };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(output);
  } catch (const nlohmann::json::exception&) {
    // The message would quote the output, which may hold the token.
    return fail("its output is not JSON");
  }
  ExecCredential out;
  struct Wiper {
    nlohmann::json& j;
    ~Wiper() {
      if (!j.is_object() || !j.contains("status") || !j["status"].is_object()) return;
      for (const char* k : {"token", "clientKeyData"})
        if (j["status"].contains(k)) wipe_json_string(j["status"][k]);
    }
  } wiper{j};
  if (!j.is_object()) return fail("its output is not an ExecCredential object");
  const auto api = j.value("apiVersion", std::string());
  if (api != api_version)
    return fail("it answered with apiVersion \"" + api + "\", but the kubeconfig asks for " +
                api_version);
  if (j.value("kind", std::string()) != "ExecCredential")
    return fail("its output is not of kind ExecCredential");
  if (!j.contains("status") || !j["status"].is_object())
    return fail("its output has no status (an interactive plugin needs a terminal)");
  const auto& status = j["status"];
  auto string_field = [&](const char* key, std::string& into) -> bool {
    if (!status.contains(key) || status[key].is_null()) return true;
    if (!status[key].is_string()) return false;
    into = status[key].get_ref<const std::string&>();
    return true;
  };
  std::string token, cert, key, expiry;
  bool ok = string_field("token", token) && string_field("clientCertificateData", cert) &&
            string_field("clientKeyData", key) && string_field("expirationTimestamp", expiry);
  out.token = Secret(token);
  out.client_key_pem = Secret(key);
  wipe_string(token);
  wipe_string(key);
  if (!ok) return fail("a status field is not a string");
  out.client_cert_pem = std::move(cert);
  if (out.client_cert_pem.empty() != out.client_key_pem.empty())
    return fail("it returned only one of clientCertificateData and clientKeyData");
  if (out.token.empty() && out.client_cert_pem.empty())
    return fail("it returned neither a token nor a client certificate and key");
  if (!expiry.empty()) {
    out.expiry = parse_rfc3339(expiry);
    if (!out.expiry) return fail("status.expirationTimestamp is not an RFC 3339 time");
  }
  return out;
}

std::string exec_info(const ExecConfig& exec, const ClusterConfig& cluster) {
  nlohmann::json spec = {{"interactive", false}};
  if (exec.provide_cluster_info) {
    nlohmann::json c = {{"server", cluster.server}};
    if (!cluster.tls_server_name.empty()) c["tls-server-name"] = cluster.tls_server_name;
    if (cluster.insecure_skip_tls_verify) c["insecure-skip-tls-verify"] = true;
    if (!cluster.ca_pem.empty()) c["certificate-authority-data"] = base64::encode(cluster.ca_pem);
    spec["cluster"] = std::move(c);
  }
  return nlohmann::json{
      {"apiVersion", exec.api_version}, {"kind", "ExecCredential"}, {"spec", std::move(spec)}}
      .dump();
}

std::unique_ptr<CredentialSource> make_static_token_source(Secret token) {
  return std::make_unique<StaticTokenSource>(std::move(token));
}

std::unique_ptr<CredentialSource> make_token_file_source(std::string path,
                                                         SteadyClock::duration period,
                                                         SteadyNow now) {
  return std::make_unique<TokenFileSource>(std::move(path), period, std::move(now));
}

std::unique_ptr<CredentialSource> make_exec_source(ExecConfig exec, const ClusterConfig& cluster,
                                                   WallNow now) {
  return std::make_unique<ExecSource>(std::move(exec), cluster, std::move(now));
}

std::unique_ptr<CredentialSource> make_credential_source(const ClusterConfig& config) {
  if (config.exec) return make_exec_source(*config.exec, config);
  if (!config.token_file.empty()) return make_token_file_source(config.token_file);
  if (!config.token.empty()) return make_static_token_source(config.token);
  return nullptr;
}

}  // namespace berth::kube
