#include "kube/revision_format.h"

#include <algorithm>
#include <array>

#include <openssl/sha.h>

#include "common/hex.h"
#include "common/text.h"
#include "kube/resource_client.h"
#include "kube/types.h"

namespace berth::kube {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxNameLength = 253;  // a DNS subdomain (object names)
constexpr std::size_t kMaxLabelValueLength = 63;
constexpr std::size_t kHashLength = 10;

std::string short_hash(std::string_view text) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return hex_lower(digest.data(), digest.size()).substr(0, kHashLength);
}

// `text` cut to `length`, without the dots and dashes a cut can leave at the end (a name part
// must end with a letter or digit).
std::string cut(std::string_view text, std::size_t length) {
  std::string out(text.substr(0, length));
  while (!out.empty() && (out.back() == '.' || out.back() == '-' || out.back() == '_'))
    out.pop_back();
  return out;
}

bool is_sha256_digest(std::string_view digest) {
  constexpr std::string_view kPrefix = "sha256:";
  if (digest.size() != kPrefix.size() + 64 || digest.substr(0, kPrefix.size()) != kPrefix)
    return false;
  return std::all_of(digest.begin() + kPrefix.size(), digest.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Whether any object in `value` has a key "password" (any case). The spec names its Secret by
// reference (registryPasswordSecretRef); a password itself has no place in a revision.
bool has_password_key(const json& value) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      if (iequals_ascii(key, "password") || has_password_key(child)) return true;
    }
  } else if (value.is_array()) {
    for (const auto& child : value) {
      if (has_password_key(child)) return true;
    }
  }
  return false;
}

Error invalid(const std::string& what, const std::string& field, const std::string& problem) {
  return make_error(ErrorCode::kInvalidArgument, what + ": " + field + ": " + problem, field);
}

// A string field of `object` ("" when absent or null); false when it is another type.
bool read_string(const json& object, const char* key, std::string& out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

}  // namespace

std::string suffixed_name(std::string_view app_name, std::string_view suffix) {
  if (app_name.size() + suffix.size() <= kMaxNameLength)
    return std::string(app_name) + std::string(suffix);
  const std::string hashed = "-" + short_hash(app_name) + std::string(suffix);
  return cut(app_name, kMaxNameLength - hashed.size()) + hashed;
}

std::string revision_name(std::string_view app_name, std::int64_t number) {
  return suffixed_name(app_name, "-" + std::to_string(number));
}

std::string revision_label_value(std::string_view app_name) {
  if (app_name.size() <= kMaxLabelValueLength) return std::string(app_name);
  const std::string hashed = "-" + short_hash(app_name);
  return cut(app_name, kMaxLabelValueLength - hashed.size()) + hashed;
}

std::string revision_label_selector(std::string_view app_name) {
  return std::string(kRevisionAppLabel) + "=" + revision_label_value(app_name);
}

Result<json> build_revision(const RevisionRecord& record) {
  const std::string what = "revision " + record.namespace_ + "/" + record.app_name + " #" +
                           std::to_string(record.number);
  if (record.app_name.empty()) return invalid(what, "app_name", "required");
  if (record.namespace_.empty()) return invalid(what, "namespace", "required");
  if (record.app_uid.empty()) return invalid(what, "app_uid", "required");
  if (record.number < 1) return invalid(what, "revision", "must be 1 or more");
  if (!record.spec.is_object()) return invalid(what, "data.spec", "not an object");
  if (has_password_key(record.spec))
    return invalid(what, "data.spec", "holds a password; a revision names its Secret only");
  if (!record.image_digest.empty() && !is_sha256_digest(record.image_digest))
    return invalid(what, "data.imageDigest", "not a sha256 digest");

  json annotations = {{kRevisionStateAnnotation, core::to_string(record.state)}};
  if (!record.finished_at.empty()) annotations[kRevisionFinishedAtAnnotation] = record.finished_at;
  if (!record.last_error.empty()) annotations[kRevisionLastErrorAnnotation] = record.last_error;

  json data = {{"spec", record.spec},
               {"imageDigest", record.image_digest},
               {"registryHost", record.registry_host},
               {"registryUsername", record.registry_username}};
  return json{{"apiVersion", "apps/v1"},
              {"kind", "ControllerRevision"},
              {"metadata",
               {{"name", revision_name(record.app_name, record.number)},
                {"namespace", record.namespace_},
                {"labels", {{kRevisionAppLabel, revision_label_value(record.app_name)}}},
                {"annotations", std::move(annotations)},
                {"ownerReferences", json::array({{{"apiVersion", kAppServiceApiVersion},
                                                  {"kind", kAppServiceKind},
                                                  {"name", record.app_name},
                                                  {"uid", record.app_uid},
                                                  {"controller", true},
                                                  {"blockOwnerDeletion", true}}})}}},
              {"revision", record.number},
              {"data", std::move(data)}};
}

