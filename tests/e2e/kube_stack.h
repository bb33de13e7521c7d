#pragma once
// The end-to-end harness for Kubernetes mode: the test API server, the real registry, podman
// and `berth-controller serve --kubernetes` as child processes, driven by the user's client,
// the real kubectl (1.32). For tests/e2e/kube_*_itest.cpp.
//
//   KubeStack stack;                                  // API server, CRD (kubectl apply), namespace
//   stack.start();                                    // serve --kubernetes --local-agent, /healthz
//   stack.apply_password_secret("creds", stack.registry().password());
//   stack.apply(stack.app_yaml("web", "v1", "creds"));
//   auto app = stack.wait_for("web", KubeStack::running_at(1), "Running at revision 1");
//   REQUIRE(KubeStack::page(app["status"]["endpoint"]) == "v1\n");
//
// What is real: the private registry and podman of tests/e2e/stack.h (testenv::Registry::shared,
// testenv::PodmanEnv), the berth-controller and berth-agent binaries from BERTH_BIN_DIR, kubectl
// from PATH. The API server is the project's test server (testenv::KubeApiServer,
// hack/testenv/kubeapi), not a kube-apiserver. Every user action and every read goes through
// kubectl with the server's kubeconfig, so what a test asserts is what a user would see.
//
// Replicas: `replicas` controller processes (`--leader-elect` with two or more, or when asked),
// each with its own data dir, health port (port file) and log, all sharing one --agent-listen
// port (only the leader binds it). With `separate_agent`, one berth-agent process dials that
// port with credentials issued from the agent CA in the key Secret
// (<controller-namespace>/berth-controller-keys), which the first leader creates.
//
// Cleanup is RAII, in this order: controllers and the agent (SIGTERM, then SIGKILL), any
// leftover berth process naming the stack's dir, every container (PodmanEnv), the API server,
// the temp dir. Safe when a test fails half-way.
//
// Threading: the test thread only. Helpers that wait take a limit and FAIL the test (Catch2)
// with the last object they saw and the tails of the logs.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e/stack.h"
#include "support/http_client.h"
#include "support/kube_testenv.h"
#include "support/secret_scan.h"
#include "support/testenv.h"

namespace berth::e2e {

// What the e2e Kubernetes tests need beyond the e2e peers: kubectl on PATH and the test API
// server's python3. "" when everything is there.
std::string missing_kube_peers();

// Declares the peers of a Kubernetes-mode e2e test: skipped (a failure under CI=true) when
// podman, the registry's programs, kubectl or python3 are missing.
#define BERTH_REQUIRE_KUBE_E2E_PEERS()                                                       \
  do {                                                                                       \
    BERTH_REQUIRE_PEERS(::berth::testenv::Peer::kPodman, ::berth::testenv::Peer::kRegistry); \
    const std::string berth_missing_kube_ = ::berth::e2e::missing_kube_peers();              \
    if (!berth_missing_kube_.empty()) {                                                      \
      ::berth::testing::skip_test(berth_missing_kube_);                                      \
      return;                                                                                \
    }                                                                                        \
  } while (false)

struct KubectlResult {
  int rc = -1;      // exit status; -1 when it did not run or was killed at the timeout
  std::string out;  // stdout
  std::string err;  // stderr
};

struct KubeStackOptions {
  int replicas = 1;
  // --leader-elect on every replica (always on with two or more).
  bool leader_elect = false;
  // false: every replica runs `--local-agent`; true: one berth-agent process (start_agent()).
  bool separate_agent = false;
  // --deletion-timeout-seconds (0: the controller's default).
  int deletion_timeout_seconds = 0;
  // The separate agent's --stop-grace-period (-1: the agent's default, 5 s).
  int stop_grace_seconds = -1;
};

class KubeStack {
 public:
  // The shared registry, a podman env, the temp dir, the test API server (started without
  // CRDs), then with kubectl: the CRD applied from crds/ and Established, and the test's
  // namespace created. Nothing of berth runs yet.
  explicit KubeStack(KubeStackOptions options = {});
  ~KubeStack();
  KubeStack(const KubeStack&) = delete;
  KubeStack& operator=(const KubeStack&) = delete;

