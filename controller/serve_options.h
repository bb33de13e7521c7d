#pragma once
// The options of `berth-controller serve` and the helpers both of its modes share: standalone
// (cmd_serve.cpp) and Kubernetes mode (cmd_serve_kube.cpp).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/types.h"
#include "local_agent.h"
#include "registry/client.h"

namespace berth::controller {

struct ServeOptions {
  std::string data_dir;
  std::string listen = "127.0.0.1:8080";
  std::string tls_cert;
  std::string tls_key;
  bool insecure_http = false;
  std::string default_zone = "local";
  std::string log_level = "info";
  std::string port_file;
  std::size_t max_connections = 256;
  int auth_cache_ttl_seconds = 60;
  // Agent link and reconcile loop.
  std::string agent_listen;  // HOST:PORT; empty: 127.0.0.1:0 with --local-agent, else off
  std::vector<std::string> agent_hosts;  // extra names for the agent endpoint's certificate
  bool local_agent = false;
  std::vector<std::string> registry_cas;           // HOST=FILE
  std::vector<std::string> registry_token_realms;  // REGISTRY=REALM_HOST[:PORT]
  int workers = 4;
  int resync_seconds = 300;
  int backoff_cap_seconds = 300;
  int history = 20;
  int registry_timeout_seconds = 30;
  int credential_check_timeout_seconds = 10;
  // Kubernetes mode (serve --kubernetes; docs/kubernetes.md "Running the controller").
  bool kubernetes = false;
  std::string kubeconfig;
  std::string context;
  std::vector<std::string> namespaces;  // empty: all
  bool leader_elect = false;
  std::string leader_election_namespace;  // empty: the controller namespace
  std::string leader_election_id = "berth-controller";
  std::string identity;
  std::string controller_namespace;  // empty: $POD_NAMESPACE, else berth-system
  std::string master_key_file;
  std::string health_listen;  // HOST:PORT; empty: no health endpoint
  int deletion_timeout_seconds = 300;
  double kube_qps = 20;
  int kube_burst = 40;
};

// "KEY=VALUE" pairs for --registry-ca and --registry-token-realm.
template <class Map>
bool parse_pairs(const std::vector<std::string>& pairs, Map& out) {
  for (const auto& p : pairs) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == p.size()) return false;
    out.emplace(p.substr(0, eq), p.substr(eq + 1));
  }
  return true;
}

// "HOST:PORT" or "[V6]:PORT".
inline bool split_listen(const std::string& text, std::string& host, std::uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  try {
    std::size_t used = 0;
    const unsigned long p = std::stoul(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1 || p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

// Written atomically (temp file + rename) so a reader never sees a partial port.
inline bool write_port_file(const std::string& path, std::uint16_t port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << port << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

inline core::UnixMillis system_now() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// The registry options of both modes from the flags: `rollout` for deploys, `check` with the
// shorter deadline a new password is checked within (the user waits for it). On a malformed flag
// prints the problem and returns false (exit status 2).
inline bool registry_options_from(const ServeOptions& o, registry::RegistryOptions& rollout,
                                  registry::RegistryOptions& check) {
  if (!parse_pairs(o.registry_cas, rollout.ca_files)) {
    std::fprintf(stderr, "serve: --registry-ca must be HOST=FILE\n");
    return false;
  }
  if (!parse_pairs(o.registry_token_realms, rollout.trusted_token_realms)) {
    std::fprintf(stderr, "serve: --registry-token-realm must be REGISTRY=REALM_HOST[:PORT]\n");
    return false;
  }
  rollout.timeout = std::chrono::seconds(o.registry_timeout_seconds);
  check = rollout;
  check.timeout = std::chrono::seconds(o.credential_check_timeout_seconds);
  return true;
}

// The local agent of `--local-agent` (both modes): this machine's berth-agent dialing the agent
// link on loopback `port`, in the controller's zone, trusting the same registry CAs.
inline LocalAgentOptions local_agent_options(const ServeOptions& o, std::uint16_t port) {
  LocalAgentOptions lo;
  lo.agent_binary = sibling_binary("berth-agent");
  lo.data_dir = o.data_dir;
  lo.controller_url = "wss://127.0.0.1:" + std::to_string(port);
  lo.zone = o.default_zone;
  lo.registry_cas = o.registry_cas;
  lo.log_level = o.log_level;
  return lo;
}

// Kubernetes mode: runs until SIGTERM/SIGINT (the stop signals must already be blocked), or
// exits 1 at once when this replica loses its leader lease.
int run_serve_kube(const ServeOptions& options);

}  // namespace berth::controller
