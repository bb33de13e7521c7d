#pragma once
// The agent revocation list in Kubernetes mode: the ConfigMap berth-revoked-agents in the
// controller's namespace, key `revoked-agents`, in the same line format as standalone mode's
// DATA_DIR/pki/revoked-agents (pki.h parse_revocations; docs/agent-link.md *Revocation*).
//
// A ConfigMap rather than the key Secret: the list is not secret, and whoever may revoke an
// agent then needs no access to the CA key and master key in that Secret (revoking must not
// need the power to mint).
//
// The leader follows it with an informer (one object, field selector on its name), so a change
// reaches the link's refusal check as soon as the watch delivers it; the link closes connected
// revoked agents at its next maintenance tick. A ConfigMap that turns malformed keeps the last
// good list (logged as an error); a deleted one means nothing is revoked.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "kube/informer.h"
#include "kube/resource_client.h"
#include "kube/transport.h"
#include "pki.h"

namespace berth::controller {

inline constexpr const char* kRevocationConfigMap = "berth-revoked-agents";
inline constexpr const char* kRevocationConfigMapKey = "revoked-agents";

class KubeRevocations {
 public:
  // Starts following the ConfigMap in `namespace_` and waits (at most `sync_limit`) for the
  // first list. kUnavailable when the list does not arrive in time; kDataLoss when the ConfigMap
  // exists but holds a malformed list (the leader should not serve a list it cannot honour, as
  // standalone serve refuses to start). `transport` must outlive the object.
  static Result<std::unique_ptr<KubeRevocations>> start(
      kube::Transport& transport, const std::string& namespace_,
      std::chrono::milliseconds sync_limit = std::chrono::seconds(30));
  ~KubeRevocations();  // stops the watch
  KubeRevocations(const KubeRevocations&) = delete;
  KubeRevocations& operator=(const KubeRevocations&) = delete;

  // The sentence the agent is told when it is revoked, empty otherwise. Memory only (the link
  // calls it on its I/O thread). Thread-safe.
  std::string reason(const std::string& name, const std::string& fingerprint) const;

 private:
  KubeRevocations(kube::Transport& transport, const std::string& namespace_);
  // Returns false (and keeps the last good list) when the object holds a malformed list.
  bool load(const nlohmann::json& object);
  void clear();

  std::string namespace_;
  kube::ResourceClient client_;
  std::unique_ptr<kube::Informer> informer_;
  mutable std::mutex mu_;
  std::vector<Revocation> list_;
  bool malformed_ = false;  // the last object seen could not be parsed
};

// Adds one entry to the ConfigMap (creating it when missing), with the API server's optimistic
// concurrency: a concurrent writer's change is re-read and kept, never overwritten.
// kValidation as validate_revocation; the API server's errors otherwise (kForbidden when the
// caller may not get/create/update ConfigMaps there).
Status revoke_agent_kube(kube::Transport& transport, const std::string& namespace_,
                         const Revocation& revocation);

}  // namespace berth::controller
