#include "agent/agent.h"

#include "common/log.h"

namespace berth::agent {

Agent::Agent(Options options, Deployer& deployer, Sender send)
    : options_(std::move(options)), deployer_(deployer), send_(std::move(send)) {}

Agent::~Agent() { stop(); }

Status Agent::start() {
  if (auto st = deployer_.reconcile(); !st.ok())
    log::error("reconciling with the container runtime failed", {{"error", st.error().message}});
  worker_ = std::thread([this] { run(); });
  if (options_.watch_every.count() > 0) watcher_ = std::thread([this] { watch_loop(); });
  return Status::Ok();
}

agentlink::Hello Agent::hello() {
  agentlink::Hello h;
  h.name = options_.name;
  h.zone = options_.zone;
  h.version = options_.version;
  h.apps = deployer_.observe();
  deployer_.report_all_on_next_watch();
  return h;
}

std::string Agent::task_id_of(const agentlink::Message& m) {
  if (auto* d = std::get_if<agentlink::DeployTask>(&m)) return d->task_id;
  if (auto* r = std::get_if<agentlink::RestartTask>(&m)) return r->task_id;
  if (auto* x = std::get_if<agentlink::RemoveTask>(&m)) return x->task_id;
  return {};
}

void Agent::handle(agentlink::Message message) {
  const std::string id = task_id_of(message);
  if (id.empty()) return;  // heartbeats and anything not a task: nothing to do here
  if (send_) send_(agentlink::Ack{id});
  std::lock_guard lock(mu_);
  if (stopping_ || !pending_ids_.insert(id).second) return;
  queue_.push_back(std::move(message));
  cv_.notify_all();
}

void Agent::run() {
  for (;;) {
    agentlink::Message m;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      m = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    const std::string id = task_id_of(m);
    auto progress = [&](const core::DeployLogEntry& e) {
      if (send_) send_(agentlink::Progress{id, e, std::nullopt});
    };
    auto pull_progress = [&](const core::DeployLogEntry& e, const agentlink::PullCounts& c) {
      if (send_) send_(agentlink::Progress{id, e, c});
    };
    agentlink::TaskResult result;
    if (auto* d = std::get_if<agentlink::DeployTask>(&m))
      result = deployer_.deploy(*d, progress, pull_progress);
    else if (auto* r = std::get_if<agentlink::RestartTask>(&m))
      result = deployer_.restart(*r, progress);
    else if (auto* x = std::get_if<agentlink::RemoveTask>(&m))
      result = deployer_.remove(*x, progress);
    // The task (and with it any password) is released before the result goes out.
    m = agentlink::Heartbeat{};
    if (send_) send_(result);
    {
      std::lock_guard lock(mu_);
      pending_ids_.erase(id);
      busy_ = false;
    }
    cv_.notify_all();
  }
}

void Agent::watch_loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, options_.watch_every, [&] { return stopping_; })) return;
    }
    for (auto& status : deployer_.watch())
      if (send_) send_(std::move(status));
  }
}

void Agent::wait_idle() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || (queue_.empty() && !busy_); });
}

void Agent::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (watcher_.joinable()) watcher_.join();
}

}  // namespace berth::agent
