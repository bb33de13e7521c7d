#pragma once
// Typed views of the objects berth reads and writes, over the generic ResourceClient:
// AppService (berth.dev/v1alpha1, crds/appservices.berth.dev.yaml), Secret, ControllerRevision,
// Lease and events.k8s.io/v1 Event. Each has its ResourceType (`kType`), from_json and to_json;
// Typed<T> is the one client for all of them.
//
// Round trips keep what berth does not model: from_json stores the whole object in `raw`, and
// to_json writes the typed fields over a copy of it, so an update never drops a field another
// writer set (a label, an annotation, a newer API field). Fields the server has not set read as
// their defaults (the CRD's defaults for AppService); a field of the wrong JSON type is an error
// (kInvalidArgument naming the field), never a silent default.
//
// Secret values are berth::Secret: decoded from base64 on the way in, never printable.
// Pure data and conversions; Typed<T> has ResourceClient's threading and error contract.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "common/secret.h"
#include "kube/resource_client.h"

namespace berth::kube {

struct OwnerReference {
  std::string api_version;
  std::string kind;
  std::string name;
  std::string uid;
  bool controller = false;
  bool block_owner_deletion = false;
};

struct ObjectMeta {
  std::string name;
  std::string namespace_;
  std::string uid;
  std::string resource_version;
  std::int64_t generation = 0;
  std::string creation_timestamp;
  std::string deletion_timestamp;  // empty unless the object is being deleted
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> finalizers;
  std::vector<OwnerReference> owner_references;
};

// metav1.Condition.
struct Condition {
  std::string type;
  std::string status;  // True | False | Unknown
  std::int64_t observed_generation = 0;
  std::string last_transition_time;
  std::string reason;
  std::string message;
};

struct SecretKeyRef {
  std::string name;
  std::string key = "password";
};

struct HealthCheckSpec {
  std::string path;
  int interval_seconds = 5;
  int timeout_seconds = 3;
  int healthy_threshold = 1;
};

struct AppServiceSpec {
  std::string image_ref;
  int container_port = 0;
  std::string registry_username;
  std::optional<SecretKeyRef> registry_password_secret_ref;
  std::string zone;
  std::string plan_name = "tier-1";
  std::map<std::string, std::string> env;
  std::vector<std::string> custom_domains;
  HealthCheckSpec health_check;
};

struct AppServiceStatus {
  std::int64_t observed_generation = 0;
  std::string phase;
  std::int64_t current_revision = 0;
  std::string image_digest;
  std::string agent;
  std::string endpoint;
  std::string last_error;
  std::vector<Condition> conditions;
};

struct AppService {
  static const ResourceType kType;
  ObjectMeta metadata;
  AppServiceSpec spec;
  AppServiceStatus status;
  nlohmann::json raw = nlohmann::json::object();

  static Result<AppService> from_json(const nlohmann::json& object);
  nlohmann::json to_json() const;
};

struct KubeSecret {
  static const ResourceType kType;
  ObjectMeta metadata;
  std::string type = "Opaque";
  std::map<std::string, Secret> data;  // decoded
  bool immutable = false;
  nlohmann::json raw = nlohmann::json::object();

  static Result<KubeSecret> from_json(const nlohmann::json& object);
  nlohmann::json to_json() const;  // data base64-encoded again
};

struct ControllerRevision {
  static const ResourceType kType;
  ObjectMeta metadata;
  std::int64_t revision = 0;
  nlohmann::json data;  // whatever the owner recorded (berth: the AppService spec it deployed)
  nlohmann::json raw = nlohmann::json::object();

  static Result<ControllerRevision> from_json(const nlohmann::json& object);
  nlohmann::json to_json() const;
};

struct LeaseSpec {
  std::string holder_identity;
  int lease_duration_seconds = 0;
  std::string acquire_time;  // RFC 3339 with microseconds (MicroTime)
  std::string renew_time;
  int lease_transitions = 0;
};

struct Lease {
  static const ResourceType kType;
  ObjectMeta metadata;
  LeaseSpec spec;
  nlohmann::json raw = nlohmann::json::object();

