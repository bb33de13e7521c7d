#include "agent_gateway.h"

#include "common/log.h"

namespace berth::controller {

Status AgentGateway::send_deploy(const std::string& agent, const core::DeployOrder& order,
                                 const Secret* password) {
  if (server_ == nullptr)
    return make_error(ErrorCode::kUnavailable, "the agent link is not running");
  agentlink::DeployTask task;
  task.task_id = order.task_id;
  task.service_id = order.service_id;
  task.revision_id = order.revision_id;
  task.revision = order.revision;
  task.image_ref = order.image_ref;
  task.image_digest = order.image_digest;
  task.pull_ref = order.pull_ref;
  task.container_port = order.container_port;
  task.env = order.env;
  task.health = order.health;
  if (password != nullptr) {
    task.auth = agentlink::RegistryAuth{order.auth_keys, order.username, *password};
  }
  return server_->send(agent, agentlink::Message(std::move(task)));
}

Status AgentGateway::send_restart(const std::string& agent, const std::string& task_id,
                                  const std::string& service_id) {
  if (server_ == nullptr)
    return make_error(ErrorCode::kUnavailable, "the agent link is not running");
  return server_->send(agent, agentlink::Message(agentlink::RestartTask{task_id, service_id}));
}

Status AgentGateway::send_remove(const std::string& agent, const std::string& task_id,
                                 const std::string& service_id) {
  if (server_ == nullptr)
    return make_error(ErrorCode::kUnavailable, "the agent link is not running");
  return server_->send(agent, agentlink::Message(agentlink::RemoveTask{task_id, service_id}));
}

void route_link_events(agentlink::ServerOptions& options, runtime::Reconciler& reconciler,
                       core::StateStore& store, std::function<core::UnixMillis()> now) {
  options.on_hello = [&reconciler, &store, now](const agentlink::AgentIdentity& id,
                                                const agentlink::Hello& hello) {
    std::vector<std::pair<std::string, core::ObservedApp>> apps;
    apps.reserve(hello.apps.size());
    for (const auto& a : hello.apps) {
      core::ObservedApp o{a.revision_id, a.image_digest, a.stable_port, a.healthy, a.last_task_id};
      // The agent keeps state for an app whose container is gone (removed, crashed, host
      // rebooted) and says so with an empty container name: nothing serves it.
      if (!a.revision_id.empty() && a.container.empty()) {
        o.missing = true;
        o.healthy = false;
        o.detail = "the agent reports no container for this app";
      }
      apps.emplace_back(a.service_id, std::move(o));
    }
    const std::string zone = id.zone.empty() ? hello.zone : id.zone;
    if (Status st = store.upsert_agent(core::AgentRecord{id.name, zone, id.fingerprint, now()});
        !st.ok()) {
      log::warn("recording the agent failed", {{"agent", id.name}, {"error", st.error().message}});
    }
    reconciler.agent_connected(id.name, zone, apps);
  };
  options.on_message = [&reconciler](const std::string& agent, const agentlink::Message& message) {
    if (const auto* result = std::get_if<agentlink::TaskResult>(&message)) {
      core::TaskOutcome o;
      o.task_id = result->task_id;
      o.service_id = result->service_id;
      o.revision_id = result->revision_id;
      o.ok = result->ok;
      o.error = result->error;
      o.image_digest = result->image_digest;
      o.stable_port = result->stable_port;
      o.logs = result->logs;
      reconciler.task_result(agent, o);
    } else if (const auto* ack = std::get_if<agentlink::Ack>(&message)) {
      reconciler.task_acked(agent, ack->task_id);
    } else if (const auto* status = std::get_if<agentlink::AppStatus>(&message)) {
      core::AppReport r;
      r.service_id = status->service_id;
      r.revision_id = status->revision_id;
      r.detail = status->detail;
      switch (status->state) {
        case agentlink::AppState::kRunning:
          r.state = core::AppState::kRunning;
          break;
        case agentlink::AppState::kUnhealthy:
          r.state = core::AppState::kUnhealthy;
          break;
        case agentlink::AppState::kMissing:
          r.state = core::AppState::kMissing;
          break;
      }
      log::info("app state reported", {{"agent", agent},
                                       {"app", status->service_id},
                                       {"state", agentlink::to_string(status->state)}});
      reconciler.app_status(agent, r);
    } else if (const auto* progress = std::get_if<agentlink::Progress>(&message)) {
      log::info("deploy progress", {{"agent", agent},
                                    {"task_id", progress->task_id},
                                    {"step", progress->entry.step},
                                    {"status", progress->entry.status},
                                    {"message", progress->entry.message}});
      std::optional<runtime::Reconciler::PullReport> pull;
      if (progress->pull) {
        pull = runtime::Reconciler::PullReport{
            progress->pull->layers_done, progress->pull->layers_total, progress->pull->bytes_done,
            progress->pull->bytes_total};
      }
      reconciler.task_progress(agent, progress->task_id, progress->entry, pull);
    }
  };
  options.on_disconnect = [&reconciler](const std::string& agent) {
    reconciler.agent_disconnected(agent);
  };
}

}  // namespace berth::controller
