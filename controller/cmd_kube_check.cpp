// `berth-controller kube check --kubeconfig FILE [--context NAME] [--namespace NS]`: an
// operator's first command when Kubernetes mode does not work. It connects with the same
// configuration and client the controller uses and prints, one line each:
//   - the server and its version (GET /version);
//   - whether the CRD appservices.berth.dev is installed, Established and serving v1alpha1
//     (from the CRD object; through discovery when reading CRDs is not allowed, as it is not for
//     the controller's own service account);
//   - for each verb and resource berth needs, "ok" or "denied" from a SelfSubjectAccessReview:
//     the permissions of manifests/rbac.yaml across all namespaces (or, with --namespace NS, in
//     NS only: a controller that manages some namespaces gets the ClusterRole through a
//     RoleBinding in each), and the Lease and the key Secret in the controller's own namespace
//     (--controller-namespace, default berth-system).
// Exit 0 only when everything is there; 1 when something is missing or denied; 2 when the
// configuration cannot be loaded or the server cannot be reached. Output goes to stdout, never a
// credential: the configuration's origin and server are printed, its token or key never.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.h"
#include "kube/config.h"
#include "kube/resource_client.h"
#include "kube/status_error.h"
#include "kube/transport.h"

namespace berth::controller {
namespace {

using nlohmann::json;

constexpr int kExitMissing = 1;
constexpr int kExitUnreachable = 2;
constexpr const char* kCrdName = "appservices.berth.dev";
constexpr const char* kGroup = "berth.dev";
constexpr const char* kVersion = "v1alpha1";
constexpr const char* kPlural = "appservices";

struct CheckOptions {
  std::string kubeconfig;
  std::string context;
  std::string namespace_;  // "" = all namespaces
  std::string controller_namespace = "berth-system";
};

// What berth needs, verb by verb: the same list as manifests/rbac.yaml (keep them together).
struct Permission {
  std::string verb;
  std::string group;
  std::string resource;
  std::string subresource;
  bool own_namespace = false;  // checked in the controller's namespace, not cluster-wide
  std::string name;            // the object's name, where the rule grants by resourceNames
};

// The Lease's default name (serve --leader-election-id) and the key Secret's name:
// manifests/rbac.yaml grants get (and the Lease's update) by name.
constexpr const char* kLeaseName = "berth-controller";
constexpr const char* kKeySecretName = "berth-controller-keys";

std::vector<Permission> required_permissions() {
  std::vector<Permission> out;
  auto add = [&](std::initializer_list<const char*> verbs, const char* group, const char* resource,
                 const char* subresource = "", bool own_namespace = false, const char* name = "") {
    for (const char* verb : verbs)
      out.push_back({verb, group, resource, subresource, own_namespace, name});
  };
  add({"get", "list", "watch", "update"}, kGroup, kPlural);
  add({"patch"}, kGroup, kPlural, "status");
  add({"update"}, kGroup, kPlural, "finalizers");
  add({"list", "create", "patch", "delete"}, "apps", "controllerrevisions");
  add({"get", "list", "watch", "create", "update", "delete"}, "", "secrets");
  add({"create", "patch"}, "events.k8s.io", "events");
  add({"create"}, "coordination.k8s.io", "leases", "", true);
  add({"get", "update"}, "coordination.k8s.io", "leases", "", true, kLeaseName);
  add({"create"}, "", "secrets", "", true);
  add({"get"}, "", "secrets", "", true, kKeySecretName);
  add({"list", "watch"}, "", "configmaps", "", true);  // the revocation list
  return out;
}

std::string describe(const Permission& p, const std::string& namespace_) {
  std::string what = p.verb + " " + p.resource;
  if (!p.group.empty()) what += "." + p.group;
  if (!p.subresource.empty()) what += "/" + p.subresource;
  if (!p.name.empty()) what += " named " + p.name;
  what += namespace_.empty() ? " (all namespaces)" : " in " + namespace_;
  return what;
}

Result<json> get_json(kube::Transport& transport, const std::string& target) {
  kube::Request request;
  request.target = target;
  request.timeout = std::chrono::seconds(15);
  auto response = transport.send(request);
  if (!response) return response.take_error();
  if (response->status != 200) return kube::status_error(response->status, response->body);
  json body = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    return make_error(ErrorCode::kUnavailable, target + ": the answer is not a JSON object");
  }
  return body;
}

std::string string_at(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "" when the CRD object says the resource is usable, else what is wrong.
std::string crd_problem(const json& crd) {
  bool established = false;
  if (auto status = crd.find("status"); status != crd.end() && status->is_object()) {
    if (auto conditions = status->find("conditions");
        conditions != status->end() && conditions->is_array()) {
      for (const auto& c : *conditions) {
        if (c.is_object() && string_at(c, "type") == "Established" &&
            string_at(c, "status") == "True") {
          established = true;
        }
      }
    }
  }
  if (!established) return "installed but not Established (the API server has not accepted it)";
  bool serving = false;
  if (auto spec = crd.find("spec"); spec != crd.end() && spec->is_object()) {
    if (auto versions = spec->find("versions"); versions != spec->end() && versions->is_array()) {
      for (const auto& v : *versions) {
        if (v.is_object() && string_at(v, "name") == kVersion && v.value("served", false)) {
          serving = true;
        }
      }
    }
  }
  if (!serving) return std::string("installed but not serving ") + kVersion + " (an older CRD?)";
  return "";
}

// Prints the CRD line; true when it is usable.
bool check_crd(kube::Transport& transport) {
  kube::ResourceClient crds(transport, {"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                        "CustomResourceDefinition", false});
  auto crd = crds.get("", kCrdName);
  if (crd) {
    const std::string problem = crd_problem(*crd);
    if (problem.empty()) {
      std::printf("crd %s: ok (installed, Established, serving %s)\n", kCrdName, kVersion);
      return true;
    }
    std::printf("crd %s: %s\n", kCrdName, problem.c_str());
    return false;
  }
  if (crd.error().code == ErrorCode::kNotFound) {
    std::printf("crd %s: not installed (kubectl apply -f crds/)\n", kCrdName);
    return false;
  }
  if (crd.error().code != ErrorCode::kPermissionDenied) {
    std::printf("crd %s: cannot tell: %s\n", kCrdName, crd.error().message.c_str());
    return false;
  }
  // The controller's service account may not read CRDs; discovery lists a custom resource only
  // once it is Established, which is what matters.
  auto discovery = get_json(transport, std::string("/apis/") + kGroup + "/" + kVersion);
  if (!discovery) {
    if (discovery.error().code == ErrorCode::kNotFound) {
      std::printf("crd %s: not installed (kubectl apply -f crds/)\n", kCrdName);
    } else {
      std::printf("crd %s: cannot tell: %s\n", kCrdName, discovery.error().message.c_str());
    }
    return false;
  }
  if (auto resources = discovery->find("resources");
      resources != discovery->end() && resources->is_array()) {
    for (const auto& r : *resources) {
      if (r.is_object() && string_at(r, "name") == kPlural) {
        std::printf(
            "crd %s: ok (serving %s, seen through discovery: reading CRDs is not allowed)\n",
            kCrdName, kVersion);
        return true;
      }
    }
  }
  std::printf("crd %s: not serving %s (kubectl apply -f crds/)\n", kCrdName, kVersion);
  return false;
}

// Prints one line per permission; returns how many are not granted.
int check_permissions(kube::Transport& transport, const std::string& managed_namespace,
                      const std::string& own_namespace) {
  kube::ResourceClient reviews(transport, {"authorization.k8s.io", "v1", "selfsubjectaccessreviews",
                                           "SelfSubjectAccessReview", false});
  int problems = 0;
  for (const auto& p : required_permissions()) {
    const std::string namespace_ = p.own_namespace ? own_namespace : managed_namespace;
    json attributes = {{"verb", p.verb}, {"group", p.group}, {"resource", p.resource}};
    if (!p.subresource.empty()) attributes["subresource"] = p.subresource;
    if (!p.name.empty()) attributes["name"] = p.name;
    if (!namespace_.empty()) attributes["namespace"] = namespace_;
    const json review = {{"apiVersion", "authorization.k8s.io/v1"},
                         {"kind", "SelfSubjectAccessReview"},
                         {"spec", {{"resourceAttributes", attributes}}}};
    const std::string what = describe(p, namespace_);
    auto answer = reviews.create(review);
    if (!answer) {
      ++problems;
      std::printf("error   %s: %s\n", what.c_str(), answer.error().message.c_str());
      continue;
    }
    const json status = answer->value("status", json::object());
    if (status.is_object() && status.value("allowed", false)) {
      std::printf("ok      %s\n", what.c_str());
    } else {
      ++problems;
      std::printf("denied  %s\n", what.c_str());
    }
  }
  return problems;
}

int run_check(const CheckOptions& opts) {
  kube::LoadOptions load;
  load.kubeconfig = opts.kubeconfig;
  load.context = opts.context;
  auto config = kube::load_config(load);
  if (!config) {
    std::printf("config: %s\n", config.error().message.c_str());
    return kExitUnreachable;
  }
  std::printf("config: %s\n", config->origin.c_str());
  std::printf("server: %s\n", config->server.c_str());
  auto transport = kube::make_transport(std::move(config.value()));
  if (!transport) {
    std::printf("connect: %s\n", transport.error().message.c_str());
    return kExitUnreachable;
  }
  auto version = get_json(**transport, "/version");
  if (!version) {
    std::printf("server version: unreachable: %s\n", version.error().message.c_str());
    std::fflush(stdout);
    return kExitUnreachable;
  }
  std::printf("server version: %s\n",
              kube::one_line(string_at(*version, "gitVersion"), 80).c_str());
  int problems = check_crd(**transport) ? 0 : 1;
  problems += check_permissions(**transport, opts.namespace_, opts.controller_namespace);
  if (problems == 0) {
    std::printf("result: everything berth needs is there\n");
  } else {
    std::printf("result: %d problem%s (see the lines above)\n", problems, problems == 1 ? "" : "s");
  }
  std::fflush(stdout);
  return problems == 0 ? 0 : kExitMissing;
}

const Registration kRegistration([](CLI::App& root, Runner& run) {
  auto* group = root.add_subcommand("kube", "Kubernetes mode tools");
  group->require_subcommand(1);
  auto* check = group->add_subcommand(
      "check",
      "Connect to the Kubernetes API server and print its version, whether the AppService CRD "
      "is installed and served, and which permissions berth needs are granted (exit 0 only "
      "when everything is there, 1 when something is missing, 2 when the server is unreachable)");
  auto opts = std::make_shared<CheckOptions>();
  check->add_option("--kubeconfig", opts->kubeconfig,
                    "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  check->add_option("--context", opts->context, "kubeconfig context (default: current-context)");
  check->add_option("--namespace", opts->namespace_,
                    "check the permissions in this namespace only (default: all namespaces)");
  check
      ->add_option("--controller-namespace", opts->controller_namespace,
                   "the controller's own namespace, where its Lease lives")
      ->capture_default_str();
  check->callback([opts, &run] { run = [opts] { return run_check(*opts); }; });
});

}  // namespace
}  // namespace berth::controller
