#include "kube/state_store.h"

#include <openssl/sha.h>

#include <algorithm>
#include <chrono>

#include "common/base64.h"
#include "common/hex.h"
#include "common/log.h"
#include "core/revision.h"
#include "kube/credentials.h"

namespace berth::kube {
namespace {

using nlohmann::json;

constexpr const char* kCredentialSuffix = "-berth-credential";
constexpr const char* kSealedKey = "sealed";
constexpr const char* kHostAnnotation = "berth.dev/registry-host";
constexpr const char* kUserAnnotation = "berth.dev/registry-username";
constexpr const char* kSetAtAnnotation = "berth.dev/set-at";
constexpr const char* kExpiresAtAnnotation = "berth.dev/expires-at";
constexpr const char* kSourceAnnotation = "berth.dev/source";
constexpr const char* kReasonAnnotation = "berth.dev/reason";
constexpr const char* kDigestAnnotation = "berth.dev/image-digest";
// Deploy logs kept in a revision's annotation: the newest entries that fit.
constexpr std::size_t kMaxDeployLogBytes = 16 * 1024;

const ResourceType kRevisionType{"apps", "v1", "controllerrevisions", "ControllerRevision", true};

std::string key_of(const std::string& ns, const std::string& name) { return ns + "/" + name; }

std::optional<core::ServiceStatus> status_of_phase(const std::string& phase) {
  if (phase == "Progressing") return core::ServiceStatus::kPendingModification;
  if (phase == "Pending") return core::ServiceStatus::kPending;
  if (phase == "Running") return core::ServiceStatus::kRunning;
  if (phase == "Failed") return core::ServiceStatus::kFailed;
  if (phase == "Deleting") return core::ServiceStatus::kDeleting;
  return std::nullopt;
}

// A deploy task id every leader derives the same way for the same pending revision, in the
// shape of a UUID v4 (the agent link's task ids are UUIDs).
std::string derived_task_id(const std::string& app_uid, const std::string& revision_name) {
  const std::string text = "deploy/" + app_uid + "/" + revision_name;
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d);
  d[6] = static_cast<unsigned char>((d[6] & 0x0f) | 0x40);
  d[8] = static_cast<unsigned char>((d[8] & 0x3f) | 0x80);
  const std::string h = hex_lower(d, 16);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

json logs_to_json(const std::vector<core::DeployLogEntry>& logs) {
  // Newest entries first until the budget is spent, then back in order.
  std::vector<json> kept;
  std::size_t used = 2;
  for (auto it = logs.rbegin(); it != logs.rend(); ++it) {
    json e = {
        {"step", it->step},     {"status", it->status},        {"message", it->message},
        {"detail", it->detail}, {"startedAt", it->started_at}, {"durationMs", it->duration_ms}};
    const std::size_t size = e.dump().size() + 1;
    if (used + size > kMaxDeployLogBytes) break;
    used += size;
    kept.push_back(std::move(e));
  }
  std::reverse(kept.begin(), kept.end());
  return json(kept);
}

std::vector<core::DeployLogEntry> logs_from_text(const std::string& text) {
  std::vector<core::DeployLogEntry> out;
  json doc = json::parse(text, nullptr, false);
  if (!doc.is_array()) return out;
  for (const auto& e : doc) {
    if (!e.is_object()) continue;
    core::DeployLogEntry d;
    d.step = e.value("step", "");
    d.status = e.value("status", "");
    d.message = e.value("message", "");
    d.detail = e.value("detail", "");
    d.started_at = e.value("startedAt", core::UnixMillis{0});
    d.duration_ms = e.value("durationMs", std::int64_t{0});
    out.push_back(std::move(d));
  }
  return out;
}

json conditions_to_json(const std::vector<core::Condition>& conditions, std::int64_t generation) {
  json out = json::array();
  for (const auto& c : conditions) {
    out.push_back(
        {{"type", c.type},
         {"status", c.status},
         {"reason", c.reason.empty() ? std::string("Unknown") : c.reason},
         {"message", c.message},
         {"observedGeneration", generation},
         {"lastTransitionTime", core::format_rfc3339(c.last_transition_time / 1000 * 1000)}});
  }
  return out;
}

std::vector<core::Condition> conditions_from(const std::vector<Condition>& in) {
  std::vector<core::Condition> out;
  for (const auto& c : in) {
    out.push_back({c.type, c.status, c.reason, c.message, unix_millis_of(c.last_transition_time)});
  }
  return out;
}

Result<AppServiceSpec> spec_of(const json& spec) {
  json wrapper = {{"apiVersion", kAppServiceApiVersion},
                  {"kind", kAppServiceKind},
                  {"metadata", json::object()},
                  {"spec", spec}};
  auto app = AppService::from_json(wrapper);
  if (!app) return app.take_error();
  return app->spec;
}

// The four conditions the AppService always shows (docs/kubernetes.md): the planner sets the
// ones a step is about; the rest get their quiet value here. A default keeps its transition time
// while its status does not change, so rewriting status does not move it.
std::vector<core::Condition> with_defaults(std::vector<core::Condition> conditions,
                                           const std::vector<core::Condition>& previous,
                                           bool is_private, const std::string& host,
                                           core::UnixMillis now) {
  auto add = [&](const char* type, const char* status, const char* reason, std::string message) {
    for (const auto& c : conditions)
      if (c.type == type) return;
    core::Condition c{type, status, reason, std::move(message), now};
    for (const auto& old : previous)
      if (old.type == type && old.status == c.status)
        c.last_transition_time = old.last_transition_time;
    conditions.push_back(std::move(c));
  };
  if (is_private) {
    add("CredentialsResolved", "True", "CredentialStored",
        "a sealed credential for " + host + " is stored");
  } else {
    add("CredentialsResolved", "True", "NotRequired",
        "the image is public; no credential is needed");
  }
  add("Degraded", "False", "AsExpected", "nothing needs attention");
  return conditions;
}

}  // namespace

core::UnixMillis unix_millis_of(std::string_view rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  if (!t) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
}

std::string credential_secret_name(std::string_view app_name) {
  return suffixed_name(app_name, kCredentialSuffix);
}

const char* phase_of(core::ServiceStatus status) {
  switch (status) {
    case core::ServiceStatus::kPending:
      return "Pending";
    case core::ServiceStatus::kRunning:
      return "Running";
    case core::ServiceStatus::kPendingModification:
      return "Progressing";
    case core::ServiceStatus::kFailed:
      return "Failed";
    case core::ServiceStatus::kDeleting:
      return "Deleting";
  }
  return "Pending";
}

core::AppConfig app_config_of(const AppServiceSpec& spec) {
  core::AppConfig c;
  c.image_ref = spec.image_ref;
  c.container_port = spec.container_port;
  c.env = spec.env;
  c.custom_domains = spec.custom_domains;
  c.registry_username = spec.registry_username;
  c.health.path = spec.health_check.path;
  c.health.interval_seconds = spec.health_check.interval_seconds;
  c.health.timeout_seconds = spec.health_check.timeout_seconds;
  c.health.healthy_threshold = spec.health_check.healthy_threshold;
  return c;
}

// One app as this store knows it. Guarded by the store's mutex.
struct KubeStateStore::Entry {
  AppService object;
  bool loaded = false;
  // Loaded from the server, then kept by this store's writes.
  std::vector<core::Revision> revisions;  // number ascending
  std::vector<json> revision_specs;
  std::optional<core::StoredCredential> credential;
  std::optional<crypto::SealedBlob> sealed;
  std::string source_name, source_key, source_version;
  // Pending source for the next credential write (set_credential_source).
  std::string next_source_name, next_source_key, next_source_version;
  std::vector<core::Task> tasks;
  // Runtime-owned fields and the core's bookkeeping.
  core::ServiceStatus status = core::ServiceStatus::kPending;
  std::string agent, current_id, desired_id, url, last_error;
  std::vector<core::Condition> conditions;
  std::int64_t generation = 1;
  std::int64_t observed_generation = 0;
  std::optional<Refusal> refusal;
  std::optional<json> next_spec;  // the spec the next created revision records
  json written_status;            // the last status this store wrote (or read)
};

KubeStateStore::KubeStateStore(Transport& transport, KubeStateStoreOptions options)
    : options_(std::move(options)),
      apps_(transport),
      secrets_(transport),
      revisions_(transport, kRevisionType) {}

KubeStateStore::~KubeStateStore() = default;

void KubeStateStore::set_keyring(crypto::Keyring keyring) {
  std::lock_guard lock(mu_);
  keyring_.emplace(std::move(keyring));
}

// --- informer feed ---------------------------------------------------------------------------

void KubeStateStore::observe(const AppService& app) {
  std::lock_guard lock(mu_);
  const std::string& uid = app.metadata.uid;
  auto& entry = by_uid_[uid];
  if (!entry) entry = std::make_shared<Entry>();
  // Keep the secret index current: drop the old reference, add the new one.
  auto unref = [&](const AppService& a) {
    if (!a.spec.registry_password_secret_ref) return;
    auto it =
        by_secret_.find(key_of(a.metadata.namespace_, a.spec.registry_password_secret_ref->name));
    if (it != by_secret_.end()) {
      it->second.erase(a.metadata.uid);
      if (it->second.empty()) by_secret_.erase(it);
    }
  };
  if (!entry->object.metadata.uid.empty()) unref(entry->object);
  entry->object = app;
  if (app.spec.registry_password_secret_ref) {
    by_secret_[key_of(app.metadata.namespace_, app.spec.registry_password_secret_ref->name)].insert(
        uid);
  }
  uid_by_key_[key_of(app.metadata.namespace_, app.metadata.name)] = uid;
}

void KubeStateStore::observe_deleted(const AppService& app) {
  std::lock_guard lock(mu_);
  auto it = by_uid_.find(app.metadata.uid);
  if (it == by_uid_.end()) return;
  if (app.spec.registry_password_secret_ref) {
    auto s = by_secret_.find(
        key_of(app.metadata.namespace_, app.spec.registry_password_secret_ref->name));
    if (s != by_secret_.end()) {
      s->second.erase(app.metadata.uid);
      if (s->second.empty()) by_secret_.erase(s);
    }
  }
  auto k = uid_by_key_.find(key_of(app.metadata.namespace_, app.metadata.name));
  if (k != uid_by_key_.end() && k->second == app.metadata.uid) uid_by_key_.erase(k);
  by_uid_.erase(it);
}

void KubeStateStore::reset_loaded() {
  std::lock_guard lock(mu_);
  for (auto& [uid, e] : by_uid_) e->loaded = false;
}

std::vector<std::string> KubeStateStore::apps_referencing_secret(const std::string& namespace_,
                                                                 const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = by_secret_.find(key_of(namespace_, name));
  if (it == by_secret_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

std::pair<std::string, std::string> KubeStateStore::name_of(const std::string& id) const {
  EntryPtr e = find(id);
  if (!e) return {};
  std::lock_guard lock(mu_);
  return {e->object.metadata.namespace_, e->object.metadata.name};
}

// --- loading -----------------------------------------------------------------------------------

KubeStateStore::EntryPtr KubeStateStore::find(std::string_view id) const {
  std::lock_guard lock(mu_);
  auto it = by_uid_.find(std::string(id));
  return it == by_uid_.end() ? nullptr : it->second;
}

Result<KubeStateStore::EntryPtr> KubeStateStore::loaded(std::string_view id) {
  EntryPtr e = find(id);
  if (!e) return make_error(ErrorCode::kNotFound, "no such AppService");
  bool need;
  {
    std::lock_guard lock(mu_);
    need = !e->loaded;
  }
  if (need) {
    if (Status st = load(*e); !st.ok()) return st.error();
  }
  return e;
}

// What one app's objects say, before it goes into its Entry.
struct KubeStateStore::Loaded {
  std::vector<core::Revision> revisions;
  std::vector<json> specs;
  std::optional<core::StoredCredential> credential;
  std::optional<crypto::SealedBlob> sealed;
  std::string source_name, source_key, source_version;
};

// `revision_items`: the ControllerRevisions carrying the app's label (others' are skipped by
// owner uid); `secret`: the sealed credential Secret, if any.
Status KubeStateStore::fill(const AppService& object, const std::vector<json>& revision_items,
                            const std::optional<KubeSecret>& secret, Loaded& out) {
  std::vector<RevisionRecord> records;
  std::map<std::string, std::map<std::string, std::string>> annotations_by_name;
  for (const auto& item : revision_items) {
    auto record = parse_revision(item);
    if (!record) return record.error();
    // A recreated app with the same name has a new uid; the old history is the garbage
    // collector's to remove.
    if (record->app_uid != object.metadata.uid) continue;
    auto cr = ControllerRevision::from_json(item);
    if (cr) annotations_by_name[cr->metadata.name] = cr->metadata.annotations;
    records.push_back(std::move(record).value());
  }
  std::sort(records.begin(), records.end(),
            [](const RevisionRecord& a, const RevisionRecord& b) { return a.number < b.number; });
  for (const auto& r : records) {
    auto spec = spec_of(r.spec);
    if (!spec) return spec.error();
    core::Revision rev;
    rev.id = r.name;
    rev.service_id = object.metadata.uid;
    rev.number = r.number;
    rev.config = app_config_of(*spec);
    rev.registry_host = r.registry_host;
    rev.state = r.state;
    rev.image_digest = r.image_digest;
    rev.created_at = unix_millis_of(r.creation_timestamp);
    rev.finished_at = unix_millis_of(r.finished_at);
    const auto& ann = annotations_by_name[r.name];
    if (auto it = ann.find(kReasonAnnotation); it != ann.end()) rev.reason = it->second;
    if (auto it = ann.find(kDeployLogsAnnotation); it != ann.end())
      rev.deploy_logs = logs_from_text(it->second);
    if (rev.image_digest.empty()) {
      if (auto it = ann.find(kDigestAnnotation); it != ann.end()) rev.image_digest = it->second;
    }
    out.revisions.push_back(std::move(rev));
    out.specs.push_back(r.spec);
  }

  std::optional<core::StoredCredential>& credential = out.credential;
  std::optional<crypto::SealedBlob>& sealed = out.sealed;
  std::string& source_name = out.source_name;
  std::string& source_key = out.source_key;
  std::string& source_version = out.source_version;
  if (secret) {
    bool ours = false;
    for (const auto& ref : secret->metadata.owner_references)
      ours = ours || ref.uid == object.metadata.uid;
    auto blob_it = secret->data.find(kSealedKey);
    if (ours && blob_it != secret->data.end()) {
      json blob = json::parse(blob_it->second.reveal(), nullptr, false);
      const auto& ann = secret->metadata.annotations;
      auto get = [&](const char* k) {
        auto it = ann.find(k);
        return it == ann.end() ? std::string() : it->second;
      };
      // A field of another type reads as absent (the blob fails to unseal later), never throws.
      auto text = [&](const char* k) {
        auto it = blob.find(k);
        return it != blob.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      if (blob.is_object()) {
        crypto::SealedBlob b;
        b.key_id = text("keyId");
        std::string nonce, ct;
        if (base64::decode(text("nonce"), nonce) && base64::decode(text("ciphertext"), ct)) {
          b.nonce.assign(nonce.begin(), nonce.end());
          b.ciphertext.assign(ct.begin(), ct.end());
          sealed = std::move(b);
          core::StoredCredential c;
          c.registry_host = get(kHostAnnotation);
          c.username = get(kUserAnnotation);
          c.set_at = unix_millis_of(get(kSetAtAnnotation));
          if (const std::string exp = get(kExpiresAtAnnotation); !exp.empty())
            c.expires_at = unix_millis_of(exp);
          credential = std::move(c);
          json source = json::parse(get(kSourceAnnotation), nullptr, false);
          if (source.is_object()) {
            auto field = [&](const char* k) {
              auto it = source.find(k);
              return it != source.end() && it->is_string() ? it->get<std::string>() : std::string();
            };
            source_name = field("name");
            source_key = field("key");
            source_version = field("resourceVersion");
          }
        }
      }
    }
  }
  return Status::Ok();
}

Status KubeStateStore::load(Entry& e) {
  AppService object;
  {
    std::lock_guard lock(mu_);
    object = e.object;
  }
  const std::string& ns = object.metadata.namespace_;
  const std::string& name = object.metadata.name;
  auto raw = revisions_.list_all(ns, ListOptions{revision_label_selector(name)});
  if (!raw) return raw.error();
  std::optional<KubeSecret> secret;
  auto got = secrets_.get(ns, credential_secret_name(name));
  if (got) {
    secret = std::move(got).value();
  } else if (got.error().code != ErrorCode::kNotFound) {
    return got.error();
  }
  Loaded loaded;
  if (Status st = fill(object, raw->items, secret, loaded); !st.ok()) return st;
  std::lock_guard lock(mu_);
  install(e, std::move(loaded));
  return Status::Ok();
}

Status KubeStateStore::preload(const std::vector<std::string>& namespaces) {
  // Two lists per namespace instead of two requests per app: a new leader with thousands of
  // apps reads its whole record in a few pages.
  const std::string selector = kRevisionAppLabel;  // the label exists
  std::map<std::string, std::vector<json>> revisions_by_uid;
  std::map<std::string, KubeSecret> secret_by_uid;
  for (const auto& ns : namespaces) {
    auto crs = revisions_.list_all(ns, ListOptions{selector});
    if (!crs) return crs.error();
    for (auto& item : crs->items) {
      for (const auto& ref : item["metadata"].value("ownerReferences", json::array()))
        if (ref.value("controller", false)) revisions_by_uid[ref.value("uid", "")].push_back(item);
    }
    auto secrets = secrets_.raw().list_all(ns, ListOptions{selector});
    if (!secrets) return secrets.error();
    for (const auto& item : secrets->items) {
      auto typed = KubeSecret::from_json(item);
      if (!typed) continue;
      for (const auto& ref : typed->metadata.owner_references)
        if (ref.controller) secret_by_uid[ref.uid] = *typed;
    }
  }
  std::vector<EntryPtr> entries;
  {
    std::lock_guard lock(mu_);
    for (const auto& [uid, e] : by_uid_) entries.push_back(e);
  }
  for (const auto& e : entries) {
    AppService object;
    {
      std::lock_guard lock(mu_);
      object = e->object;
    }
    Loaded loaded;
    std::optional<KubeSecret> secret;
    if (auto it = secret_by_uid.find(object.metadata.uid); it != secret_by_uid.end())
      secret = it->second;
    static const std::vector<json> kNone;
    auto it = revisions_by_uid.find(object.metadata.uid);
    Status st = fill(object, it == revisions_by_uid.end() ? kNone : it->second, secret, loaded);
    if (!st.ok()) {
      log::warn("an app's record could not be read", {{"namespace", object.metadata.namespace_},
                                                      {"name", object.metadata.name},
                                                      {"error", st.error().message}});
      continue;  // loaded on its own later, and the error reported then
    }
    std::lock_guard lock(mu_);
    install(*e, std::move(loaded));
  }
  return Status::Ok();
}

void KubeStateStore::install(Entry& e, Loaded&& loaded) {
  std::vector<core::Revision>& revisions = loaded.revisions;
  std::vector<json>& specs = loaded.specs;
  std::optional<core::StoredCredential>& credential = loaded.credential;
  std::optional<crypto::SealedBlob>& sealed = loaded.sealed;
  const std::string& source_name = loaded.source_name;
  const std::string& source_key = loaded.source_key;
  const std::string& source_version = loaded.source_version;

  e.revisions = std::move(revisions);
  e.revision_specs = std::move(specs);
  e.credential = std::move(credential);
  e.sealed = std::move(sealed);
  e.source_name = source_name;
  e.source_key = source_key;
  e.source_version = source_version;
  const AppServiceStatus& st = e.object.status;
  e.status = status_of_phase(st.phase).value_or(core::ServiceStatus::kPending);
  e.agent = st.agent;
  e.url = st.endpoint;
  e.last_error = st.last_error;
  e.conditions = conditions_from(st.conditions);
  e.observed_generation = st.observed_generation;
  e.current_id.clear();
  for (const auto& r : e.revisions)
    if (r.number == st.current_revision) e.current_id = r.id;
  e.desired_id = e.revisions.empty() ? std::string() : e.revisions.back().id;
  e.tasks.clear();
  if (!e.revisions.empty() && e.revisions.back().state == core::RevisionState::kPending) {
    core::Task t;
    t.id = derived_task_id(e.object.metadata.uid, e.revisions.back().id);
    t.service_id = e.object.metadata.uid;
    t.revision_id = e.revisions.back().id;
    t.kind = core::TaskKind::kDeploy;
    t.state = core::TaskState::kQueued;
    t.created_at = t.updated_at = options_.now();
    e.tasks.push_back(std::move(t));
  }
  // A refusal is not kept across leaders: the intake looks at the spec again.
  e.written_status = e.object.raw.value("status", json::object());
  e.loaded = true;
}

core::AppService KubeStateStore::service_view(const Entry& e) const {
  core::AppService s;
  const auto& m = e.object.metadata;
  s.id = m.uid;
  s.account_id = m.namespace_;
  s.name = m.name;
  s.plan_name = e.object.spec.plan_name;
  s.zone = e.object.spec.zone.empty() ? options_.default_zone : e.object.spec.zone;
  // The user-owned config is the desired revision's (what berth accepted), not the raw spec: a
  // refused spec must not reach the planner.
  const core::Revision* desired = nullptr;
  for (const auto& r : e.revisions)
    if (r.id == e.desired_id) desired = &r;
  if (desired != nullptr) {
    s.config = desired->config;
    s.registry_host = desired->registry_host;
  } else {
    s.config = app_config_of(e.object.spec);
  }
  s.status = e.status;
  s.url = e.url;
  s.current_deployment_id = e.current_id;
  s.desired_deployment_id = e.desired_id;
  s.agent = e.agent;
  s.conditions = e.conditions;
  s.last_error = e.last_error;
  s.generation = e.generation;
  s.created_at = unix_millis_of(m.creation_timestamp);
  s.updated_at = s.created_at;
  return s;
}

// --- status ------------------------------------------------------------------------------------

json KubeStateStore::status_of(const Entry& e) const {
  json status = json::object();
  status["observedGeneration"] = e.observed_generation;
  status["phase"] = phase_of(e.status);
  std::int64_t current = 0;
  std::string digest;
  for (const auto& r : e.revisions) {
    if (r.id == e.current_id) {
      current = r.number;
      digest = r.image_digest;
    }
  }
  status["currentRevision"] = current;
  if (!digest.empty()) status["imageDigest"] = digest;
  if (!e.agent.empty()) status["agent"] = e.agent;
  if (!e.url.empty()) status["endpoint"] = e.url;
  std::vector<core::Condition> conditions = e.conditions;
  std::string last_error = e.last_error;
  if (e.refusal) {
    // The refused spec is shown beside what keeps running: the condition the refusal is about,
    // and Degraded, so Argo CD and `kubectl wait` see that the user must act.
    auto set = [&](const std::string& type, const char* value, const std::string& reason) {
      auto it = std::find_if(conditions.begin(), conditions.end(),
                             [&](const core::Condition& c) { return c.type == type; });
      core::Condition c{type, value, reason, e.refusal->message, e.refusal->since};
      if (it != conditions.end()) {
        if (it->status == c.status) c.last_transition_time = it->last_transition_time;
        *it = c;
      } else {
        conditions.push_back(c);
      }
    };
    set(e.refusal->condition, "False", e.refusal->reason);
    set("Degraded", "True", e.refusal->reason);
    last_error = e.refusal->message;
  }
  if (!last_error.empty()) status["lastError"] = last_error;
  status["conditions"] = conditions_to_json(conditions, e.observed_generation);
  return status;
}

Status KubeStateStore::write_status(Entry& e) {
  json status;
  std::string ns, name, uid;
  {
    std::lock_guard lock(mu_);
    status = status_of(e);
    if (status == e.written_status) return Status::Ok();
    ns = e.object.metadata.namespace_;
    name = e.object.metadata.name;
    uid = e.object.metadata.uid;
  }
  // A merge patch of the whole status through the status subresource: berth is the only writer
  // of status, so there is nothing to conflict with, and no resourceVersion round trip. A field
  // berth no longer sets is removed with null.
  json patch_status = status;
  for (const char* k : {"imageDigest", "agent", "endpoint", "lastError"})
    if (!patch_status.contains(k)) patch_status[k] = nullptr;
  auto written = apps_.raw().merge_patch(ns, name, {{"status", patch_status}},
                                         PatchOptions{"berth-controller", false, "status"});
  if (!written) {
    if (written.error().code == ErrorCode::kNotFound) return written.error();
    return written.error();
  }
  std::lock_guard lock(mu_);
  e.written_status = status;
  return Status::Ok();
}

Status KubeStateStore::write_progress(const std::string& id,
                                      const std::optional<core::RolloutProgress>& p) {
  EntryPtr e = find(id);
  if (!e) return Status::Ok();  // not (or no longer) known: nothing to show progress on
  std::string ns, name;
  {
    std::lock_guard lock(mu_);
    ns = e->object.metadata.namespace_;
    name = e->object.metadata.name;
  }
  json value = nullptr;
  if (p) {
    value = json{{"step", p->step},
                 {"layersDone", p->layers_done},
                 {"layersTotal", p->layers_total},
                 {"bytesDone", p->bytes_done},
                 {"bytesTotal", p->bytes_total},
                 {"updatedAt", core::format_rfc3339(p->updated_at)}};
  }
  auto written = apps_.raw().merge_patch(ns, name, {{"status", {{"progress", value}}}},
                                         PatchOptions{"berth-controller", false, "status"});
  if (!written) return written.error();
  return Status::Ok();
}

Status KubeStateStore::set_observed(const std::string& id, std::int64_t generation,
                                    std::optional<Refusal> refusal) {
  auto e = loaded(id);
  if (!e) return e.error();
  std::optional<StoreEvent> event;
  {
    std::lock_guard lock(mu_);
    Entry& en = **e;
    const bool new_refusal = refusal && (!en.refusal || en.refusal->reason != refusal->reason ||
                                         en.refusal->generation != refusal->generation ||
                                         en.refusal->secret_version != refusal->secret_version);
    en.observed_generation = std::max(en.observed_generation, generation);
    // metav1.Condition: the transition time moves only when the condition's status does.
    if (refusal)
      refusal->since = en.refusal && en.refusal->condition == refusal->condition ? en.refusal->since
                                                                                 : options_.now();
    en.refusal = std::move(refusal);
    if (new_refusal) {
      event = StoreEvent{
          regarding_of(en), true,
          en.refusal->condition == "CredentialsResolved" ? "CredentialRefused" : "SpecRefused",
          "Refuse", en.refusal->message};
    }
  }
  if (event && options_.on_event) options_.on_event(*event);
  return write_status(**e);
}

void KubeStateStore::set_credential_source(const std::string& id, const std::string& name,
                                           const std::string& key, const std::string& version) {
  EntryPtr e = find(id);
  if (!e) return;
  std::lock_guard lock(mu_);
  e->next_source_name = name;
  e->next_source_key = key;
  e->next_source_version = version;
}

void KubeStateStore::set_revision_spec(const std::string& id, const json& spec) {
  EntryPtr e = find(id);
  if (!e) return;
  std::lock_guard lock(mu_);
  e->next_spec = spec;
}

void KubeStateStore::note_secret_seen(const std::string& id, const std::string& version) {
  EntryPtr e = find(id);
  if (!e) return;
  std::lock_guard lock(mu_);
  e->source_version = version;
}

ObjectReference KubeStateStore::regarding_of(const Entry& e) const {
  ObjectReference r;
  r.api_version = kAppServiceApiVersion;
  r.kind = kAppServiceKind;
  r.namespace_ = e.object.metadata.namespace_;
  r.name = e.object.metadata.name;
  r.uid = e.object.metadata.uid;
  r.resource_version = e.object.metadata.resource_version;
  return r;
}

void KubeStateStore::emit(const std::string& id, bool warning, const std::string& reason,
                          const std::string& note) {
  EntryPtr e = find(id);
  if (!e || !options_.on_event) return;
  ObjectReference ref;
  {
    std::lock_guard lock(mu_);
    ref = regarding_of(*e);
  }
  options_.on_event(StoreEvent{ref, warning, reason, reason, note});
}

Result<AppSnapshot> KubeStateStore::snapshot(const std::string& id) {
  auto e = loaded(id);
  if (!e) return e.error();
  std::lock_guard lock(mu_);
  const Entry& en = **e;
  AppSnapshot s;
  s.object = en.object;
  s.service = service_view(en);
  s.revisions = en.revisions;
  s.revision_specs = en.revision_specs;
  s.credential = en.credential;
  s.credential_source_name = en.source_name;
  s.credential_source_key = en.source_key;
  s.credential_source_version = en.source_version;
  s.observed_generation = en.observed_generation;
  s.refusal = en.refusal;
  return s;
}

Result<Secret> KubeStateStore::unseal_stored(const std::string& id) {
  auto e = loaded(id);
  if (!e) return e.error();
  crypto::SealedBlob blob;
  std::string aad;
  {
    std::lock_guard lock(mu_);
    const Entry& en = **e;
    if (!en.credential || !en.sealed)
      return make_error(ErrorCode::kNotFound, "no sealed credential is stored");
    blob = *en.sealed;
    aad = crypto::credential_aad(key_of(en.object.metadata.namespace_, en.object.metadata.name),
                                 en.credential->registry_host, en.credential->username);
  }
  if (!keyring_) return make_error(ErrorCode::kUnavailable, "the master key is not loaded yet");
  auto plain = keyring_->unseal(blob, aad);
  if (!plain)
    return make_error(ErrorCode::kDataLoss, "the sealed registry password cannot be opened");
  return std::move(plain).value();
}

Status KubeStateStore::ensure_finalizer(const std::string& id) {
  EntryPtr e = find(id);
  if (!e) return make_error(ErrorCode::kNotFound, "no such AppService");
  std::string ns, name;
  {
    std::lock_guard lock(mu_);
    const auto& f = e->object.metadata.finalizers;
    if (std::find(f.begin(), f.end(), kCleanupFinalizer) != f.end()) return Status::Ok();
    if (!e->object.metadata.deletion_timestamp.empty()) return Status::Ok();
    ns = e->object.metadata.namespace_;
    name = e->object.metadata.name;
  }
  auto updated = apps_.update_with_retry(ns, name, [&](AppService& a) {
    if (a.metadata.uid != id || !a.metadata.deletion_timestamp.empty()) return false;
    auto& f = a.metadata.finalizers;
    if (std::find(f.begin(), f.end(), kCleanupFinalizer) != f.end()) return false;
    f.push_back(kCleanupFinalizer);
    return true;
  });
  if (!updated && updated.error().code != ErrorCode::kNotFound) return updated.error();
  if (updated) observe(*updated);
  return Status::Ok();
}

// --- core::StateStore: accounts --------------------------------------------------------------

Result<std::string> KubeStateStore::authenticate_password(std::string_view, const Secret&) {
  return make_error(ErrorCode::kUnauthenticated,
                    "Kubernetes mode has no REST accounts; use the Kubernetes API");
}

Result<std::string> KubeStateStore::authenticate_token(const Secret&) {
  return make_error(ErrorCode::kUnauthenticated,
                    "Kubernetes mode has no REST accounts; use the Kubernetes API");
}

// --- services ----------------------------------------------------------------------------------

Result<core::AppService> KubeStateStore::get_service(std::string_view account_id,
                                                     std::string_view id) {
  auto s = load_service(id);
  if (!s) return s;
  if (s->account_id != account_id) return make_error(ErrorCode::kNotFound, "no such AppService");
  return s;
}

Result<std::vector<core::AppService>> KubeStateStore::list_services(std::string_view account_id) {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [uid, e] : by_uid_)
      if (e->object.metadata.namespace_ == account_id) ids.push_back(uid);
  }
  std::vector<core::AppService> out;
  for (const auto& id : ids) {
    auto s = load_service(id);
    if (s) out.push_back(std::move(s).value());
  }
  return out;
}

Result<core::AppService> KubeStateStore::load_service(std::string_view id) {
  auto e = loaded(id);
  if (!e) return e.error();
  std::lock_guard lock(mu_);
  return service_view(**e);
}

Result<std::vector<std::string>> KubeStateStore::list_service_ids() {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids;
  ids.reserve(by_uid_.size());
  for (const auto& [uid, e] : by_uid_) ids.push_back(uid);
  return ids;
}

Status KubeStateStore::create_service(const core::Change& change) {
  return commit(change.service.id, change, std::nullopt);
}

Status KubeStateStore::apply_change(const core::Change& change, std::int64_t expected_generation) {
  return commit(change.service.id, change, expected_generation);
}

Status KubeStateStore::create_revision(Entry& e, core::Revision& revision) {
  RevisionRecord record;
  json spec;
  {
    std::lock_guard lock(mu_);
    record.app_name = e.object.metadata.name;
    record.namespace_ = e.object.metadata.namespace_;
    record.app_uid = e.object.metadata.uid;
    // The spec as the user wrote it when it matches the revision's config (a spec change);
    // a redeploy or rollback names an existing revision's spec.
    // The spec the intake accepted (set_revision_spec); without one, the object's.
    spec = e.next_spec ? *e.next_spec : e.object.raw.value("spec", json::object());
    e.next_spec.reset();
  }
  record.number = revision.number;
  record.spec = spec;
  record.image_digest = revision.image_digest;
  record.registry_host = revision.registry_host;
  record.registry_username = revision.config.registry_username;
  record.state = revision.state;
  auto object = build_revision(record);
  if (!object) return object.error();
  (*object)["metadata"]["annotations"][kReasonAnnotation] = revision.reason;
  auto created = revisions_.create(*object);
  if (!created) {
    if (created.error().code == ErrorCode::kConflict) {
      // Another leader created this revision number and then lost its lease before recording
      // it: read the history again and let the caller plan once more.
      std::lock_guard lock(mu_);
      e.loaded = false;
    }
    return created.error();
  }
  revision.id = revision_name(record.app_name, record.number);
  revision.created_at = unix_millis_of((*created)["metadata"].value("creationTimestamp", ""));
  std::lock_guard lock(mu_);
  e.revisions.push_back(revision);
  e.revision_specs.push_back(spec);
  return Status::Ok();
}

Status KubeStateStore::write_credential(Entry& e, const core::CredentialWrite& w) {
  std::string ns, name, uid;
  {
    std::lock_guard lock(mu_);
    ns = e.object.metadata.namespace_;
    name = e.object.metadata.name;
    uid = e.object.metadata.uid;
  }
  const std::string secret_name = credential_secret_name(name);
  if (w.action == core::CredentialWrite::Action::kKeep) return Status::Ok();
  if (w.action == core::CredentialWrite::Action::kRemove) {
    Status st = secrets_.remove(ns, secret_name);
    if (!st.ok() && st.error().code != ErrorCode::kNotFound) return st;
    std::lock_guard lock(mu_);
    e.credential.reset();
    e.sealed.reset();
    e.source_name.clear();
    e.source_key.clear();
    e.source_version.clear();
    return Status::Ok();
  }
  if (!keyring_) return make_error(ErrorCode::kUnavailable, "the master key is not loaded yet");
  auto blob = keyring_->seal(w.password,
                             crypto::credential_aad(key_of(ns, name), w.registry_host, w.username));
  if (!blob) return blob.error();
  json sealed = {{"keyId", blob->key_id},
                 {"nonce", base64::encode(std::string(blob->nonce.begin(), blob->nonce.end()))},
                 {"ciphertext",
                  base64::encode(std::string(blob->ciphertext.begin(), blob->ciphertext.end()))}};
  std::string source_name, source_key, source_version;
  {
    std::lock_guard lock(mu_);
    source_name = e.next_source_name;
    source_key = e.next_source_key;
    source_version = e.next_source_version;
  }
  json annotations = {
      {kHostAnnotation, w.registry_host},
      {kUserAnnotation, w.username},
      {kSetAtAnnotation, core::format_rfc3339(w.set_at)},
      {kSourceAnnotation,
       json{{"name", source_name}, {"key", source_key}, {"resourceVersion", source_version}}
           .dump()}};
  if (w.expires_at) annotations[kExpiresAtAnnotation] = core::format_rfc3339(*w.expires_at);
  json object = {{"apiVersion", "v1"},
                 {"kind", "Secret"},
                 {"type", "berth.dev/sealed-registry-credential"},
                 {"metadata",
                  {{"name", secret_name},
                   {"namespace", ns},
                   {"labels", {{kRevisionAppLabel, revision_label_value(name)}}},
                   {"annotations", annotations},
                   {"ownerReferences", json::array({{{"apiVersion", kAppServiceApiVersion},
                                                     {"kind", kAppServiceKind},
                                                     {"name", name},
                                                     {"uid", uid},
                                                     {"controller", true},
                                                     {"blockOwnerDeletion", true}}})}}},
                 {"data", {{kSealedKey, base64::encode(sealed.dump())}}}};
  auto created = secrets_.raw().create(object);
  if (!created && created.error().code == ErrorCode::kConflict) {
    // Replace the existing one (read for its resourceVersion, 409 retried).
    auto updated = secrets_.raw().update_with_retry(ns, secret_name, [&](json& current) {
      current["type"] = object["type"];
      current["metadata"]["annotations"] = annotations;
      current["metadata"]["labels"] = object["metadata"]["labels"];
      current["metadata"]["ownerReferences"] = object["metadata"]["ownerReferences"];
      current["data"] = object["data"];
      return true;
    });
    if (!updated) return updated.error();
  } else if (!created) {
    return created.error();
  }
  std::lock_guard lock(mu_);
  e.credential = core::StoredCredential{w.registry_host, w.username, w.set_at, w.expires_at};
  e.sealed = std::move(blob).value();
  e.source_name = source_name;
  e.source_key = source_key;
  e.source_version = source_version;
  return Status::Ok();
}

Status KubeStateStore::commit(const std::string& id, const core::Change& change,
                              std::optional<std::int64_t> expected_generation) {
  auto found = loaded(id);
  if (!found) return found.error();
  Entry& e = **found;
  {
    std::lock_guard lock(mu_);
    if (expected_generation && e.generation != *expected_generation)
      return make_error(ErrorCode::kConflict, "the app service changed since it was read");
  }
  // The credential first: if this process stops before the revision exists, the change was
  // never accepted, and the next look at the spec decides again with the credential in place.
  if (Status st = write_credential(e, change.credential); !st.ok()) return st;
  std::optional<core::Revision> revision = change.revision;
  if (revision) {
    if (Status st = create_revision(e, *revision); !st.ok()) return st;
  }
  std::optional<StoreEvent> event;
  {
    std::lock_guard lock(mu_);
    const core::AppService& s = change.service;
    e.generation += 1;
    e.status =
        (e.status == core::ServiceStatus::kDeleting && s.status != core::ServiceStatus::kDeleting)
            ? e.status
            : s.status;
    e.conditions = with_defaults(s.conditions, e.conditions, !s.config.registry_username.empty(),
                                 s.registry_host, options_.now());
    if (revision) {
      e.desired_id = revision->id;
    } else if (!s.desired_deployment_id.empty()) {
      e.desired_id = s.desired_deployment_id;
    }
    if (change.task) {
      core::Task t = *change.task;
      t.service_id = id;
      if (revision && t.kind == core::TaskKind::kDeploy) {
        t.revision_id = revision->id;
        t.id = derived_task_id(id, revision->id);
      }
      e.tasks.push_back(std::move(t));
    }
    if (revision) {
      e.refusal.reset();
      event = StoreEvent{regarding_of(e), false, "RevisionCreated", "Accept",
                         "revision " + std::to_string(revision->number) + " (" + revision->reason +
                             "): " + revision->config.image_ref};
    }
  }
  if (event && options_.on_event) options_.on_event(*event);
  return write_status(e);
}

Status KubeStateStore::delete_service(std::string_view id) {
  EntryPtr e = find(id);
  if (!e) return Status::Ok();
  std::string ns, name;
  ObjectReference ref;
  {
    std::lock_guard lock(mu_);
    ns = e->object.metadata.namespace_;
    name = e->object.metadata.name;
    ref = regarding_of(*e);
  }
  // The revisions and the sealed credential are owned by the AppService: the garbage collector
  // removes them once the object is gone. Berth's part is to let it go.
  auto updated = apps_.update_with_retry(ns, name, [&](AppService& a) {
    if (a.metadata.uid != id) return false;
    auto& f = a.metadata.finalizers;
    auto it = std::find(f.begin(), f.end(), kCleanupFinalizer);
    if (it == f.end()) return false;
    f.erase(it);
    return true;
  });
  if (!updated && updated.error().code != ErrorCode::kNotFound) return updated.error();
  if (options_.on_event)
    options_.on_event(StoreEvent{ref, false, "Deleted", "Delete",
                                 "the app was removed from its agent; finalizer released"});
  std::lock_guard lock(mu_);
  e->tasks.clear();
  e->status = core::ServiceStatus::kDeleting;
  return Status::Ok();
}

// --- revisions ---------------------------------------------------------------------------------

Result<std::vector<core::Revision>> KubeStateStore::list_revisions(std::string_view service_id,
                                                                   bool include_failed) {
  auto e = loaded(service_id);
  if (!e) return e.error();
  std::lock_guard lock(mu_);
  std::vector<core::Revision> out;
  for (auto it = (*e)->revisions.rbegin(); it != (*e)->revisions.rend(); ++it) {
    if (include_failed || it->state == core::RevisionState::kSucceeded) out.push_back(*it);
  }
  return out;
}

Result<core::Revision> KubeStateStore::get_revision(std::string_view service_id,
                                                    std::string_view revision_id) {
  auto e = loaded(service_id);
  if (!e) return e.error();
  std::lock_guard lock(mu_);
  for (const auto& r : (*e)->revisions)
    if (r.id == revision_id) return r;
  return make_error(ErrorCode::kNotFound, "no such revision");
}

Result<std::int64_t> KubeStateStore::next_revision_number(std::string_view service_id) {
  auto e = loaded(service_id);
  if (!e) return e.error();
  std::lock_guard lock(mu_);
  return (*e)->revisions.empty() ? std::int64_t{1} : (*e)->revisions.back().number + 1;
}

Status KubeStateStore::record_outcome(const core::Revision& revision,
                                      const core::AppService& service, int keep_succeeded) {
  auto found = loaded(service.id);
  if (!found) return found.error();
  Entry& e = **found;
  std::string ns;
  std::optional<core::Revision> before;
  bool digest_in_data = false;
  {
    std::lock_guard lock(mu_);
    ns = e.object.metadata.namespace_;
    for (const auto& r : e.revisions) {
      if (r.id == revision.id) before = r;
    }
  }
  if (!before) return make_error(ErrorCode::kNotFound, "no such revision");
  digest_in_data = !before->image_digest.empty() && before->image_digest == revision.image_digest;
  json patch = state_patch(
      revision.state,
      revision.finished_at > 0 ? core::format_rfc3339(revision.finished_at) : std::string(),
      service.last_error.empty() || revision.state != core::RevisionState::kFailed
          ? std::string()
          : service.last_error);
  patch["metadata"]["annotations"][kDeployLogsAnnotation] =
      revision.deploy_logs.empty() ? json(nullptr)
                                   : json(logs_to_json(revision.deploy_logs).dump());
  if (!digest_in_data && !revision.image_digest.empty())
    patch["metadata"]["annotations"][kDigestAnnotation] = revision.image_digest;
  auto written = revisions_.merge_patch(ns, revision.id, patch);
  if (!written && written.error().code != ErrorCode::kNotFound) return written.error();

  std::optional<StoreEvent> event;
  {
    std::lock_guard lock(mu_);
    for (auto& r : e.revisions)
      if (r.id == revision.id) r = revision;
    if (before->state != revision.state) {
      if (revision.state == core::RevisionState::kSucceeded) {
        event = StoreEvent{
            regarding_of(e), false, "RolloutSucceeded", "Rollout",
            "revision " + std::to_string(revision.number) + " is serving " + revision.image_digest};
      } else if (revision.state == core::RevisionState::kFailed) {
        event = StoreEvent{
            regarding_of(e), true, "RolloutFailed", "Rollout",
            "revision " + std::to_string(revision.number) + " failed: " + service.last_error};
      }
    }
  }
  if (event && options_.on_event) options_.on_event(*event);
  if (Status st = update_observed(service); !st.ok()) return st;
  prune(e, keep_succeeded);
  return Status::Ok();
}

void KubeStateStore::prune(Entry& e, int keep_succeeded) {
  if (keep_succeeded < 1) return;
  std::vector<std::string> doomed;
  std::string ns;
  {
    std::lock_guard lock(mu_);
    ns = e.object.metadata.namespace_;
    std::set<std::string> in_use{e.current_id, e.desired_id};
    for (const auto& t : e.tasks)
      if (t.state != core::TaskState::kDone) in_use.insert(t.revision_id);
    int succeeded = 0, other = 0;
    for (auto it = e.revisions.rbegin(); it != e.revisions.rend(); ++it) {
      if (it->state == core::RevisionState::kPending || in_use.count(it->id)) continue;
      int& count = it->state == core::RevisionState::kSucceeded ? succeeded : other;
      if (++count > keep_succeeded) doomed.push_back(it->id);
    }
  }
  for (const auto& name : doomed) {
    Status st = revisions_.remove(ns, name);
    if (!st.ok() && st.error().code != ErrorCode::kNotFound) {
      log::warn("pruning a revision failed", {{"revision", name}, {"error", st.error().message}});
      continue;
    }
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < e.revisions.size(); ++i) {
      if (e.revisions[i].id == name) {
        e.revisions.erase(e.revisions.begin() + static_cast<std::ptrdiff_t>(i));
        e.revision_specs.erase(e.revision_specs.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
  }
}

Status KubeStateStore::update_observed(const core::AppService& service) {
  auto found = loaded(service.id);
  if (!found) return found.error();
  Entry& e = **found;
  std::optional<StoreEvent> event;
  {
    std::lock_guard lock(mu_);
    if (e.agent.empty() && !service.agent.empty()) {
      event = StoreEvent{regarding_of(e), false, "Scheduled", "Schedule",
                         "placed on agent " + service.agent};
    }
    if (e.status != core::ServiceStatus::kDeleting) e.status = service.status;
    e.url = service.url;
    e.current_id = service.current_deployment_id;
    e.agent = service.agent;
    e.conditions =
        with_defaults(service.conditions, e.conditions, !service.config.registry_username.empty(),
                      service.registry_host, options_.now());
    e.last_error = service.last_error;
  }
  if (event && options_.on_event) options_.on_event(*event);
  return write_status(e);
}

// --- credentials -------------------------------------------------------------------------------

Result<std::optional<core::StoredCredential>> KubeStateStore::get_credential(
    std::string_view service_id) {
  auto e = loaded(service_id);
  if (!e) return e.error();
  std::lock_guard lock(mu_);
  return (*e)->credential;
}

Result<Secret> KubeStateStore::unseal_password(std::string_view service_id,
                                               std::string_view registry_host,
                                               std::string_view username) {
  auto e = loaded(service_id);
  if (!e) return e.error();
  {
    std::lock_guard lock(mu_);
    const auto& c = (*e)->credential;
    if (!c) return make_error(ErrorCode::kNotFound, "the app service has no stored credential");
    if (c->registry_host != registry_host || c->username != username) {
      return make_error(
          ErrorCode::kFailedPrecondition,
          "the stored registry credential is not for the registry and username being used");
    }
  }
  return unseal_stored(std::string(service_id));
}

// --- tasks ---------------------------------------------------------------------------------------

Result<std::vector<core::Task>> KubeStateStore::pending_tasks(std::string_view service_id) {
  auto e = loaded(service_id);
  if (!e) return e.error();
  std::lock_guard lock(mu_);
  std::vector<core::Task> out;
  for (const auto& t : (*e)->tasks)
    if (t.state != core::TaskState::kDone) out.push_back(t);
  return out;
}

Status KubeStateStore::update_task(const core::Task& task) {
  EntryPtr e = find(task.service_id);
  if (!e) return make_error(ErrorCode::kNotFound, "no such task");
  std::lock_guard lock(mu_);
  for (auto it = e->tasks.begin(); it != e->tasks.end(); ++it) {
    if (it->id != task.id) continue;
    if (it->state == core::TaskState::kDone)
      return make_error(ErrorCode::kFailedPrecondition, "the task is already done");
    it->state = task.state;
    it->agent = task.agent;
    it->attempts = task.attempts;
    it->updated_at = task.updated_at;
    // Finished tasks are history nobody reads in Kubernetes mode.
    if (it->state == core::TaskState::kDone) e->tasks.erase(it);
    return Status::Ok();
  }
  return make_error(ErrorCode::kNotFound, "no such task");
}

// --- agents --------------------------------------------------------------------------------------

Status KubeStateStore::upsert_agent(const core::AgentRecord& agent) {
  std::lock_guard lock(mu_);
  agents_[agent.name] = agent;
  return Status::Ok();
}

Result<std::vector<core::AgentRecord>> KubeStateStore::list_agents() {
  std::lock_guard lock(mu_);
  std::vector<core::AgentRecord> out;
  for (const auto& [name, a] : agents_) out.push_back(a);
  return out;
}

}  // namespace berth::kube