Result<RevisionRecord> parse_revision(const json& object) {
  auto typed = ControllerRevision::from_json(object);
  if (!typed) return typed.take_error();
  const ControllerRevision& cr = typed.value();
  const std::string what = "ControllerRevision " + cr.metadata.namespace_ + "/" + cr.metadata.name;

  RevisionRecord r;
  r.name = cr.metadata.name;
  r.namespace_ = cr.metadata.namespace_;
  r.creation_timestamp = cr.metadata.creation_timestamp;
  r.resource_version = cr.metadata.resource_version;
  r.number = cr.revision;

  const OwnerReference* owner = nullptr;
  for (const auto& ref : cr.metadata.owner_references) {
    if (ref.controller && ref.kind == kAppServiceKind &&
        ref.api_version.rfind("berth.dev/", 0) == 0) {
      owner = &ref;
    }
  }
  if (owner == nullptr)
    return invalid(what, "metadata.ownerReferences", "no controlling AppService");
  r.app_name = owner->name;
  r.app_uid = owner->uid;

  auto label = cr.metadata.labels.find(kRevisionAppLabel);
  if (label == cr.metadata.labels.end())
    return invalid(what, std::string("metadata.labels.") + kRevisionAppLabel, "required");
  if (label->second != revision_label_value(r.app_name))
    return invalid(what, std::string("metadata.labels.") + kRevisionAppLabel,
                   "does not match the owner's name");
  if (r.number < 1) return invalid(what, "revision", "must be 1 or more");

  if (!cr.data.is_object()) return invalid(what, "data", "not an object");
  auto spec = cr.data.find("spec");
  if (spec == cr.data.end() || !spec->is_object())
    return invalid(what, "data.spec", "required, an object");
  r.spec = *spec;
  if (!read_string(cr.data, "imageDigest", r.image_digest))
    return invalid(what, "data.imageDigest", "not a string");
  if (!r.image_digest.empty() && !is_sha256_digest(r.image_digest))
    return invalid(what, "data.imageDigest", "not a sha256 digest");
  if (!read_string(cr.data, "registryHost", r.registry_host))
    return invalid(what, "data.registryHost", "not a string");
  if (!read_string(cr.data, "registryUsername", r.registry_username))
    return invalid(what, "data.registryUsername", "not a string");

  const auto& annotations = cr.metadata.annotations;
  if (auto it = annotations.find(kRevisionStateAnnotation); it != annotations.end()) {
    auto state = core::parse_revision_state(it->second);
    if (!state)
      return invalid(what, std::string("metadata.annotations.") + kRevisionStateAnnotation,
                     "unknown state (want pending, succeeded, failed or superseded)");
    r.state = *state;
  }
  if (auto it = annotations.find(kRevisionFinishedAtAnnotation); it != annotations.end())
    r.finished_at = it->second;
  if (auto it = annotations.find(kRevisionLastErrorAnnotation); it != annotations.end())
    r.last_error = it->second;
  return r;
}

json state_patch(RevisionState state, const std::string& finished_at,
                 const std::string& last_error) {
  // null removes an annotation in a JSON merge patch.
  return {
      {"metadata",
       {{"annotations",
         {{kRevisionStateAnnotation, core::to_string(state)},
          {kRevisionFinishedAtAnnotation, finished_at.empty() ? json(nullptr) : json(finished_at)},
          {kRevisionLastErrorAnnotation,
           last_error.empty() ? json(nullptr) : json(last_error)}}}}}};
}

Result<std::vector<RevisionRecord>> list_revisions(Transport& transport,
                                                   const std::string& namespace_,
                                                   const std::string& app_name) {
  ResourceClient client(transport, ControllerRevision::kType);
  ListOptions options;
  options.label_selector = revision_label_selector(app_name);
  auto page = client.list_all(namespace_, options);
  if (!page) return page.take_error();
  std::vector<RevisionRecord> out;
  for (const auto& item : page->items) {
    auto record = parse_revision(item);
    if (!record) return record.take_error();
    // A hashed label value could in theory be shared; the owner decides.
    if (record->app_name != app_name) continue;
    out.push_back(std::move(record.value()));
  }
  std::sort(out.begin(), out.end(),
            [](const RevisionRecord& a, const RevisionRecord& b) { return a.number < b.number; });
  return out;
}

}  // namespace berth::kube
