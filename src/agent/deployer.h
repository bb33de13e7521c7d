#pragma once
// Deployer: executes deploy / restart / remove tasks for the apps on this agent, and watches
// the apps it serves between tasks. A deploy is blue/green, in named phases:
//
//   write auth -> pull (repository@digest when the task has one; the auth file is deleted
//   right after) -> start green on a fresh loopback port -> probe -> switch the stable port
//   -> drain and stop+remove blue -> record
//
// Any failure removes green and leaves blue serving; the result is failed with the runtime's
// reason in one sentence. Each step is a DeployLogEntry, also passed to `progress` as it
// happens; entries and results are bounded (bounded_log.h) so they always fit a link frame.
// Each task id is applied once: a repeated id returns the recorded result.
//
// Watching: watch() checks every serving container that is due (its app's health interval):
// does it exist and run, does it answer its health check. It returns an AppStatus for each app
// whose state changed (app_watch.h says when), plus the states that tasks found (a restart of
// a container that is gone answers failed and reports the app missing).
//
// Threading: calls for the same app are serialised by a per-app mutex; calls for different
// apps may run concurrently; watch() skips an app whose task is running. Blocking (podman
// calls, probes). Never stores the password.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/agent_state.h"
#include "agent/app_watch.h"
#include "agent/health_probe.h"
#include "agent/proxy_set.h"
#include "agent/pull_progress.h"
#include "agent/runtime_driver.h"
#include "agentlink/messages.h"
#include "core/types.h"

namespace berth::agent {

struct DeployerOptions {
  std::string data_dir;                            // auth/env files (tmp/), CA dirs (certs/)
  std::map<std::string, std::string> registry_ca;  // registry host -> CA file (PEM)
  std::chrono::milliseconds probe_deadline{120000};
  std::chrono::milliseconds drain_timeout{10000};
  // How long an old container has after SIGTERM before it is killed (`podman stop -t`, and
  // the container's own stop timeout for `podman rm -f`). Containers run with an init process,
  // so an app that exits on SIGTERM is gone in milliseconds; this only bounds one that does not.
  int stop_grace_seconds = 5;
  // Consecutive failed health checks after which a running app is reported unhealthy.
  int unhealthy_threshold = 3;
};

struct DeployerDeps {
  RuntimeDriver* driver = nullptr;
  HealthProber* prober = nullptr;
  ProxySet* proxies = nullptr;
  AgentState* state = nullptr;
  std::function<core::UnixMillis()> now;       // wall clock (ms since epoch)
  std::function<Result<int>()> allocate_port;  // a free loopback port for green
  std::function<std::string()> suffix;         // random container-name suffix
  // Pull progress (pull_progress.h): the layer sizes of the image to pull, asked just before
  // the pull (null, or an error: progress reports bytes only), and where the bytes a pull
  // wrote are counted (berth_pull_bytes_total) once it succeeded. Both optional.
  LayerSizesFn layer_sizes;
  std::function<void(std::int64_t bytes)> pulled_bytes;
};

using ProgressFn = std::function<void(const core::DeployLogEntry&)>;
// A throttled pull report of a deploy: the entry (also kept in the deploy log) and its counts.
using PullProgressFn =
    std::function<void(const core::DeployLogEntry&, const agentlink::PullCounts&)>;

class Deployer {
 public:
  Deployer(DeployerOptions options, DeployerDeps deps);
  ~Deployer();

  // While it pulls, a deploy writes throttled "pull" info entries ("pulling: 3/5 layers, 41.2 MB
  // of 80.0 MB", pull_progress.h) to its log; each also goes to `pull_progress` with its counts
  // when that is set, else to `progress`. The last one ("pulled: ...") follows a successful pull.
  agentlink::TaskResult deploy(const agentlink::DeployTask& task, const ProgressFn& progress,
                               const PullProgressFn& pull_progress = {});
  agentlink::TaskResult restart(const agentlink::RestartTask& task, const ProgressFn& progress);
  agentlink::TaskResult remove(const agentlink::RemoveTask& task, const ProgressFn& progress);

  // On start: removes berth containers that are not the serving container of a known app
  // (greens left by a crash mid-deploy, blues left by a crash during cleanup), starts serving
  // containers that are stopped, and reopens each app's proxy on its stable port. An app whose
  // serving container is gone is marked missing (reported by the next watch()).
  Status reconcile();
  // The full observed state, for Hello. An app is healthy when its container serves through
  // its open stable port and the watch has not found it unhealthy or missing; a missing app
  // keeps its revision (so the controller knows what to redeploy) with container "".
  std::vector<agentlink::ObservedApp> observe();
  // One watch round (see the file comment). Call it often (every few hundred ms): each app is
  // only checked when its own interval has passed.
  std::vector<agentlink::AppStatus> watch();
  // Makes the next watch() report every app that is not running, changed or not: after a
  // reconnect, statuses sent while the link was down were lost.
  void report_all_on_next_watch();

 private:
  struct Rollout;  // one deploy in progress (deployer.cpp)
  struct Watched {
    AppWatch watch;
    core::UnixMillis next_at = 0;  // when the app is checked next
    bool pending = false;          // a state not yet returned by watch()
  };

  std::shared_ptr<std::mutex> app_mutex(const std::string& service_id);
  Result<std::string> cert_dir_for(const std::string& registry_host);

  // Bounds, records (with the app's new record, or forgetting the app) and logs a result.
  agentlink::TaskResult finish(agentlink::TaskResult result, const char* kind,
                               const std::vector<core::DeployLogEntry>& logs,
                               const std::optional<AppRecord>& app, bool forget = false);

  // The deploy phases, in order. Each returns the failure's one sentence as an error.
  Status prepare(Rollout& r);
  Status pull(Rollout& r);
  Status start_green(Rollout& r);
  Status probe_green(Rollout& r);
  Status switch_to_green(Rollout& r);
  void clean_up_blue(Rollout& r);

  // Watch state.
  Observation look_at(const AppRecord& app);
  void watch_fresh(const std::string& service_id);
  void watch_mark(const std::string& service_id, agentlink::AppState state, std::string detail);
  void watch_forget(const std::string& service_id);

  DeployerOptions options_;
  DeployerDeps deps_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> app_mutexes_;  // guarded by mu_
  std::map<std::string, Watched> watched_;                          // guarded by mu_
  bool report_all_ = false;                                         // guarded by mu_
  // Containers of an app whose removal failed while this process ran (a failed green, a blue
  // that would not go): the next deploy's cleanup retries them, so cleanup needs no `podman
  // ps` (~120 ms) to find strays. Strays from before a restart are removed by reconcile().
  std::map<std::string, std::set<std::string>> leftovers_;  // guarded by mu_
  void remember_leftover(const std::string& service_id, const std::string& name);
  std::vector<std::string> take_leftovers(const std::string& service_id);
};

// Helpers exposed for tests.
// The image to pull: pull_ref (else image_ref), parsed by core/image_ref.h, pinned to the
// task's digest when it has one. Errors: the parser's kValidation.
Result<std::string> pull_image(const agentlink::DeployTask& task);
// A free TCP port on 127.0.0.1 (bound then released; the runtime binds it right after).
Result<int> pick_loopback_port();
// 8 random hex characters.
std::string random_suffix();
// Wall clock in ms since the epoch.
core::UnixMillis wall_clock_ms();

}  // namespace berth::agent
