// `berth-controller kube check` as a real process against the test API server: exit 0 with the
// project's own RBAC (manifests/rbac.yaml) and CRD, exit 1 naming what is denied or missing,
// exit 2 when the server cannot be reached.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "kube/kube_itest.h"
#include "kube/resource_client.h"
#include "support/testenv.h"

namespace berth::kube {
namespace {

using nlohmann::json;

constexpr const char* kServiceAccountUser = "system:serviceaccount:berth-system:berth-controller";

std::string controller_binary() { return testenv::berth_binary("berth-controller"); }

// A kubeconfig for `token` against the test server (token auth, its CA file).
std::string write_kubeconfig(const testenv::KubeApiServer& server, const std::string& name,
                             const std::string& token) {
  const std::string path = server.dir() + "/kubeconfig-" + name;
  std::ofstream out(path);
  out << "apiVersion: v1\nkind: Config\ncurrent-context: " << name << "\n"
      << "clusters:\n- name: test\n  cluster:\n    server: " << server.server()
      << "\n    certificate-authority: " << server.ca_file() << "\n"
      << "users:\n- name: " << name << "\n  user:\n    token: " << token << "\n"
      << "contexts:\n- name: " << name << "\n  context:\n    cluster: test\n    user: " << name
      << "\n";
  out.close();
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return path;
}

struct Run {
  int code;
  std::string output;
};

Run kube_check(const std::string& kubeconfig, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {controller_binary(), "kube", "check", "--kubeconfig",
                                   kubeconfig};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Run run{};
  run.code = testenv::run_command(argv, &run.output, {}, 60);
  INFO(run.output);
  return run;
}

const ResourceType& type_for(const json& object) {
  static const std::map<std::string, ResourceType> types = {
      {"ClusterRole", {"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false}},
      {"ClusterRoleBinding",
       {"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false}},
      {"Role", {"rbac.authorization.k8s.io", "v1", "roles", "Role", true}},
      {"RoleBinding", {"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true}},
  };
  return types.at(object["kind"].get<std::string>());
}

// Applies manifests/rbac.yaml as kustomize would (namespaced objects in berth-system), with
// `edit` applied to each object first.
void install_rbac(Transport& transport, const std::function<void(json&)>& edit = {}) {
  ResourceClient namespaces(transport, {"", "v1", "namespaces", "Namespace", false});
  auto ns = namespaces.create({{"metadata", {{"name", "berth-system"}}}});
  if (!ns) REQUIRE(ns.error().code == ErrorCode::kConflict);
  for (json object : itest::load_manifests(testenv::source_dir() + "/manifests/rbac.yaml")) {
    if (type_for(object).namespaced) object["metadata"]["namespace"] = "berth-system";
    if (edit) edit(object);
    const ResourceType& type = type_for(object);
    auto created = ResourceClient(transport, type).create(object);
    INFO(object.dump());
    REQUIRE(created.ok());
  }
}

TEST_CASE("kube check passes with the admin credential and the CRD installed", "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  const Run run = kube_check(cluster.server.kubeconfig_file());
  INFO(run.output);
  CHECK(run.code == 0);
  CHECK(run.output.find("server version: v") != std::string::npos);
  CHECK(
      run.output.find("crd appservices.berth.dev: ok (installed, Established, serving v1alpha1)") !=
      std::string::npos);
  CHECK(run.output.find("ok      watch appservices.berth.dev (all namespaces)") !=
        std::string::npos);
  CHECK(run.output.find("ok      create leases.coordination.k8s.io in berth-system") !=
        std::string::npos);
  CHECK(run.output.find("denied") == std::string::npos);
  CHECK(run.output.find(cluster.server.admin_token()) == std::string::npos);
}

TEST_CASE("kube check passes for the controller's service account bound by manifests/rbac.yaml",
          "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  install_rbac(*cluster.transport);
  cluster.server.set_token(kServiceAccountUser, "sa-token-0123456789");
  const Run run = kube_check(write_kubeconfig(cluster.server, "sa", "sa-token-0123456789"));
  INFO(run.output);
  CHECK(run.code == 0);
  // The service account may not read CRDs: discovery answers instead.
  CHECK(run.output.find("crd appservices.berth.dev: ok") != std::string::npos);
  CHECK(run.output.find("denied") == std::string::npos);
  CHECK(run.output.find("sa-token-0123456789") == std::string::npos);
}

TEST_CASE("kube check exits 1 and prints the denied line when RBAC lacks a permission",
          "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  // The same RBAC without the events rule.
  install_rbac(*cluster.transport, [](json& object) {
    if (object["kind"] != "ClusterRole") return;
    json rules = json::array();
    for (const auto& rule : object["rules"]) {
      if (rule["resources"] != json::array({"events"})) rules.push_back(rule);
    }
    object["rules"] = rules;
  });
  cluster.server.set_token(kServiceAccountUser, "sa-token-limited-42");
  const Run run = kube_check(write_kubeconfig(cluster.server, "limited", "sa-token-limited-42"));
  INFO(run.output);
  CHECK(run.code == 1);
  CHECK(run.output.find("denied  create events.events.k8s.io (all namespaces)") !=
        std::string::npos);
  CHECK(run.output.find("denied  patch events.events.k8s.io (all namespaces)") !=
        std::string::npos);
  CHECK(run.output.find("ok      get secrets (all namespaces)") != std::string::npos);
  CHECK(run.output.find("result: 2 problems") != std::string::npos);
}

TEST_CASE(
    "kube check --namespace checks a controller that manages one namespace through a "
    "RoleBinding",
    "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  auto team = ResourceClient(*cluster.transport, {"", "v1", "namespaces", "Namespace", false})
                  .create({{"metadata", {{"name", "team-a"}}}});
  REQUIRE(team.ok());
  // The ClusterRole granted in team-a only.
  install_rbac(*cluster.transport, [](json& object) {
    if (object["kind"] != "ClusterRoleBinding") return;
    object["kind"] = "RoleBinding";
    object["metadata"]["namespace"] = "team-a";
  });
  cluster.server.set_token(kServiceAccountUser, "sa-token-team-a-7");
  const std::string kubeconfig = write_kubeconfig(cluster.server, "team", "sa-token-team-a-7");
  const Run scoped = kube_check(kubeconfig, {"--namespace", "team-a"});
  INFO(scoped.output);
  CHECK(scoped.code == 0);
  CHECK(scoped.output.find("ok      list appservices.berth.dev in team-a") != std::string::npos);
  const Run everywhere = kube_check(kubeconfig);
  INFO(everywhere.output);
  CHECK(everywhere.code == 1);
  CHECK(everywhere.output.find("denied  list appservices.berth.dev (all namespaces)") !=
        std::string::npos);
}

TEST_CASE("kube check exits 1 when the CRD is not installed", "[kube][itest]") {
  testenv::KubeApiServerOptions options;
  options.default_crds = false;
  BERTH_KUBE_CLUSTER(cluster, options);
  const Run run = kube_check(cluster.server.kubeconfig_file());
  INFO(run.output);
  CHECK(run.code == 1);
  CHECK(run.output.find("crd appservices.berth.dev: not installed (kubectl apply -f crds/)") !=
        std::string::npos);
}

TEST_CASE("kube check exits 2 when the server cannot be reached", "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  // The server's CA and a loopback port nobody listens on.
  std::string text = itest::read_file(write_kubeconfig(cluster.server, "gone", "t"));
  text.replace(text.find(cluster.server.server()), cluster.server.server().size(),
               "https://127.0.0.1:1");
  const std::string kubeconfig = cluster.server.dir() + "/kubeconfig-unreachable";
  std::ofstream(kubeconfig) << text;
  const Run run = kube_check(kubeconfig);
  INFO(run.output);
  CHECK(run.code == 2);
  CHECK(run.output.find("server version: unreachable") != std::string::npos);
}

TEST_CASE("kube check names a bad kubeconfig and exits 2", "[kube][itest]") {
  const std::string dir = testenv::make_temp_dir("kube-check");
  std::ofstream(dir + "/kubeconfig") << "apiVersion: v1\nkind: Config\nclusters: [\n";
  const Run run = kube_check(dir + "/kubeconfig");
  INFO(run.output);
  CHECK(run.code == 2);
  CHECK(run.output.find(dir + "/kubeconfig") != std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace berth::kube
