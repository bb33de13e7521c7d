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

// Returns object[key], made an object when it was absent or of another type.
json& object_at(json& object, const char* key) {
  json& child = object[key];
  if (!child.is_object()) child = json::object();
  return child;
}

// ---- AppService ----

void read_spec(Reader& r, const json* spec, AppServiceSpec& s) {
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
}

void read_status(Reader& r, const json* status, AppServiceStatus& st) {
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
}

void read_fields(Reader& r, const json& object, AppService& a) {
  read_spec(r, r.child(object, "spec", "spec"), a.spec);
  read_status(r, r.child(object, "status", "status"), a.status);
}

void write_spec(const AppServiceSpec& spec, json& s) {
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
}

void write_status(const AppServiceStatus& status, json& st) {
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
}

void write_fields(const AppService& a, json& object) {
  write_spec(a.spec, object_at(object, "spec"));
  write_status(a.status, object_at(object, "status"));
}

// ---- Secret ----

void read_fields(Reader& r, const json& object, KubeSecret& s) {
  // The plaintext lives only in `data`; raw keeps the rest of the object.
  s.raw.erase("data");
  s.raw.erase("stringData");
  r.str(&object, "type", "type", s.type);
  r.boolean(&object, "immutable", "immutable", s.immutable);
  std::map<std::string, std::string> encoded;
  r.string_map(&object, "data", "data", encoded);
  for (auto& [key, value] : encoded) {
    std::string bytes;
    // After the first error nothing is decoded; every encoded value is still wiped.
    const bool decoded = r.ok() && base64::decode(value, bytes);
    wipe_string(value);
    if (decoded) s.data.emplace(key, Secret(bytes));
    wipe_string(bytes);
    // The key is named, never the value.
    if (!decoded) r.fail("data." + key, "not base64");
  }
}

void write_fields(const KubeSecret& s, json& object) {
  object["type"] = s.type;
  put(object, "immutable", s.immutable, s.immutable);
  json encoded = json::object();
  for (const auto& [key, value] : s.data) encoded[key] = base64::encode(value.reveal());
  put(object, "data", encoded, !encoded.empty());
}

// ---- ControllerRevision ----

void read_fields(Reader& r, const json& object, ControllerRevision& c) {
  r.integer(&object, "revision", "revision", c.revision);
  auto data = object.find("data");
  if (data != object.end()) c.data = *data;
}

void write_fields(const ControllerRevision& c, json& object) {
  object["revision"] = c.revision;
  put(object, "data", c.data, !c.data.is_null());
}

// ---- Lease ----

void read_fields(Reader& r, const json& object, Lease& l) {
  const json* spec = r.child(object, "spec", "spec");
  r.str(spec, "holderIdentity", "spec.holderIdentity", l.spec.holder_identity);
  r.integer(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds",
            l.spec.lease_duration_seconds);
  r.str(spec, "acquireTime", "spec.acquireTime", l.spec.acquire_time);
  r.str(spec, "renewTime", "spec.renewTime", l.spec.renew_time);
  r.integer(spec, "leaseTransitions", "spec.leaseTransitions", l.spec.lease_transitions);
}

void write_fields(const Lease& l, json& object) {
  json& s = object_at(object, "spec");
  put(s, "holderIdentity", l.spec.holder_identity, !l.spec.holder_identity.empty());
  put(s, "leaseDurationSeconds", l.spec.lease_duration_seconds, l.spec.lease_duration_seconds != 0);
  put(s, "acquireTime", l.spec.acquire_time, !l.spec.acquire_time.empty());
  put(s, "renewTime", l.spec.renew_time, !l.spec.renew_time.empty());
  put(s, "leaseTransitions", l.spec.lease_transitions, l.spec.lease_transitions != 0);
}

// ---- Event ----

void read_fields(Reader& r, const json& object, Event& e) {
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
}

void write_fields(const Event& e, json& object) {
  put(object, "eventTime", e.event_time, !e.event_time.empty());
  put(object, "reportingController", e.reporting_controller, !e.reporting_controller.empty());
  put(object, "reportingInstance", e.reporting_instance, !e.reporting_instance.empty());
  put(object, "action", e.action, !e.action.empty());
  put(object, "reason", e.reason, !e.reason.empty());
  put(object, "note", e.note, !e.note.empty());
  object["type"] = e.type;
  const ObjectReference& regarding = e.regarding;
  json reg = json::object();
  put(reg, "apiVersion", regarding.api_version, !regarding.api_version.empty());
  put(reg, "kind", regarding.kind, !regarding.kind.empty());
  put(reg, "namespace", regarding.namespace_, !regarding.namespace_.empty());
  put(reg, "name", regarding.name, !regarding.name.empty());
  put(reg, "uid", regarding.uid, !regarding.uid.empty());
  put(reg, "resourceVersion", regarding.resource_version, !regarding.resource_version.empty());
  put(object, "regarding", reg, !reg.empty());
  if (e.series) {
    object["series"] = {{"count", e.series->count},
                        {"lastObservedTime", e.series->last_observed_time}};
  } else {
    object.erase("series");
  }
}

// ---- the shared shape ----

// Every kind has one shape: a JSON object whose metadata and whole body (`raw`) are kept, plus
// the kind's own fields. decode and encode do the shared part once; read_fields and write_fields,
// one overload per kind above, do the rest. The first wrongly typed field fails the conversion.
template <typename T>
Result<T> decode(const json& object) {
  const std::string& kind = T::kType.kind;
  if (!object.is_object())
    return make_error(ErrorCode::kInvalidArgument, kind + ": not a JSON object");
  T out;
  out.raw = object;
  Reader r(describe(kind.c_str(), object));
  read_meta(r, object, out.metadata);
  read_fields(r, object, out);
  if (!r.ok()) return r.error();
  return out;
}

template <typename T>
json encode(const T& in) {
  json object = base(in.raw, T::kType);
  write_meta(in.metadata, object);
  write_fields(in, object);
  return object;
}

}  // namespace

Result<AppService> AppService::from_json(const json& object) { return decode<AppService>(object); }
json AppService::to_json() const { return encode(*this); }

Result<KubeSecret> KubeSecret::from_json(const json& object) { return decode<KubeSecret>(object); }
json KubeSecret::to_json() const { return encode(*this); }

Result<ControllerRevision> ControllerRevision::from_json(const json& object) {
  return decode<ControllerRevision>(object);
}
json ControllerRevision::to_json() const { return encode(*this); }

Result<Lease> Lease::from_json(const json& object) { return decode<Lease>(object); }
json Lease::to_json() const { return encode(*this); }

Result<Event> Event::from_json(const json& object) { return decode<Event>(object); }
json Event::to_json() const { return encode(*this); }

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
