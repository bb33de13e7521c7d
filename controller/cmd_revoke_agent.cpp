// berth-controller revoke-agent NAME --data-dir DIR [--fingerprint SHA256]
// berth-controller revoke-agent NAME --kube [--kubeconfig F] [--context C] [--namespace NS] ...
// Adds an entry to the agent revocation list: DATA_DIR/pki/revoked-agents in standalone mode,
// the ConfigMap berth-revoked-agents in the controller's namespace in Kubernetes mode
// (kube_revocations.h). The agent link refuses the agent at its next handshake, and a running
// serve closes its connection within a maintenance tick (5 s), telling the agent why. Safe to
// run while serve runs.
#include <cstdlib>
#include <iostream>
#include <memory>

#include "command.h"
#include "kube/config.h"
#include "kube/transport.h"
#include "kube_revocations.h"
#include "pki.h"

namespace berth::controller {
namespace {

struct Options {
  std::string data_dir;
  std::string name;
  std::string fingerprint;
  bool kube = false;
  std::string kubeconfig;
  std::string context;
  std::string namespace_;
};

// The ConfigMap's namespace: --namespace, else $POD_NAMESPACE, else berth-system (where serve
// --kubernetes keeps its key Secret by the same rule).
std::string kube_namespace(const Options& o) {
  if (!o.namespace_.empty()) return o.namespace_;
  if (const char* ns = std::getenv("POD_NAMESPACE"); ns != nullptr && *ns != '\0') return ns;
  return "berth-system";
}

Status revoke_in_cluster(const Options& o) {
  kube::LoadOptions load;
  load.kubeconfig = o.kubeconfig;
  load.context = o.context;
  auto cluster = kube::load_config(load);
  if (!cluster) return cluster.error();
  auto transport = kube::make_transport(std::move(cluster).value(), {});
  if (!transport) return transport.error();
  return revoke_agent_kube(**transport, kube_namespace(o), Revocation{o.name, o.fingerprint});
}

int run(const Options& o) {
  if (o.kube == !o.data_dir.empty()) {
    std::cerr << "revoke-agent: give exactly one of --data-dir (standalone) and --kube\n";
    return 2;
  }
  Status st =
      o.kube ? revoke_in_cluster(o) : revoke_agent(o.data_dir, Revocation{o.name, o.fingerprint});
  if (!st.ok()) {
    std::cerr << "revoke-agent: " << st.error().message << "\n";
    return st.error().code == ErrorCode::kValidation ? 2 : 1;
  }
  if (o.fingerprint.empty())
    std::cout << "revoked every certificate of agent " << o.name << "\n";
  else
    std::cout << "revoked the certificate " << o.fingerprint << " of agent " << o.name << "\n";
  return 0;
}

const Registration kRegistration([](CLI::App& root, Runner& runner) {
  auto opts = std::make_shared<Options>();
  auto* sub = root.add_subcommand(
      "revoke-agent",
      "refuse an agent on the agent link (at its next handshake, and now if connected)");
  sub->add_option("NAME", opts->name, "agent name (its certificate CN)")->required();
  sub->add_option("--data-dir", opts->data_dir, "controller data directory (standalone mode)");
  sub->add_flag("--kube", opts->kube,
                "Kubernetes mode: add the entry to the ConfigMap berth-revoked-agents");
  sub->add_option(
      "--kubeconfig", opts->kubeconfig,
      "with --kube: kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  sub->add_option("--context", opts->context, "with --kube: kubeconfig context");
  sub->add_option("--namespace", opts->namespace_,
                  "with --kube: the controller's namespace (default: $POD_NAMESPACE, else "
                  "berth-system)");
  sub->add_option("--fingerprint", opts->fingerprint,
                  "revoke only the certificate with this SHA-256 fingerprint (lowercase hex)");
  sub->callback([opts, &runner] { runner = [opts] { return run(*opts); }; });
});

}  // namespace
}  // namespace berth::controller
