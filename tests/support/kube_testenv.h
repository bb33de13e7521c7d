#pragma once
// A test Kubernetes API server for integration tests: hack/testenv/kubeapi/ (Python),
// started on 127.0.0.1:<free port> in its own temp dir with a throwaway CA, stopped and removed
// when the object is destroyed. See docs/kubernetes.md ("The test API server") for what it
// implements and what it does not.
//
// Threading: create and use it from the test thread. start() failures are values; the control
// calls throw std::runtime_error (Catch reports the message as a failed test).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace berth::testenv {

struct KubeApiServerOptions {
  // CRD manifests applied at start (default: the project's crds/appservices.berth.dev.yaml).
  std::vector<std::string> crd_files;
  bool default_crds = true;
};

class KubeApiServer {
 public:
  static Result<KubeApiServer> start(KubeApiServerOptions options = {});

  KubeApiServer(KubeApiServer&& other) noexcept;
  KubeApiServer& operator=(KubeApiServer&& other) noexcept;
  KubeApiServer(const KubeApiServer&) = delete;
  KubeApiServer& operator=(const KubeApiServer&) = delete;
  ~KubeApiServer();

  const std::string& server() const { return server_; }  // "https://127.0.0.1:PORT"
  const std::string& dir() const { return dir_; }
  std::string ca_file() const;           // PEM of the CA that signed the server's certificate
  std::string admin_token() const;       // a bearer token with every permission
  std::string client_cert_file() const;  // a client certificate (CN=berth-test, O=system:masters)
  std::string client_key_file() const;
  std::string kubeconfig_file() const;  // token-based, context "berth-test", for kubectl

  // Test control (POST /_test/... on the same server, admin token):
  // forget the change history: a watch or list from an older resourceVersion gets 410 Gone.
  void compact();
  // Faults: the next `count` requests matching verb ("get","list","watch","create","update",
  // "patch","delete", "" = any) and resource ("" = any) get `kind`: "status" (answer `code`),
  // "drop-watch" (close open watches mid-stream), "stall" (hold the request `seconds`),
  // "gone-in-stream" (send an ERROR event with code 410 on the next watch).
  void inject_fault(const nlohmann::json& fault);
  void clear_faults();
  // Tokens the server accepts (user name -> token); a removed token gets 401.
  void set_token(const std::string& user, const std::string& token);
  void remove_token(const std::string& token);
  // Every request served so far: [{verb, resource, subresource, namespace, name, user, code}],
  // plus labelSelector when the request carried one.
  nlohmann::json requests() const;

 private:
  KubeApiServer() = default;
  nlohmann::json control(const std::string& path, const nlohmann::json& body) const;
  std::string server_;
  std::string dir_;
  int pid_ = -1;
};

}  // namespace berth::testenv
