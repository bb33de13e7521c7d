#pragma once
// Adapter between the agent link (agentlink::Server) and the reconciler: implements
// core::AgentGateway by turning orders into link messages, and turns link events (hello, task
// results, disconnects) into reconciler events. Lives in the composition root because it is
// where two adapters meet.
#include <memory>
#include <string>

#include "agentlink/server.h"
#include "core/execution.h"
#include "core/ports.h"
#include "runtime/reconciler.h"

namespace berth::controller {

class AgentGateway final : public core::AgentGateway {
 public:
  AgentGateway() = default;
  void attach(agentlink::Server* server) { server_ = server; }

  Status send_deploy(const std::string& agent, const core::DeployOrder& order,
                     const Secret* password) override;
  Status send_restart(const std::string& agent, const std::string& task_id,
                      const std::string& service_id) override;
  Status send_remove(const std::string& agent, const std::string& task_id,
                     const std::string& service_id) override;

 private:
  agentlink::Server* server_ = nullptr;
};

// Fills the link callbacks of `options` so that events reach `reconciler` and agents are
// recorded in `store` (name, zone, certificate fingerprint, last seen).
void route_link_events(agentlink::ServerOptions& options, runtime::Reconciler& reconciler,
                       core::StateStore& store, std::function<core::UnixMillis()> now);

}  // namespace berth::controller
