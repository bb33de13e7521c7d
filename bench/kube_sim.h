#pragma once
// Kubernetes mode without podman, for berth-bench-kube and the load suite
// (tests/load/kube_mass_change_itest.cpp): a real `berth-controller serve --kubernetes` against
// a running test API server (hack/testenv/kubeapi), M simulated agents speaking the real agent
// link (sim_agent.h: acknowledge and report success at once) and the anonymous TLS registry every
// image resolves at (sim_registry.h). The caller starts the API server (testenv::KubeApiServer) and
// hands its address, CA, admin kubeconfig (the controller's) and client certificate (the harness's
// own client, user "berth-test", so the server's request log tells the two apart).
//
//   KubeSim sim(options);
//   if (Status st = sim.start(); !st.ok()) ...     // key Secret, agents enrolled, controller up
//   AppWatch watch(sim.client(), "ns");            // an informer on the namespace
//   sim.create_apps("ns", 1000, "v1");             // parallel creates
//   watch.wait_ready(1000, 1, limit);              // all Running and Ready at revision 1
//
// The key Secret (berth-system/berth-controller-keys: agent CA and master key) is created by the
// harness before the controller starts, so the agents' credentials can be issued at once with
// `berth-controller agent-credentials`, the way an operator enrols an agent.
//
// Contract: errors are values (Status); the destructor stops the agents, then the controller
// (SIGTERM, waited for). Only the process it started is signalled, by pid.
// Threading: start/stop and the helpers from one thread; AppWatch counts on its informer's
// thread and is read from any thread.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "kube/informer.h"
#include "kube/resource_client.h"
#include "kube/transport.h"

namespace berth::sim {
class SimAgent;
struct Arrivals;
}  // namespace berth::sim

namespace berth::bench::sim {

class TlsServer;

struct KubeSimOptions {
  std::string server;  // https://127.0.0.1:PORT
  std::string ca_file;
  std::string kubeconfig;  // the controller's (context berth-test)
  std::string client_cert_file;
  std::string client_key_file;
  std::filesystem::path controller;  // the berth-controller binary
  std::filesystem::path dir;         // scratch, removed by the caller
  int agents = 10;
  int workers = 4;
  // The controller's client-side limit (--kube-api-qps/--kube-api-burst). The default 20/40
  // would make the rate limiter the figure; the benchmark measures berth against the server.
  double kube_qps = 1000;
  int kube_burst = 2000;
  std::string log_level = "error";  // the controller's lines go to this process's stderr
  std::chrono::seconds start_limit{60};
};

class KubeSim {
 public:
  explicit KubeSim(KubeSimOptions options);
  ~KubeSim();
  KubeSim(const KubeSim&) = delete;
  KubeSim& operator=(const KubeSim&) = delete;

  // The harness's client only (start() does it too): enough for create_apps and patch_apps
  // without berth.
  Status connect();
  // Registry, key Secret, agent credentials, controller (until /readyz answers 200), agents
  // (until every one is connected).
  Status start();
  void stop();

  // The harness's client (user berth-test, 1000 QPS).
  kube::Transport& client() { return *client_; }
  pid_t controller_pid() const { return pid_; }
  std::uint16_t health_port() const { return health_port_; }
  // The image every app names: <the fake registry>/sim/app:<tag>.
  std::string image(const std::string& tag) const;
  nlohmann::json app(const std::string& ns, const std::string& name, const std::string& tag) const;
  // Deploy tasks and results the agents saw.
  std::uint64_t deploys() const;
  std::uint64_t results() const;

  // `count` AppServices app-00000.. in `ns` (created first when missing), `threads` at a time.
  Status create_apps(const std::string& ns, int count, const std::string& tag, int threads = 8);
  // A merge patch of every app-NNNNN in [0, count), `threads` at a time.
  Status patch_apps(const std::string& ns, int count, const nlohmann::json& patch, int threads = 8);
  // GET `path` on the controller's health port: the body ("" on any error; 5 s deadline).
  std::string health_get(const std::string& path) const;
  // The sum of every sample of counter `name` in the controller's /metrics (0 when absent;
  // `label` filters on a `key="value"` text when not empty).
  double metric(const std::string& name, const std::string& label = {}) const;

  static std::string app_name(int i);

 private:
  Status write_key_secret();
  Status enrol_agents();
  Status start_controller();

  KubeSimOptions options_;
  std::unique_ptr<kube::Transport> client_;
  std::unique_ptr<TlsServer> registry_;
  std::atomic<std::uint64_t> registry_heads_{0};
  std::string registry_host_;
  std::string registry_ca_file_;
  std::unique_ptr<berth::sim::Arrivals> arrivals_;
  std::vector<std::unique_ptr<berth::sim::SimAgent>> agents_;
  std::vector<std::string> agent_dirs_;
  std::uint16_t agent_port_ = 0;
  std::uint16_t health_port_ = 0;
  pid_t pid_ = 0;
};

// An informer on one namespace's AppServices that counts watch events and how many apps are
// Running and Ready at a given revision (phase Running, Ready=True, observedGeneration ==
// generation, status.currentRevision == revision, an endpoint).
class AppWatch {
 public:
  AppWatch(kube::Transport& transport, const std::string& ns);
  ~AppWatch();
  // Events applied since start (ADDED/MODIFIED/DELETED, after the initial list).
  std::uint64_t events() const { return events_.load(); }
  int ready_at(int revision) const;
  // Waits until `count` apps are ready at `revision`; false after `limit`.
  bool wait_ready(int count, int revision, std::chrono::milliseconds limit) const;
  // Waits until events() reaches `count`; false after `limit`.
  bool wait_events(std::uint64_t count, std::chrono::milliseconds limit) const;
  static bool ready(const nlohmann::json& app, int revision);

 private:
  void seen(const nlohmann::json& object);
  kube::ResourceClient client_;
  std::unique_ptr<kube::Informer> informer_;
  std::atomic<std::uint64_t> events_{0};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::unordered_map<std::string, int> revision_ready_;  // name -> revision it is ready at (0)
};

// The least a controller must do for every app to be Ready, with the same client library and
// no berth: on every ADDED event, one merge patch of status (phase, conditions, observed
// generation, revision 1, endpoint) from `workers` threads. The baseline of berth-bench-kube.
class BareController {
 public:
  BareController(kube::Transport& transport, const std::string& ns, int workers = 4);
  ~BareController();
  std::uint64_t writes() const { return writes_.load(); }

 private:
  void work();
  kube::ResourceClient client_;
  std::unique_ptr<kube::Informer> informer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<nlohmann::json> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  std::atomic<std::uint64_t> writes_{0};
};

// Whether one entry of the test API server's request log counts as `user`'s call: control
// calls under /_test/ are left out, and long-running watches when `include_watches` is false.
bool counted_request(const nlohmann::json& r, const std::string& user, bool include_watches);
// How many entries of the log count (counted_request).
int count_requests(const nlohmann::json& log, const std::string& user, bool include_watches);

}  // namespace berth::bench::sim
