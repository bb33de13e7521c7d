#include "kube/types.h"

#include <utility>

#include "common/base64.h"

namespace berth::kube {

const ResourceType AppService::kType{"berth.dev", "v1alpha1", "appservices", "AppService", true};
const ResourceType KubeSecret::kType{"", "v1", "secrets", "Secret", true};
const ResourceType ControllerRevision::kType{"apps", "v1", "controllerrevisions",
                                             "ControllerRevision", true};
const ResourceType Lease::kType{"coordination.k8s.io", "v1", "leases", "Lease", true};
const ResourceType Event::kType{"events.k8s.io", "v1", "events", "Event", true};

namespace {

using nlohmann::json;

// Reads fields of one object, remembering the first one of the wrong type. Absent and null
// fields leave the target at its default (the server omits empty fields).
class Reader {
 public:
  explicit Reader(std::string what) : what_(std::move(what)) {}

  const json* child(const json& object, const char* key, const std::string& path) {
    return child(&object, key, path);
  }
  const json* child(const json* object, const char* key, const std::string& path) {
    if (object == nullptr || !object->is_object()) return nullptr;
    auto it = object->find(key);
    if (it == object->end() || it->is_null()) return nullptr;
    if (!it->is_object()) {
      fail(path, "not an object");
      return nullptr;
    }
    return &*it;
  }
  void str(const json* object, const char* key, const std::string& path, std::string& out) {
    const json* v = field(object, key);
    if (v == nullptr) return;
    if (!v->is_string()) return fail(path, "not a string");
    out = v->get<std::string>();
  }
  template <typename Int>
  void integer(const json* object, const char* key, const std::string& path, Int& out) {
    const json* v = field(object, key);
    if (v == nullptr) return;
    if (!v->is_number_integer()) return fail(path, "not an integer");
    out = v->get<Int>();
  }
  void boolean(const json* object, const char* key, const std::string& path, bool& out) {
    const json* v = field(object, key);
    if (v == nullptr) return;
    if (!v->is_boolean()) return fail(path, "not a boolean");
    out = v->get<bool>();
  }
  void string_map(const json* object, const char* key, const std::string& path,
                  std::map<std::string, std::string>& out) {
    const json* v = field(object, key);
    if (v == nullptr) return;
    if (!v->is_object()) return fail(path, "not an object");
    for (const auto& [k, value] : v->items()) {
      if (!value.is_string()) return fail(path + "." + k, "not a string");
      out[k] = value.get<std::string>();
    }
  }
  void string_list(const json* object, const char* key, const std::string& path,
                   std::vector<std::string>& out) {
    const json* v = field(object, key);
    if (v == nullptr) return;
    if (!v->is_array()) return fail(path, "not a list");
    for (const auto& value : *v) {
      if (!value.is_string()) return fail(path, "not a list of strings");
      out.push_back(value.get<std::string>());
    }
  }
  const json* list(const json* object, const char* key, const std::string& path) {
    const json* v = field(object, key);
    if (v == nullptr) return nullptr;
    if (!v->is_array()) {
      fail(path, "not a list");
      return nullptr;
    }
    return v;
  }
  void fail(const std::string& path, const char* what) {
    if (!error_)
      error_ = make_error(ErrorCode::kInvalidArgument, what_ + ": " + path + ": " + what, path);
  }
  bool ok() const { return !error_.has_value(); }
  Error error() const { return *error_; }