  static Result<Lease> from_json(const nlohmann::json& object);
  nlohmann::json to_json() const;
};

struct ObjectReference {
  std::string api_version;
  std::string kind;
  std::string namespace_;
  std::string name;
  std::string uid;
  std::string resource_version;
};

struct EventSeries {
  int count = 0;
  std::string last_observed_time;
};

// events.k8s.io/v1 Event.
struct Event {
  static const ResourceType kType;
  ObjectMeta metadata;
  std::string event_time;  // MicroTime
  std::string reporting_controller;
  std::string reporting_instance;
  std::string action;
  std::string reason;
  std::string note;
  std::string type = "Normal";  // Normal | Warning
  ObjectReference regarding;
  std::optional<EventSeries> series;
  nlohmann::json raw = nlohmann::json::object();

  static Result<Event> from_json(const nlohmann::json& object);
  nlohmann::json to_json() const;
};

// A ResourceClient that speaks T. T provides kType, from_json and to_json.
template <typename T>
class Typed {
 public:
  explicit Typed(Transport& transport) : client_(transport, T::kType) {}

  Result<T> get(const std::string& namespace_, const std::string& name) {
    return convert(client_.get(namespace_, name));
  }
  // Every page; objects that do not convert make the whole call fail (naming the object).
  Result<std::vector<T>> list(const std::string& namespace_, ListOptions options = {}) {
    auto page = client_.list_all(namespace_, std::move(options));
    if (!page) return page.take_error();
    std::vector<T> out;
    out.reserve(page->items.size());
    for (const auto& item : page->items) {
      auto typed = T::from_json(item);
      if (!typed) return typed.take_error();
      out.push_back(std::move(typed.value()));
    }
    return out;
  }
  Result<T> create(const T& object) { return convert(client_.create(object.to_json())); }
  Result<T> update(const T& object) { return convert(client_.update(object.to_json())); }
  Result<T> update_status(const T& object) {
    return convert(client_.update(object.to_json(), "status"));
  }
  Result<T> merge_patch(const std::string& namespace_, const std::string& name,
                        const nlohmann::json& patch, const PatchOptions& options = {}) {
    return convert(client_.merge_patch(namespace_, name, patch, options));
  }
  Result<T> apply(const T& object, const PatchOptions& options = {}) {
    return convert(client_.apply(object.to_json(), options));
  }
  Status remove(const std::string& namespace_, const std::string& name,
                const std::string& precondition_uid = "") {
    return client_.remove(namespace_, name, precondition_uid);
  }
  // Read-modify-write with 409 retries (ResourceClient::update_with_retry) on the typed view.
  Result<T> update_with_retry(const std::string& namespace_, const std::string& name,
                              const std::function<bool(T&)>& mutate,
                              const std::string& subresource = "", int attempts = 5) {
    std::optional<Error> conversion;
    auto result = client_.update_with_retry(
        namespace_, name,
        [&](nlohmann::json& object) {
          auto typed = T::from_json(object);
          if (!typed) {
            conversion = typed.take_error();
            return false;
          }
          if (!mutate(typed.value())) return false;
          object = typed->to_json();
          return true;
        },
        subresource, attempts);
    if (conversion) return *conversion;
    return convert(std::move(result));
  }

  ResourceClient& raw() { return client_; }

 private:
  static Result<T> convert(Result<nlohmann::json> result) {
    if (!result) return result.take_error();
    return T::from_json(result.value());
  }
  ResourceClient client_;
};

// Upserts `condition` into `conditions` by type; last_transition_time changes only when the
// status does (metav1.Condition's rule). `now` is the RFC 3339 time to use when it does.
void set_condition(std::vector<Condition>& conditions, Condition condition, const std::string& now);
const Condition* find_condition(const std::vector<Condition>& conditions, const std::string& type);

}  // namespace berth::kube
