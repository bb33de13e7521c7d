#pragma once
// Simulated agents: real agentlink::Client connections (TLS 1.3, client certificates, Hello,
// heartbeats) that acknowledge every task and report success at once, without podman. What
// berth-agent sends, minus the containers. Shared by berth-bench-agents (scale over the real
// protocol) and tests/load (agents reconnecting at once).
//
// Contract: a SimAgent reports, in every Hello, the apps its successful deploys gave it (so a
// reconnect after a controller restart looks like berth-agent's: nothing needs redeploying).
// Thread-safe: the callbacks run on the client's threads; counters are atomics.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "agentlink/client.h"
#include "common/result.h"
#include "common/secret.h"
#include "crypto/certs.h"

namespace berth::sim {

using Clock = std::chrono::steady_clock;

// What `berth-controller agent-credentials` writes for one agent.
struct AgentCredentials {
  std::string name;
  std::string ca_pem;
  std::string cert_pem;
  Secret key_pem;
};

// "sim-007": agent i's name (a DNS label, as the controller requires).
std::string agent_name(int i);

// Credentials for agents 0..n-1 (agent_name(i), zone "local", clientAuth) issued from `ca`, as
// `berth-controller agent-credentials` issues them: one process instead of n.
Result<std::vector<AgentCredentials>> issue_agent_credentials(const crypto::PemPair& ca, int n);

// When each service's latest DeployTask reached an agent (a caller may reset an entry before it
// changes that service), and how many tasks and results went through.
struct Arrivals {
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, Clock::time_point> deploy_at;
  std::atomic<std::uint64_t> deploys{0}, results{0};

  void deployed(const std::string& service);
};

struct SimAgentOptions {
  // The digest a result reports when the task carried none.
  std::string fallback_digest = "sha256:" + std::string(64, '0');
  // Quick by default: the controller may not listen yet, and start-up is what is measured.
  agentlink::Backoff backoff{std::chrono::milliseconds(20), std::chrono::milliseconds(200), 0.0};
};

class SimAgent {
 public:
  SimAgent(AgentCredentials c, std::string url, Arrivals& arrivals, SimAgentOptions options = {});
  // Stops the client first: its threads call handle(), which uses the members below it.
  ~SimAgent();
  SimAgent(const SimAgent&) = delete;
  SimAgent& operator=(const SimAgent&) = delete;
  Status start();
  void stop();
  bool connected() const;
  // The apps this agent reports in its Hello.
  std::size_t apps() const;

 private:
  void handle(const agentlink::Message& m);
  agentlink::Hello hello() const;

  std::string name_;
  SimAgentOptions options_;
  Arrivals& arrivals_;
  std::unique_ptr<agentlink::Client> client_;
  mutable std::mutex mu_;
  std::map<std::string, agentlink::ObservedApp> apps_;  // guarded by mu_
  int port_ = 20000;                                    // guarded by mu_
};

// One SimAgent per credential, each started (an error when one cannot start).
Result<std::vector<std::unique_ptr<SimAgent>>> start_agents(
    const std::vector<AgentCredentials>& creds, const std::string& url, Arrivals& arrivals,
    const SimAgentOptions& options = {});

}  // namespace berth::sim