  testenv::Registry& registry() { return *registry_; }
  testenv::KubeApiServer& server() { return *server_; }
  const testenv::PodmanEnv& podman() const { return *podman_; }
  const std::string& dir() const { return dir_; }
  // The namespace the test's apps live in ("e2e-<6 hex>").
  const std::string& ns() const { return ns_; }
  static constexpr const char* kControllerNamespace = "berth-system";
  // The user the controller authenticates as (its service account, bound by manifests/rbac.yaml).
  static constexpr const char* kControllerUser =
      "system:serviceaccount:berth-system:berth-controller";
  static constexpr int kContainerPort = Stack::kContainerPort;

  // --- processes
  // Every replica (waiting for each one's /healthz) and, with a separate agent, the agent once
  // the key Secret exists.
  void start();
  // Replica `i`: `serve --kubernetes` with the server's kubeconfig; waits for its port file
  // and a 200 from /healthz. Identity "replica-<i>" when leader election is on.
  void start_replica(int i);
  void kill_replica(int i);  // SIGKILL
  void stop_replica(int i);  // SIGTERM, expects exit 0
  ChildProcess& replica(int i) { return replicas_.at(static_cast<std::size_t>(i)).process; }
  std::string identity(int i) const { return "replica-" + std::to_string(i); }
  std::string replica_log_path(int i) const;
  std::string replica_log(int i) const { return read_file(replica_log_path(i)); }
  // Every replica's log, then the agent's, each under a header (for failure messages).
  std::string all_logs() const;
  std::uint16_t health_port(int i) const {
    return replicas_.at(static_cast<std::size_t>(i)).health_port;
  }
  // GET `path` on replica i's health port (5 s deadline).
  testing::HttpResult health(int i, const std::string& path) const;
  // Waits until `needle` occurs at least `count` times in replica i's log.
  void wait_log(int i, const std::string& needle, int count, Seconds limit);
  static int count_in(const std::string& text, const std::string& needle);

  // Separate agent: credentials issued from the key Secret's agent CA (through
  // `berth-controller agent-credentials` on a data dir laid out like the controller's pki/),
  // then `berth-agent --controller wss://127.0.0.1:<agent port>`.
  void start_agent();
  void kill_agent();
  ChildProcess& agent() { return agent_; }
  std::string agent_log_path() const { return dir_ + "/agent.log"; }
  std::string agent_log() const { return read_file(agent_log_path()); }

