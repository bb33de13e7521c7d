#include "sim_agent.h"

#include <cstdio>
#include <variant>

#include "core/types.h"

namespace berth::sim {

std::string agent_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "sim-%03d", i);
  return buf;
}

Result<std::vector<AgentCredentials>> issue_agent_credentials(const crypto::PemPair& ca, int n) {
  std::vector<AgentCredentials> out;
  for (int i = 0; i < n; ++i) {
    crypto::CertRequest r;
    r.common_name = agent_name(i);
    r.zone = "local";
    r.client = true;
    auto pair = crypto::issue_certificate(ca, r);
    if (!pair) return pair.error();
    out.push_back({r.common_name, ca.cert_pem, pair->cert_pem, Secret(pair->key_pem.reveal())});
  }
  return out;
}

void Arrivals::deployed(const std::string& service) {
  const auto now = Clock::now();
  std::lock_guard lock(mu);
  deploy_at.try_emplace(service, now);
  ++deploys;
  cv.notify_all();
}

SimAgent::SimAgent(AgentCredentials c, std::string url, Arrivals& arrivals, SimAgentOptions options)
    : name_(c.name), options_(std::move(options)), arrivals_(arrivals) {
  agentlink::ClientOptions o;
  o.url = std::move(url);
  o.ca_cert_pem = c.ca_pem;
  o.cert_pem = c.cert_pem;
  o.key_pem = std::move(c.key_pem);
  o.hello = [this] { return hello(); };
  o.on_message = [this](const agentlink::Message& m) { handle(m); };
  o.backoff = options_.backoff;
  client_ = std::make_unique<agentlink::Client>(std::move(o));
}

Status SimAgent::start() { return client_->start(); }
SimAgent::~SimAgent() {
  if (client_) client_->stop();
}

void SimAgent::stop() { client_->stop(); }
bool SimAgent::connected() const { return client_->connected(); }

std::size_t SimAgent::apps() const {
  std::lock_guard lock(mu_);
  return apps_.size();
}

agentlink::Hello SimAgent::hello() const {
  agentlink::Hello h{name_, "local", "sim", {}};
  std::lock_guard lock(mu_);
  for (const auto& [id, app] : apps_) h.apps.push_back(app);
  return h;
}

void SimAgent::handle(const agentlink::Message& m) {
  agentlink::TaskResult r;
  if (const auto* d = std::get_if<agentlink::DeployTask>(&m)) {
    arrivals_.deployed(d->service_id);
    r.task_id = d->task_id;
    r.service_id = d->service_id;
    r.revision_id = d->revision_id;
    r.image_digest = d->image_digest.empty() ? options_.fallback_digest : d->image_digest;
    std::lock_guard lock(mu_);
    auto& app = apps_[d->service_id];
    if (app.stable_port == 0) app.stable_port = port_++;
    app.service_id = d->service_id;
    app.revision_id = d->revision_id;
    app.image_digest = r.image_digest;
    app.container = "sim-" + d->service_id + "-" + d->revision_id;
    app.healthy = true;
    app.last_task_id = d->task_id;
    r.stable_port = app.stable_port;
    const core::UnixMillis now = 1'800'000'000'000;
    r.logs.push_back(core::DeployLogEntry{"pull", "ok", "pulled", "", now, 0});
    r.logs.push_back(core::DeployLogEntry{"switch", "ok", "switched", "", now, 0});
  } else if (const auto* t = std::get_if<agentlink::RestartTask>(&m)) {
    r.task_id = t->task_id;
    r.service_id = t->service_id;
  } else if (const auto* t2 = std::get_if<agentlink::RemoveTask>(&m)) {
    r.task_id = t2->task_id;
    r.service_id = t2->service_id;
    std::lock_guard lock(mu_);
    apps_.erase(t2->service_id);
  } else {
    return;
  }
  r.ok = true;
  (void)client_->send(agentlink::Ack{r.task_id});
  if (client_->send(r).ok()) ++arrivals_.results;
}

Result<std::vector<std::unique_ptr<SimAgent>>> start_agents(
    const std::vector<AgentCredentials>& creds, const std::string& url, Arrivals& arrivals,
    const SimAgentOptions& options) {
  std::vector<std::unique_ptr<SimAgent>> agents;
  for (const auto& c : creds) {
    agents.push_back(std::make_unique<SimAgent>(
        AgentCredentials{c.name, c.ca_pem, c.cert_pem, Secret(c.key_pem.reveal())}, url, arrivals,
        options));
    if (Status st = agents.back()->start(); !st.ok()) return st.error();
  }
  return agents;
}

}  // namespace berth::sim