 private:
  static const json* field(const json* object, const char* key) {
    if (object == nullptr || !object->is_object()) return nullptr;
    auto it = object->find(key);
    return it == object->end() || it->is_null() ? nullptr : &*it;
  }
  std::string what_;
  std::optional<Error> error_;
};

void read_meta(Reader& r, const json& object, ObjectMeta& m) {
  const json* meta = r.child(object, "metadata", "metadata");
  r.str(meta, "name", "metadata.name", m.name);
  r.str(meta, "namespace", "metadata.namespace", m.namespace_);
  r.str(meta, "uid", "metadata.uid", m.uid);
  r.str(meta, "resourceVersion", "metadata.resourceVersion", m.resource_version);
  r.integer(meta, "generation", "metadata.generation", m.generation);
  r.str(meta, "creationTimestamp", "metadata.creationTimestamp", m.creation_timestamp);
  r.str(meta, "deletionTimestamp", "metadata.deletionTimestamp", m.deletion_timestamp);
  r.string_map(meta, "labels", "metadata.labels", m.labels);
  r.string_map(meta, "annotations", "metadata.annotations", m.annotations);
  r.string_list(meta, "finalizers", "metadata.finalizers", m.finalizers);
  if (const json* refs = r.list(meta, "ownerReferences", "metadata.ownerReferences")) {
    for (const auto& ref : *refs) {
      OwnerReference o;
      const std::string p = "metadata.ownerReferences";
      r.str(&ref, "apiVersion", p + ".apiVersion", o.api_version);
      r.str(&ref, "kind", p + ".kind", o.kind);
      r.str(&ref, "name", p + ".name", o.name);
      r.str(&ref, "uid", p + ".uid", o.uid);
      r.boolean(&ref, "controller", p + ".controller", o.controller);
      r.boolean(&ref, "blockOwnerDeletion", p + ".blockOwnerDeletion", o.block_owner_deletion);
      m.owner_references.push_back(std::move(o));
    }
  }
}

// Sets or removes `key`: an empty value is left out, as the server leaves it out.
template <typename V>
void put(json& object, const char* key, const V& value, bool present) {
  if (present) {
    object[key] = value;
  } else if (object.is_object()) {
    object.erase(key);
  }
}

void write_meta(const ObjectMeta& m, json& object) {
  json& meta = object["metadata"];
  if (!meta.is_object()) meta = json::object();
  put(meta, "name", m.name, !m.name.empty());
  put(meta, "namespace", m.namespace_, !m.namespace_.empty());
  put(meta, "uid", m.uid, !m.uid.empty());
  put(meta, "resourceVersion", m.resource_version, !m.resource_version.empty());
  put(meta, "generation", m.generation, m.generation != 0);
  put(meta, "creationTimestamp", m.creation_timestamp, !m.creation_timestamp.empty());
  put(meta, "deletionTimestamp", m.deletion_timestamp, !m.deletion_timestamp.empty());
  put(meta, "labels", m.labels, !m.labels.empty());
  put(meta, "annotations", m.annotations, !m.annotations.empty());
  put(meta, "finalizers", m.finalizers, !m.finalizers.empty());
  json refs = json::array();
  for (const auto& o : m.owner_references) {
    json ref = {{"apiVersion", o.api_version}, {"kind", o.kind}, {"name", o.name}, {"uid", o.uid}};
    if (o.controller) ref["controller"] = true;
    if (o.block_owner_deletion) ref["blockOwnerDeletion"] = true;
    refs.push_back(std::move(ref));
  }
  put(meta, "ownerReferences", refs, !refs.empty());
}

json base(const json& raw, const ResourceType& type) {
  json object = raw.is_object() ? raw : json::object();
  object["apiVersion"] = type.group.empty() ? type.version : type.group + "/" + type.version;
  object["kind"] = type.kind;
  return object;
}

std::string describe(const char* kind, const json& object) {
  std::string name = "?";
  std::string ns;
  if (object.is_object()) {
    auto meta = object.find("metadata");
    if (meta != object.end() && meta->is_object()) {
      if (meta->contains("name") && (*meta)["name"].is_string()) name = (*meta)["name"];
      if (meta->contains("namespace") && (*meta)["namespace"].is_string())
        ns = (*meta)["namespace"];
    }
  }
  return std::string(kind) + " " + (ns.empty() ? name : ns + "/" + name);
}

}  // namespace

// ---- AppService ----

Result<AppService> AppService::from_json(const json& object) {
  if (!object.is_object())
    return make_error(ErrorCode::kInvalidArgument, "AppService: not a JSON object");
  AppService a;
  a.raw = object;
  Reader r(describe("AppService", object));
  read_meta(r, object, a.metadata);
  const json* spec = r.child(object, "spec", "spec");
  AppServiceSpec& s = a.spec;
  r.str(spec, "imageRef", "spec.imageRef", s.image_ref);
  r.integer(spec, "containerPort", "spec.containerPort", s.container_port);
  r.str(spec, "registryUsername", "spec.registryUsername", s.registry_username);
  if (const json* ref =
          r.child(spec, "registryPasswordSecretRef", "spec.registryPasswordSecretRef")) {
    SecretKeyRef k;
    r.str(ref, "name", "spec.registryPasswordSecretRef.name", k.name);
    r.str(ref, "key", "spec.registryPasswordSecretRef.key", k.key);
    s.registry_password_secret_ref = std::move(k);
  }
  r.str(spec, "zone", "spec.zone", s.zone);
  r.str(spec, "planName", "spec.planName", s.plan_name);
  r.string_map(spec, "env", "spec.env", s.env);
  r.string_list(spec, "customDomains", "spec.customDomains", s.custom_domains);
  if (const json* hc = r.child(spec, "healthCheck", "spec.healthCheck")) {
    r.str(hc, "path", "spec.healthCheck.path", s.health_check.path);
    r.integer(hc, "intervalSeconds", "spec.healthCheck.intervalSeconds",
              s.health_check.interval_seconds);
    r.integer(hc, "timeoutSeconds", "spec.healthCheck.timeoutSeconds",
              s.health_check.timeout_seconds);
    r.integer(hc, "healthyThreshold", "spec.healthCheck.healthyThreshold",
              s.health_check.healthy_threshold);
  }
  const json* status = r.child(object, "status", "status");
  AppServiceStatus& st = a.status;
  r.integer(status, "observedGeneration", "status.observedGeneration", st.observed_generation);
  r.str(status, "phase", "status.phase", st.phase);
  r.integer(status, "currentRevision", "status.currentRevision", st.current_revision);
  r.str(status, "imageDigest", "status.imageDigest", st.image_digest);
  r.str(status, "agent", "status.agent", st.agent);
  r.str(status, "endpoint", "status.endpoint", st.endpoint);
  r.str(status, "lastError", "status.lastError", st.last_error);
  if (const json* conditions = r.list(status, "conditions", "status.conditions")) {
    for (const auto& c : *conditions) {
      Condition cond;
      r.str(&c, "type", "status.conditions.type", cond.type);
      r.str(&c, "status", "status.conditions.status", cond.status);
      r.integer(&c, "observedGeneration", "status.conditions.observedGeneration",
                cond.observed_generation);
      r.str(&c, "lastTransitionTime", "status.conditions.lastTransitionTime",
            cond.last_transition_time);
      r.str(&c, "reason", "status.conditions.reason", cond.reason);
      r.str(&c, "message", "status.conditions.message", cond.message);
      st.conditions.push_back(std::move(cond));
    }
  }
  if (!r.ok()) return r.error();
  return a;
}

json AppService::to_json() const {
  json object = base(raw, kType);
  write_meta(metadata, object);
  json& s = object["spec"];
  if (!s.is_object()) s = json::object();
  s["imageRef"] = spec.image_ref;
  s["containerPort"] = spec.container_port;
  put(s, "registryUsername", spec.registry_username, !spec.registry_username.empty());
  if (spec.registry_password_secret_ref) {
    s["registryPasswordSecretRef"] = {{"name", spec.registry_password_secret_ref->name},
                                      {"key", spec.registry_password_secret_ref->key}};
  } else {
    s.erase("registryPasswordSecretRef");
  }
  put(s, "zone", spec.zone, !spec.zone.empty());
  s["planName"] = spec.plan_name;
  put(s, "env", spec.env, !spec.env.empty());
  put(s, "customDomains", spec.custom_domains, !spec.custom_domains.empty());
  json hc = {{"intervalSeconds", spec.health_check.interval_seconds},
             {"timeoutSeconds", spec.health_check.timeout_seconds},
             {"healthyThreshold", spec.health_check.healthy_threshold}};
  if (!spec.health_check.path.empty()) hc["path"] = spec.health_check.path;
  s["healthCheck"] = std::move(hc);
  json& st = object["status"];
  if (!st.is_object()) st = json::object();
  put(st, "observedGeneration", status.observed_generation, status.observed_generation != 0);
  put(st, "phase", status.phase, !status.phase.empty());
  put(st, "currentRevision", status.current_revision, status.current_revision != 0);
  put(st, "imageDigest", status.image_digest, !status.image_digest.empty());
  put(st, "agent", status.agent, !status.agent.empty());
  put(st, "endpoint", status.endpoint, !status.endpoint.empty());
  // lastError "" is meaningful (the last attempt succeeded), so it is always written.
  st["lastError"] = status.last_error;
  json conditions = json::array();
  for (const auto& c : status.conditions) {
    json cond = {{"type", c.type},
                 {"status", c.status},
                 {"lastTransitionTime", c.last_transition_time},
                 {"reason", c.reason},
                 {"message", c.message}};
    if (c.observed_generation != 0) cond["observedGeneration"] = c.observed_generation;
    conditions.push_back(std::move(cond));
  }
  put(st, "conditions", conditions, !conditions.empty());
  return object;
}

// ---- Secret ----

Result<KubeSecret> KubeSecret::from_json(const json& object) {
  if (!object.is_object())
    return make_error(ErrorCode::kInvalidArgument, "Secret: not a JSON object");
  KubeSecret s;
  Reader r(describe("Secret", object));
  read_meta(r, object, s.metadata);
  r.str(&object, "type", "type", s.type);
  r.boolean(&object, "immutable", "immutable", s.immutable);
  std::map<std::string, std::string> encoded;
  r.string_map(&object, "data", "data", encoded);
  if (!r.ok()) return r.error();
  for (auto& [key, value] : encoded) {
    std::string bytes;
    const bool decoded = base64::decode(value, bytes);
    wipe_string(value);
    if (!decoded) {
      wipe_string(bytes);
      // The key is named, never the value.
      return make_error(ErrorCode::kInvalidArgument,
                        describe("Secret", object) + ": data." + key + ": not base64",
                        "data." + key);
    }
    s.data.emplace(key, Secret(bytes));
    wipe_string(bytes);
  }
  // The plaintext lives only in `data`; raw keeps the rest of the object.
  s.raw = object;
  s.raw.erase("data");
  s.raw.erase("stringData");
  return s;
}

json KubeSecret::to_json() const {
  json object = base(raw, kType);
  write_meta(metadata, object);
  object["type"] = type;
  put(object, "immutable", immutable, immutable);
  json encoded = json::object();
  for (const auto& [key, value] : data) encoded[key] = base64::encode(value.reveal());
  put(object, "data", encoded, !encoded.empty());
  return object;
}

// ---- ControllerRevision ----

Result<ControllerRevision> ControllerRevision::from_json(const json& object) {
  if (!object.is_object()) {
    return make_error(ErrorCode::kInvalidArgument, "ControllerRevision: not a JSON object");
  }
  ControllerRevision c;
  c.raw = object;
  Reader r(describe("ControllerRevision", object));
  read_meta(r, object, c.metadata);
  r.integer(&object, "revision", "revision", c.revision);
  auto data = object.find("data");
  if (data != object.end()) c.data = *data;
  if (!r.ok()) return r.error();
  return c;
}

json ControllerRevision::to_json() const {
  json object = base(raw, kType);
  write_meta(metadata, object);
  object["revision"] = revision;
  put(object, "data", data, !data.is_null());
  return object;
}

// ---- Lease ----

Result<Lease> Lease::from_json(const json& object) {
  if (!object.is_object())
    return make_error(ErrorCode::kInvalidArgument, "Lease: not a JSON object");
  Lease l;
  l.raw = object;
  Reader r(describe("Lease", object));
  read_meta(r, object, l.metadata);
  const json* spec = r.child(object, "spec", "spec");
  r.str(spec, "holderIdentity", "spec.holderIdentity", l.spec.holder_identity);
  r.integer(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds",
            l.spec.lease_duration_seconds);
  r.str(spec, "acquireTime", "spec.acquireTime", l.spec.acquire_time);
  r.str(spec, "renewTime", "spec.renewTime", l.spec.renew_time);
  r.integer(spec, "leaseTransitions", "spec.leaseTransitions", l.spec.lease_transitions);
  if (!r.ok()) return r.error();
  return l;
}

json Lease::to_json() const {
  json object = base(raw, kType);
  write_meta(metadata, object);
  json& s = object["spec"];
  if (!s.is_object()) s = json::object();
  put(s, "holderIdentity", spec.holder_identity, !spec.holder_identity.empty());
  put(s, "leaseDurationSeconds", spec.lease_duration_seconds, spec.lease_duration_seconds != 0);
  put(s, "acquireTime", spec.acquire_time, !spec.acquire_time.empty());
  put(s, "renewTime", spec.renew_time, !spec.renew_time.empty());
  put(s, "leaseTransitions", spec.lease_transitions, spec.lease_transitions != 0);
  return object;
}

// ---- Event ----

Result<Event> Event::from_json(const json& object) {
  if (!object.is_object())
    return make_error(ErrorCode::kInvalidArgument, "Event: not a JSON object");
  Event e;
  e.raw = object;
  Reader r(describe("Event", object));
  read_meta(r, object, e.metadata);
  r.str(&object, "eventTime", "eventTime", e.event_time);
  r.str(&object, "reportingController", "reportingController", e.reporting_controller);
  r.str(&object, "reportingInstance", "reportingInstance", e.reporting_instance);
  r.str(&object, "action", "action", e.action);
  r.str(&object, "reason", "reason", e.reason);
  r.str(&object, "note", "note", e.note);
  r.str(&object, "type", "type", e.type);
  if (const json* reg = r.child(object, "regarding", "regarding")) {
    r.str(reg, "apiVersion", "regarding.apiVersion", e.regarding.api_version);
    r.str(reg, "kind", "regarding.kind", e.regarding.kind);
    r.str(reg, "namespace", "regarding.namespace", e.regarding.namespace_);
    r.str(reg, "name", "regarding.name", e.regarding.name);
    r.str(reg, "uid", "regarding.uid", e.regarding.uid);
    r.str(reg, "resourceVersion", "regarding.resourceVersion", e.regarding.resource_version);
  }
  if (const json* series = r.child(object, "series", "series")) {
    EventSeries s;
    r.integer(series, "count", "series.count", s.count);
    r.str(series, "lastObservedTime", "series.lastObservedTime", s.last_observed_time);
    e.series = std::move(s);
  }
  if (!r.ok()) return r.error();
  return e;
}

json Event::to_json() const {
  json object = base(raw, kType);
  write_meta(metadata, object);
  put(object, "eventTime", event_time, !event_time.empty());
  put(object, "reportingController", reporting_controller, !reporting_controller.empty());
  put(object, "reportingInstance", reporting_instance, !reporting_instance.empty());
  put(object, "action", action, !action.empty());
  put(object, "reason", reason, !reason.empty());
  put(object, "note", note, !note.empty());
  object["type"] = type;
  json reg = json::object();
  put(reg, "apiVersion", regarding.api_version, !regarding.api_version.empty());
  put(reg, "kind", regarding.kind, !regarding.kind.empty());
  put(reg, "namespace", regarding.namespace_, !regarding.namespace_.empty());
  put(reg, "name", regarding.name, !regarding.name.empty());
  put(reg, "uid", regarding.uid, !regarding.uid.empty());
  put(reg, "resourceVersion", regarding.resource_version, !regarding.resource_version.empty());
  put(object, "regarding", reg, !reg.empty());
  if (series) {
    object["series"] = {{"count", series->count}, {"lastObservedTime", series->last_observed_time}};
  } else {
    object.erase("series");
  }
  return object;
}

// ---- conditions ----

const Condition* find_condition(const std::vector<Condition>& conditions, const std::string& type) {
  for (const auto& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

void set_condition(std::vector<Condition>& conditions, Condition condition,
                   const std::string& now) {
  for (auto& c : conditions) {
    if (c.type != condition.type) continue;
    condition.last_transition_time = c.status == condition.status ? c.last_transition_time : now;
    c = std::move(condition);
    return;
  }
  condition.last_transition_time = now;
  conditions.push_back(std::move(condition));
}

}  // namespace berth::kube
