#pragma once
// A generic client for one resource type (group/version/plural), and the few typed views berth
// uses on top of it. Objects are nlohmann::json as the server sends them; typed helpers in
// kube/types.h convert the fields berth reads.
//
// Errors: the server's Status object is decoded into the message ("appservices.berth.dev \"web\"
// not found", "... the object has been modified; please apply your changes to the latest
// version and try again") with the code mapped: 404 kNotFound, 409 kConflict (also
// AlreadyExists), 410 kFailedPrecondition ("expired: ..."), 422/400
// kValidation/kInvalidArgument, 401 kUnauthenticated, 403 kPermissionDenied, 429/5xx kUnavailable,
// timeouts kDeadlineExceeded.
#include <functional>
#include <optional>
#include <stop_token>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "kube/transport.h"

namespace berth::kube {

struct ResourceType {
  std::string group;  // "" for the core group
  std::string version;
  std::string resource;  // plural
  std::string kind;
  bool namespaced = true;
};

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int limit = 500;  // 0 = no limit
  std::string continue_token;
  std::string resource_version;
};

struct ListPage {
  std::vector<nlohmann::json> items;
  std::string resource_version;
  std::string continue_token;  // empty on the last page
};

struct WatchOptions {
  std::string resource_version;
  int timeout_seconds = 300;
  bool allow_bookmarks = true;
  std::string label_selector;
  std::string field_selector;
};

struct WatchEvent {
  std::string type;  // ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
  nlohmann::json object;
};

struct PatchOptions {
  std::string field_manager = "berth-controller";
  bool force = false;       // server-side apply: take ownership of conflicting fields
  std::string subresource;  // "" or "status"
};

class ResourceClient {
 public:
  ResourceClient(Transport& transport, ResourceType type);
  const ResourceType& type() const { return type_; }

  // namespace_ is ignored for cluster-scoped types; "" lists across all namespaces.
  Result<nlohmann::json> get(const std::string& namespace_, const std::string& name);
  Result<ListPage> list(const std::string& namespace_, const ListOptions& options = {});
  // Every page, following continue tokens (a 410 on a continue token restarts the list).
  Result<ListPage> list_all(const std::string& namespace_, ListOptions options = {});
  Result<nlohmann::json> create(const nlohmann::json& object);
  // PUT with metadata.resourceVersion: kConflict when it is stale.
  Result<nlohmann::json> update(const nlohmann::json& object, const std::string& subresource = "");
  Result<nlohmann::json> merge_patch(const std::string& namespace_, const std::string& name,
                                     const nlohmann::json& patch, const PatchOptions& options = {});
  Result<nlohmann::json> apply(const nlohmann::json& object, const PatchOptions& options = {});
  // kNotFound when already gone. With a uid/resourceVersion precondition when non-empty.
  Status remove(const std::string& namespace_, const std::string& name,
                const std::string& precondition_uid = "");
  // Reads the object, lets `mutate` change it and PUTs it; on 409 re-reads and retries (up to
  // `attempts`). mutate returns false to skip the write.
  Result<nlohmann::json> update_with_retry(const std::string& namespace_, const std::string& name,
                                           const std::function<bool(nlohmann::json&)>& mutate,
                                           const std::string& subresource = "", int attempts = 5);
  // One watch call: events until the server closes the stream, timeout_seconds pass, `stop` is
  // requested or on_event returns false. A 410 (HTTP status or in-stream ERROR with code 410) is
  // returned as an Error whose message starts with "expired:" and sets `gone` when non-null.
  Status watch(const std::string& namespace_, const WatchOptions& options,
               const std::function<bool(const WatchEvent&)>& on_event, std::stop_token stop,
               bool* gone = nullptr);

  std::string collection_path(const std::string& namespace_) const;
  std::string object_path(const std::string& namespace_, const std::string& name) const;

 private:
  Transport& transport_;
  ResourceType type_;
};

}  // namespace berth::kube