  // --- kubectl (the server's kubeconfig, a discovery cache of the stack's own, 20 s request
  // timeout). Every stdout and stderr is kept for the secret scan.
  KubectlResult kubectl(const std::vector<std::string>& args, int timeout_seconds = 60);
  // Same, REQUIRE exit 0; returns stdout.
  std::string kubectl_ok(const std::vector<std::string>& args, int timeout_seconds = 60);
  const std::vector<std::string>& kubectl_outputs() const { return outputs_; }
  // `kubectl apply -f` of `yaml` (written to a 0600 file first: a password in it never reaches
  // an argv). REQUIRE success.
  void apply(const std::string& yaml);
  // Opaque Secret `name` in ns() with data key `key` = `password`, by kubectl apply, labelled
  // berth.dev/registry-credential=true (the opt-in berth requires) unless `opted_in` is false.
  void apply_password_secret(const std::string& name, const std::string& password,
                             const std::string& key = "password", bool opted_in = true);
  // The AppService manifest for registry image `tag` (private: registryUsername + the Secret
  // ref when `secret` is set); `extra_spec` is merged into spec.
  std::string app_yaml(const std::string& name, const std::string& tag, const std::string& secret,
                       const nlohmann::json& extra_spec = nlohmann::json::object(),
                       const std::string& username = {}) const;
  // `kubectl get KIND NAME -n ns -o json` (namespace `ns` when given; "" = cluster-scoped);
  // null when NotFound. REQUIREs anything else to succeed.
  nlohmann::json get(const std::string& kind, const std::string& name,
                     const std::optional<std::string>& ns = std::nullopt);
  // The items of `kubectl get KIND -n ns [-l selector] -o json`.
  nlohmann::json list(const std::string& kind, const std::string& selector = {},
                      const std::optional<std::string>& ns = std::nullopt);
  // `kubectl patch KIND NAME --type merge -p PATCH`; REQUIRE success.
  void patch(const std::string& kind, const std::string& name, const nlohmann::json& merge_patch);
  // `kubectl delete KIND NAME --wait=false`; REQUIRE success.
  void remove(const std::string& kind, const std::string& name);
  nlohmann::json app(const std::string& name) { return get("appservice", name); }
  // Polls `pred(app)` (kubectl get, every 300 ms) until true; FAILs with `what`, the last
  // object, the app's revisions and events and the log tails after `limit`.
  nlohmann::json wait_for(const std::string& name,
                          const std::function<bool(const nlohmann::json&)>& pred,
                          const std::string& what, Seconds limit = Seconds(120));
  // Polls until `kubectl get KIND NAME` is NotFound; FAILs with the last object.
  void wait_gone(const std::string& kind, const std::string& name, Seconds limit);
  // The app's ControllerRevisions (label berth.dev/appservice=<name>), by revision number.
  nlohmann::json revisions(const std::string& name);
  // events.k8s.io/v1 Events in ns() regarding AppService `name`.
  nlohmann::json events_for(const std::string& name);
  // The Lease of leader election (berth-system/berth-controller); null when absent.
  nlohmann::json lease();
  // Every object of every listable resource the server serves, as one JSON text per resource
  // (`kubectl get RESOURCE -A -o json`), for the canary scan; objects named in `except`
  // ("secrets/<ns>/<name>": the user's own Secrets, which hold the password by design) are
  // left out.
  std::vector<std::string> dump_everything(const std::vector<std::string>& except = {});

  // --- the app
  // GET `url` (http://127.0.0.1:PORT) with a 5 s deadline: the body, or "<error ...>".
  static std::string page(const std::string& url) { return Stack::page(url); }
  static void wait_page(const std::string& url, const std::string& expected, Seconds limit) {
    Stack::wait_page(url, expected, limit);
  }
  // IDs of every container berth created in this stack's podman (label berth.service);
  // `all` includes stopped ones.
  std::vector<std::string> containers(bool all = false);
  // A scan for the registry password in every encoded form (support/secret_scan.h).
  testing::SecretScan registry_secret_scan() const;

  // --- predicates on an AppService for wait_for
  static const nlohmann::json* condition(const nlohmann::json& app, const std::string& type);
  static std::string condition_status(const nlohmann::json& app, const std::string& type);
  static std::string condition_reason(const nlohmann::json& app, const std::string& type);
  // The controller has observed the object's current generation.
  static bool observed(const nlohmann::json& app);
  // phase Running, Ready=True, observed, currentRevision == revision, an endpoint.
  static std::function<bool(const nlohmann::json&)> running_at(int revision);

 private:
  struct Replica {
    ChildProcess process;
    std::string data_dir;
    std::uint16_t health_port = 0;
  };
  std::vector<std::string> kubectl_base() const;
  std::uint16_t read_port_file(int i, Seconds limit);
  void issue_agent_credentials();

  KubeStackOptions options_;
  testenv::Registry* registry_ = nullptr;
  std::unique_ptr<testenv::PodmanEnv> podman_;
  std::string dir_;
  std::unique_ptr<testenv::KubeApiServer> server_;
  std::string ns_;
  std::uint16_t agent_port_ = 0;
  std::string agent_credentials_;
  std::vector<std::string> outputs_;
  std::vector<Replica> replicas_;
  ChildProcess agent_;
};

}  // namespace berth::e2e
