#pragma once
// Where the Kubernetes API server is and how to prove who we are.
//
// Sources, in the order load_config() tries them: an explicit kubeconfig path (--kubeconfig),
// $KUBECONFIG (the first file of the list; kubeconfigs are not merged), in-cluster configuration
// (service-account token and CA under /var/run/secrets/kubernetes.io/serviceaccount,
// KUBERNETES_SERVICE_HOST/PORT), then ~/.kube/config. Errors are values: a bad kubeconfig
// names the file and the field ("kubeconfig /x/config: users[0].user.client-key-data: not base64").
//
// insecure-skip-tls-verify in a kubeconfig is refused (kInvalidArgument) unless
// LoadOptions::allow_insecure is set: a controller that holds registry credentials does not talk
// to an unverified server by accident.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/secret.h"

namespace berth::kube {

// An exec credential plugin (client.authentication.k8s.io/v1), as written in a kubeconfig.
struct ExecConfig {
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to the plugin's environment
  std::string api_version;                               // client.authentication.k8s.io/v1
  std::string interactive_mode;                          // Never | IfAvailable | Always
  bool provide_cluster_info = false;
};

struct ClusterConfig {
  std::string server;  // "https://host:port" (no trailing slash)
  std::string tls_server_name;
  std::string ca_pem;  // empty: the system's trust store
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;
  Secret client_key_pem;
  // At most one bearer-token source is set.
  Secret token;
  std::string token_file;  // re-read every minute (service-account tokens rotate)
  std::optional<ExecConfig> exec;
  std::string default_namespace;  // the context's namespace, or the service account's
  std::string origin;             // "kubeconfig FILE (context NAME)" or "in-cluster", for messages
};

struct LoadOptions {
  std::string kubeconfig;  // explicit path; empty = $KUBECONFIG, in-cluster, ~/.kube/config
  std::string context;     // empty = current-context
  bool allow_insecure = false;
  // In-cluster paths, overridable for tests.
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
};

Result<ClusterConfig> load_kubeconfig(const std::string& path, const LoadOptions& options);
Result<ClusterConfig> load_in_cluster(const LoadOptions& options);
Result<ClusterConfig> load_config(const LoadOptions& options);

}  // namespace berth::kube
