#pragma once
// Shared by the kube integration suites: the test API server with a client Transport that uses
// its admin token, and a YAML manifest as JSON (to create what the project's manifests hold).
// A server that cannot start skips the test (tests/support/skip.h; a failure under CI=true):
//
//   TEST_CASE("...") {
//     BERTH_KUBE_CLUSTER(cluster);
//     ResourceClient apps(*cluster.transport, AppService::kType);
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include <yaml-cpp/yaml.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/secret.h"
#include "kube/resource_client.h"
#include "kube/transport.h"
#include "support/kube_testenv.h"
#include "support/skip.h"

namespace berth::kube::itest {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Cluster {
  testenv::KubeApiServer server;
  std::unique_ptr<Transport> transport;
};

// A transport to `server` as the user of `token`. Rate limits are raised: the tests are the
// only client and should not wait on client-go's 5 QPS.
inline std::unique_ptr<Transport> transport_for(const testenv::KubeApiServer& server,
                                                const std::string& token) {
  ClusterConfig config;
  config.server = server.server();
  config.ca_pem = read_file(server.ca_file());
  config.token = Secret(token);
  config.origin = "test API server";
  TransportOptions options;
  options.qps = 1000;
  options.burst = 1000;
  auto transport = make_transport(std::move(config), options);
  REQUIRE(transport.ok());
  return std::move(transport.value());
}

inline std::optional<Cluster> start_cluster(testenv::KubeApiServerOptions options = {}) {
  auto server = testenv::KubeApiServer::start(std::move(options));
  if (!server) {
    testing::skip_test("test API server: " + server.error().message);
    return std::nullopt;
  }
  Cluster cluster{std::move(server.value()), nullptr};
  cluster.transport = transport_for(cluster.server, cluster.server.admin_token());
  return cluster;
}

inline nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(yaml_to_json(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      // The manifests read here hold only strings (RBAC rules); no type guessing needed.
      return node.as<std::string>();
    default:
      return nullptr;
  }
}

// A minimal valid AppService.
inline nlohmann::json app(const std::string& ns, const std::string& name) {
  return {{"apiVersion", "berth.dev/v1alpha1"},
          {"kind", "AppService"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"spec", {{"imageRef", "nginx:1.25"}, {"containerPort", 8080}}}};
}

// Creates namespace `name` (the server, like a real one, wants it before objects go into it).
inline void make_namespace(Transport& transport, const std::string& name) {
  auto created = ResourceClient(transport, {"", "v1", "namespaces", "Namespace", false})
                     .create({{"metadata", {{"name", name}}}});
  if (!created) REQUIRE(created.error().code == ErrorCode::kConflict);
}

// How many requests of `verb` on `resource` the server has logged.
inline int count_requests(const testenv::KubeApiServer& server, const std::string& verb,
                          const std::string& resource) {
  int n = 0;
  for (const auto& r : server.requests()) {
    if (r.value("verb", "") == verb && r.value("resource", "") == resource) ++n;
  }
  return n;
}

// Every document of a multi-document YAML file, as JSON.
inline std::vector<nlohmann::json> load_manifests(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (const auto& doc : YAML::LoadAllFromFile(path)) {
    if (doc.IsMap()) out.push_back(yaml_to_json(doc));
  }
  return out;
}

}  // namespace berth::kube::itest

#define BERTH_KUBE_CLUSTER(var, ...)                                      \
  auto var##_started_ = ::berth::kube::itest::start_cluster(__VA_ARGS__); \
  if (!var##_started_) return;                                            \
  ::berth::kube::itest::Cluster& var = *var##_started_
