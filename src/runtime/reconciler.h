#pragma once
// The AppService reconciler: reads desired state from the StateStore and observed state from
// what agents report, asks the pure planner (core/planner.h) for the next step, and carries it
// out through the ports (StateStore, AgentGateway, DigestResolver). One call handles one
// service key; the Controller (controller.h) decides retries from the returned outcome.
//
// Agent-link events (agent_connected, agent_disconnected, task_result) may arrive on any
// thread; they update the in-memory observed state and enqueue the affected keys. The
// reconciler never trusts memory over an agent's report: on every (re)connect the agent's full
// state replaces what was remembered, and tasks sent before the connection are sent again (the
// agent applies each task id once).
//
// Indexes kept in memory so no event scans every service: agent -> services placed on it,
// zone -> services waiting for an agent. They are primed once at start (prime()).
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/execution.h"
#include "core/planner.h"
#include "core/ports.h"
#include "runtime/controller.h"
#include "runtime/workqueue.h"

namespace berth::runtime {

struct ReconcilerOptions {
  int keep_succeeded = 20;
  std::function<core::UnixMillis()> now;    // wall clock, milliseconds since the epoch
  std::function<std::string()> new_id;      // UUIDs for tasks
  std::string endpoint_host = "127.0.0.1";  // host part of an app's url
};

struct ReconcilerStats {
  std::size_t agents_connected = 0;
  std::uint64_t deploys_succeeded = 0;
  std::uint64_t deploys_failed = 0;
};

class Reconciler {
 public:
  Reconciler(core::StateStore& store, core::AgentGateway& agents, core::DigestResolver& resolver,
             WorkQueue& queue, ReconcilerOptions options);

  // Loads the placement index from the store (one pass at start) and enqueues every service.
  Status prime();

  ReconcileOutcome reconcile(const std::string& service_id);

  // --- agent-link events ---
  void agent_connected(const std::string& name, const std::string& zone,
                       const std::vector<std::pair<std::string, core::ObservedApp>>& apps);
  void agent_disconnected(const std::string& name);
  void task_result(const std::string& agent, const core::TaskOutcome& outcome);

  ReconcilerStats stats() const;

 private:
  struct AgentState {
    std::string zone;
    bool connected = false;
    std::uint64_t epoch = 0;  // bumped on every connect
    std::unordered_map<std::string, core::ObservedApp> apps;
  };

  ReconcileOutcome execute(const core::Plan& plan, core::AppService& service,
                           std::optional<core::Revision>& desired, std::optional<core::Task>& task);
  Status write_service(core::AppService& service);
  Status fail_revision(core::AppService& service, core::Revision& revision,
                       std::optional<core::Task>& task, const std::string& step,
                       const std::string& message);
  Status dispatch(core::AppService& service, const std::optional<core::Revision>& desired,
                  core::Task& task);
  void index_placement(const std::string& service_id, const std::string& agent);
  void unindex(const std::string& service_id);
  static ReconcileOutcome from_error(const Error& error, const char* what);

  core::StateStore& store_;
  core::AgentGateway& gateway_;
  core::DigestResolver& resolver_;
  WorkQueue& queue_;
  ReconcilerOptions options_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, AgentState> agents_;
  std::unordered_map<std::string, std::string> placement_;  // service -> agent
  std::unordered_map<std::string, std::unordered_set<std::string>> by_agent_;
  std::unordered_map<std::string, std::unordered_set<std::string>> waiting_;  // zone -> services
  // service -> (task id, agent epoch) of the task last sent for it: one entry per service at
  // most (a service has one task in flight), dropped when the service is forgotten.
  std::unordered_map<std::string, std::pair<std::string, std::uint64_t>> sent_;
  // zone -> connected agents, so placing a service looks only at its zone.
  std::unordered_map<std::string, std::unordered_set<std::string>> zone_agents_;
  struct Redeploys {
    int count = 0;
    core::UnixMillis not_before = 0;
  };
  std::unordered_map<std::string, Redeploys> redeploys_;  // service -> redeploys in a row
  std::uint64_t deploys_succeeded_ = 0;
  std::uint64_t deploys_failed_ = 0;
};

}  // namespace berth::runtime
