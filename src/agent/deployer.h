#pragma once
// Deployer: executes deploy / restart / remove tasks for the apps on this agent, blue/green:
//
//   auth file -> pull (repository@digest when the task has one) -> delete auth file ->
//   start green on a fresh loopback port -> probe -> switch the stable port -> drain and
//   stop+remove blue -> record
//
// Any failure removes green and leaves blue serving; the result is failed with the runtime's
// reason in one sentence. Each step is a DeployLogEntry, also passed to `progress` as it
// happens. Each task id is applied once: a repeated id returns the recorded result.
//
// Threading: calls for the same app are serialised by a per-app mutex; calls for different
// apps may run concurrently. Blocking (podman calls, probes). Never stores the password.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/agent_state.h"
#include "agent/health_probe.h"
#include "agent/proxy_set.h"
#include "agent/runtime_driver.h"
#include "agentlink/messages.h"
#include "core/types.h"

namespace berth::agent {

struct DeployerOptions {
  std::string data_dir;                            // auth/env files (tmp/), CA dirs (certs/)
  std::map<std::string, std::string> registry_ca;  // registry host -> CA file (PEM)
  std::chrono::milliseconds probe_deadline{120000};
  std::chrono::milliseconds drain_timeout{10000};
  int stop_grace_seconds = 10;
};

struct DeployerDeps {
  RuntimeDriver* driver = nullptr;
  HealthProber* prober = nullptr;
  ProxySet* proxies = nullptr;
  AgentState* state = nullptr;
  std::function<core::UnixMillis()> now;       // wall clock (ms since epoch)
  std::function<Result<int>()> allocate_port;  // a free loopback port for green
  std::function<std::string()> suffix;         // random container-name suffix
};

using ProgressFn = std::function<void(const core::DeployLogEntry&)>;

class Deployer {
 public:
  Deployer(DeployerOptions options, DeployerDeps deps);

  agentlink::TaskResult deploy(const agentlink::DeployTask& task, const ProgressFn& progress);
  agentlink::TaskResult restart(const agentlink::RestartTask& task, const ProgressFn& progress);
  agentlink::TaskResult remove(const agentlink::RemoveTask& task, const ProgressFn& progress);

  // On start: removes berth containers that are not the serving container of a known app
  // (greens left by a crash mid-deploy, blues left by a crash during cleanup), starts serving
  // containers that are stopped, and reopens each app's proxy on its stable port.
  Status reconcile();
  // The full observed state, for Hello.
  std::vector<agentlink::ObservedApp> observe();

 private:
  std::shared_ptr<std::mutex> app_mutex(const std::string& service_id);
  std::string cert_dir_for(const std::string& image, std::string& error);

  DeployerOptions options_;
  DeployerDeps deps_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> app_mutexes_;  // guarded by mu_
};

// Helpers exposed for tests.
// The image to pull: pull_ref (else image_ref), pinned to `digest` when one is given.
std::string pull_image(const agentlink::DeployTask& task);
// The registry host of a normalized reference ("127.0.0.1:5000/app:v1" -> "127.0.0.1:5000").
std::string image_host(const std::string& image);
// A free TCP port on 127.0.0.1 (bound then released; the runtime binds it right after).
Result<int> pick_loopback_port();
// 8 random hex characters.
std::string random_suffix();
// Wall clock in ms since the epoch.
core::UnixMillis wall_clock_ms();

}  // namespace berth::agent
