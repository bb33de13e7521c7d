#include "kube_revocations.h"

#include <chrono>
#include <thread>

#include "common/log.h"

namespace berth::controller {
namespace {

using nlohmann::json;

const kube::ResourceType kConfigMapType{"", "v1", "configmaps", "ConfigMap", true};

// The list's text in a ConfigMap object ("" when the key or data is absent: nothing revoked).
std::string list_text(const json& object) {
  const json& data = object.value("data", json::object());
  if (!data.is_object()) return {};
  auto it = data.find(kRevocationConfigMapKey);
  return it != data.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A few rounds of get-modify-update are enough for operators revoking by hand; more would only
// hide a writer that never stops.
constexpr int kUpdateAttempts = 5;

}  // namespace

KubeRevocations::KubeRevocations(kube::Transport& transport, const std::string& namespace_)
    : namespace_(namespace_), client_(transport, kConfigMapType) {}

KubeRevocations::~KubeRevocations() {
  if (informer_) informer_->stop();
}

Result<std::unique_ptr<KubeRevocations>> KubeRevocations::start(
    kube::Transport& transport, const std::string& namespace_,
    std::chrono::milliseconds sync_limit) {
  std::unique_ptr<KubeRevocations> self(new KubeRevocations(transport, namespace_));
  kube::InformerOptions io;
  io.namespace_ = namespace_;
  io.field_selector = std::string("metadata.name=") + kRevocationConfigMap;
  kube::InformerHandlers handlers;
  KubeRevocations* raw = self.get();  // the informer is stopped in the destructor, before *raw
  handlers.on_add = [raw](const json& object) { raw->load(object); };
  handlers.on_update = [raw](const json&, const json& object) { raw->load(object); };
  handlers.on_delete = [raw](const json&) { raw->clear(); };
  self->informer_ = std::make_unique<kube::Informer>(self->client_, io, handlers);
  self->informer_->start();
  // The informer has no wait: poll its flag, bounded by sync_limit.
  const auto deadline = std::chrono::steady_clock::now() + sync_limit;
  while (!self->informer_->has_synced()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(ErrorCode::kUnavailable, "the agent revocation list (ConfigMap " +
                                                     namespace_ + "/" + kRevocationConfigMap +
                                                     ") could not be listed in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::lock_guard lock(self->mu_);
  if (self->malformed_)
    return make_error(ErrorCode::kDataLoss, "the agent revocation list (ConfigMap " + namespace_ +
                                                "/" + kRevocationConfigMap + ") is malformed");
  return self;
}

bool KubeRevocations::load(const json& object) {
  auto parsed = parse_revocations(list_text(object));
  std::lock_guard lock(mu_);
  if (!parsed.ok()) {
    malformed_ = true;
    log::error("agent revocation list unreadable; keeping the last one read",
               {{"configmap", namespace_ + "/" + kRevocationConfigMap},
                {"error", parsed.error().message}});
    return false;
  }
  malformed_ = false;
  list_ = std::move(parsed).value();
  log::info("agent revocation list loaded",
            {{"configmap", namespace_ + "/" + kRevocationConfigMap}, {"entries", list_.size()}});
  return true;
}

void KubeRevocations::clear() {
  std::lock_guard lock(mu_);
  list_.clear();
  malformed_ = false;
  log::info("agent revocation list removed",
            {{"configmap", namespace_ + "/" + kRevocationConfigMap}});
}

std::string KubeRevocations::reason(const std::string& name, const std::string& fingerprint) const {
  std::lock_guard lock(mu_);
  return revocation_reason(list_, name, fingerprint);
}

Status revoke_agent_kube(kube::Transport& transport, const std::string& namespace_,
                         const Revocation& revocation) {
  if (Status st = validate_revocation(revocation); !st.ok()) return st;
  kube::ResourceClient configmaps(transport, kConfigMapType);
  const std::string line = revocation_line(revocation);
  for (int attempt = 0; attempt < kUpdateAttempts; ++attempt) {
    auto current = configmaps.get(namespace_, kRevocationConfigMap);
    if (!current.ok() && current.error().code == ErrorCode::kNotFound) {
      json object = {{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata",
                      {{"name", kRevocationConfigMap},
                       {"namespace", namespace_},
                       {"labels", {{"app.kubernetes.io/managed-by", "berth"}}}}},
                     {"data", {{kRevocationConfigMapKey, line}}}};
      auto created = configmaps.create(object);
      if (created.ok()) return Status::Ok();
      if (created.error().code == ErrorCode::kConflict) continue;  // created meanwhile: append
      return created.error();
    }
    if (!current.ok()) return current.error();
    json object = std::move(current).value();
    std::string text = list_text(object);
    if (!text.empty() && text.back() != '\n') text += '\n';
    text += line;
    if (!object.contains("data") || !object["data"].is_object()) object["data"] = json::object();
    object["data"][kRevocationConfigMapKey] = text;
    // The object keeps the resourceVersion it was read at: a write in between is a conflict,
    // and the next round appends to what that writer left.
    auto updated = configmaps.update(object);
    if (updated.ok()) return Status::Ok();
    if (updated.error().code != ErrorCode::kConflict) return updated.error();
  }
  return make_error(ErrorCode::kConflict, "the ConfigMap " + namespace_ + "/" +
                                              kRevocationConfigMap +
                                              " kept changing; run revoke-agent again");
}

}  // namespace berth::controller
