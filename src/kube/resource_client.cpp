#include "kube/resource_client.h"

#include <utility>

#include "common/text.h"
#include "kube/status_error.h"

namespace berth::kube {
namespace {

using nlohmann::json;

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kMergePatch = "application/merge-patch+json";
// Server-side apply takes YAML, and JSON is YAML: the body is sent as JSON.
constexpr std::string_view kApplyPatch = "application/apply-patch+yaml";
// A watch's own deadline is the server-side timeout plus this margin: the server ends the
// stream at timeoutSeconds, the client gives up only if it did not.
constexpr int kWatchDeadlineMarginSeconds = 30;
// A continue token can expire between pages (410); list_all restarts the list this many times.
constexpr int kListRestarts = 3;

// RFC 1123 subdomain: dot-separated DNS labels, at most 253 bytes. Every name berth reads or
// writes is one (AppServices, Secrets, revisions, leases, events), and the check keeps "/", "?",
// "%" and ".." out of request paths.
bool is_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    const std::string_view label =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!is_dns_label(label)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

Status check_name(std::string_view what, std::string_view name) {
  if (is_dns_subdomain(name)) return Status::Ok();
  return make_error(ErrorCode::kInvalidArgument,
                    std::string(what) +
                        " must be a DNS subdomain (lowercase letters, digits, '-' and '.', "
                        "at most 253 characters): " +
                        one_line(name, 80));
}

Status check_namespace(std::string_view namespace_, bool allow_empty) {
  if (namespace_.empty() && allow_empty) return Status::Ok();
  if (is_dns_label(namespace_)) return Status::Ok();
  return make_error(ErrorCode::kInvalidArgument,
                    "namespace must be a DNS label (lowercase letters, digits and '-', at most "
                    "63 characters): " +
                        one_line(namespace_, 80));
}

Status check_subresource(std::string_view subresource) {
  if (subresource.empty() || is_dns_label(subresource)) return Status::Ok();
  return make_error(ErrorCode::kInvalidArgument,
                    "subresource must be a DNS label: " + one_line(subresource, 80));
}

class Query {
 public:
  Query& add(std::string_view key, std::string_view value) {
    if (value.empty()) return *this;
    text_ += text_.empty() ? '?' : '&';
    text_ += key;
    text_ += '=';
    text_ += url_encode(value);
    return *this;
  }
  const std::string& str() const { return text_; }

 private:
  std::string text_;
};

// The body of a 2xx answer as JSON; a body that does not parse is the server's bug or a proxy's,
// and retrying may help.
Result<json> parse_body(const Response& response) {
  json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return make_error(ErrorCode::kUnavailable, "the API server answered HTTP " +
                                                   std::to_string(response.status) +
                                                   " with a body that is not a JSON object");
  }
  return body;
}

std::string meta_string(const json& object, const char* key) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return {};
  auto it = meta->find(key);
  return it != meta->end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string api_version_of(const ResourceType& type) {
  return type.group.empty() ? type.version : type.group + "/" + type.version;
}

}  // namespace

ResourceClient::ResourceClient(Transport& transport, ResourceType type)
    : transport_(transport), type_(std::move(type)) {}

std::string ResourceClient::collection_path(const std::string& namespace_) const {
  std::string path =
      type_.group.empty() ? "/api/" + type_.version : "/apis/" + type_.group + "/" + type_.version;
  if (type_.namespaced && !namespace_.empty()) path += "/namespaces/" + url_encode(namespace_);
  path += "/" + type_.resource;
  return path;
}

std::string ResourceClient::object_path(const std::string& namespace_,
                                        const std::string& name) const {
  // Encoded as well as validated by the callers: a path segment can never become two.
  return collection_path(namespace_) + "/" + url_encode(name);
}

namespace {

// Validation of the (namespace, name) pair every single-object call starts with.
Status check_object_ref(const ResourceType& type, const std::string& namespace_,
                        const std::string& name) {
  if (type.namespaced) {
    if (namespace_.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        type.resource + " are namespaced: a namespace is required");
    }
    if (auto st = check_namespace(namespace_, false); !st) return st;
  }
  return check_name("name", name);
}

Result<json> send_json(Transport& transport, Request request) {
  auto response = transport.send(request);
  if (!response) return response.take_error();
  if (response->status < 200 || response->status > 299) {
    return status_error(response->status, response->body);
  }
  return parse_body(*response);
}

}  // namespace

Result<json> ResourceClient::get(const std::string& namespace_, const std::string& name) {
  if (auto st = check_object_ref(type_, namespace_, name); !st) return st.error();
  Request request;
  request.target = object_path(namespace_, name);
  return send_json(transport_, std::move(request));
}

Result<ListPage> ResourceClient::list(const std::string& namespace_, const ListOptions& options) {
  if (type_.namespaced) {
    if (auto st = check_namespace(namespace_, true); !st) return st.error();
  }
  Query query;
  query.add("labelSelector", options.label_selector)
      .add("fieldSelector", options.field_selector)
      .add("limit", options.limit > 0 ? std::to_string(options.limit) : "")
      .add("continue", options.continue_token)
      .add("resourceVersion", options.resource_version);
  Request request;
  request.target = collection_path(type_.namespaced ? namespace_ : "") + query.str();
  auto body = send_json(transport_, std::move(request));
  if (!body) return body.take_error();
  ListPage page;
  page.resource_version = meta_string(*body, "resourceVersion");
  page.continue_token = meta_string(*body, "continue");
  auto items = body->find("items");
  if (items != body->end() && items->is_array()) {
    page.items.reserve(items->size());
    for (auto& item : *items) {
      if (!item.is_object()) continue;
      // A list's items carry no apiVersion/kind on a real server for built-in types; filling
      // them in makes every object look the same whether it came from get, list or watch.
      if (!item.contains("apiVersion")) item["apiVersion"] = api_version_of(type_);
      if (!item.contains("kind")) item["kind"] = type_.kind;
      page.items.push_back(std::move(item));
    }
  }
  return page;
}

Result<ListPage> ResourceClient::list_all(const std::string& namespace_, ListOptions options) {
  const ListOptions first = options;
  ListPage all;
  int restarts = 0;
  while (true) {
    auto page = list(namespace_, options);
    if (!page) {
      // The continue token expired mid-list: the pages read so far may be inconsistent with
      // the rest, so start over (client-go's pager does the same).
      if (is_expired(page.error()) && !options.continue_token.empty() &&
          restarts++ < kListRestarts) {
        all = ListPage{};
        options = first;
        continue;
      }
      return page.take_error();
    }
    for (auto& item : page->items) all.items.push_back(std::move(item));
    all.resource_version = page->resource_version;
    if (page->continue_token.empty()) return all;
    options.continue_token = page->continue_token;
    // A continue token carries its own resourceVersion; the server refuses both at once.
    options.resource_version.clear();
  }
}

Result<json> ResourceClient::create(const json& object) {
  if (!object.is_object())
    return make_error(ErrorCode::kInvalidArgument, "object must be a JSON object");
  const std::string namespace_ = meta_string(object, "namespace");
  const std::string name = meta_string(object, "name");
  if (type_.namespaced) {
    if (namespace_.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "metadata.namespace is required: " + type_.resource + " are namespaced");
    }
    if (auto st = check_namespace(namespace_, false); !st) return st.error();
  }
  // The name is not part of a create's path; it is checked only so that a bad one fails here
  // with a clear message. Without one (generateName, or a review object such as
  // SelfSubjectAccessReview) the server decides.
  if (!name.empty()) {
    if (auto st = check_name("metadata.name", name); !st) return st.error();
  }
  Request request;
  request.method = "POST";
  request.target = collection_path(type_.namespaced ? namespace_ : "");
  request.content_type = kJson;
  request.body = object.dump();
  return send_json(transport_, std::move(request));
}

Result<json> ResourceClient::update(const json& object, const std::string& subresource) {
  if (!object.is_object())
    return make_error(ErrorCode::kInvalidArgument, "object must be a JSON object");
  const std::string namespace_ = meta_string(object, "namespace");
  const std::string name = meta_string(object, "name");
  if (auto st = check_object_ref(type_, namespace_, name); !st) return st.error();
  if (auto st = check_subresource(subresource); !st) return st.error();
  // Without a resourceVersion the server would overwrite whatever changed since the read.
  if (meta_string(object, "resourceVersion").empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "metadata.resourceVersion is required for an update (read the object "
                      "first, or use merge_patch or apply)");
  }
  Request request;
  request.method = "PUT";
  request.target = object_path(namespace_, name) + (subresource.empty() ? "" : "/" + subresource);
  request.content_type = kJson;
  request.body = object.dump();
  return send_json(transport_, std::move(request));
}

Result<json> ResourceClient::merge_patch(const std::string& namespace_, const std::string& name,
                                         const json& patch, const PatchOptions& options) {
  if (auto st = check_object_ref(type_, namespace_, name); !st) return st.error();
  if (auto st = check_subresource(options.subresource); !st) return st.error();
  if (!patch.is_object())
    return make_error(ErrorCode::kInvalidArgument, "a merge patch must be a JSON object");
  Query query;
  query.add("fieldManager", options.field_manager);
  Request request;
  request.method = "PATCH";
  request.target = object_path(namespace_, name) +
                   (options.subresource.empty() ? "" : "/" + options.subresource) + query.str();
  request.content_type = kMergePatch;
  request.body = patch.dump();
  return send_json(transport_, std::move(request));
}

Result<json> ResourceClient::apply(const json& object, const PatchOptions& options) {
  if (!object.is_object())
    return make_error(ErrorCode::kInvalidArgument, "object must be a JSON object");
  if (options.field_manager.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "server-side apply needs a field manager");
  }
  const std::string namespace_ = meta_string(object, "namespace");
  const std::string name = meta_string(object, "name");
  if (auto st = check_object_ref(type_, namespace_, name); !st) return st.error();
  if (auto st = check_subresource(options.subresource); !st) return st.error();
  // Apply needs the object's type in the body; fill it in rather than make every caller repeat
  // what the client already knows, but refuse a body written for another type.
  json body = object;
  const std::string api_version = api_version_of(type_);
  if (!body.contains("apiVersion")) body["apiVersion"] = api_version;
  if (!body.contains("kind")) body["kind"] = type_.kind;
  if (body["apiVersion"] != api_version || body["kind"] != type_.kind) {
    return make_error(ErrorCode::kInvalidArgument,
                      "apply: the object is not a " + type_.kind + " (" + api_version + ")");
  }
  Query query;
  query.add("fieldManager", options.field_manager).add("force", options.force ? "true" : "");
  Request request;
  request.method = "PATCH";
  request.target = object_path(namespace_, name) +
                   (options.subresource.empty() ? "" : "/" + options.subresource) + query.str();
  request.content_type = kApplyPatch;
  request.body = body.dump();
  return send_json(transport_, std::move(request));
}

Status ResourceClient::remove(const std::string& namespace_, const std::string& name,
                              const std::string& precondition_uid) {
  if (auto st = check_object_ref(type_, namespace_, name); !st) return st;
  Request request;
  request.method = "DELETE";
  request.target = object_path(namespace_, name);
  if (!precondition_uid.empty()) {
    // Deletes this object only, not a namesake created after it was read.
    const json options = {{"apiVersion", "v1"},
                          {"kind", "DeleteOptions"},
                          {"preconditions", {{"uid", precondition_uid}}}};
    request.content_type = kJson;
    request.body = options.dump();
  }
  auto result = send_json(transport_, std::move(request));
  if (!result) return result.take_error();
  return Status::Ok();
}

Result<json> ResourceClient::update_with_retry(const std::string& namespace_,
                                               const std::string& name,
                                               const std::function<bool(json&)>& mutate,
                                               const std::string& subresource, int attempts) {
  Error last = make_error(ErrorCode::kInvalidArgument, "update_with_retry: attempts must be >= 1");
  for (int attempt = 0; attempt < attempts; ++attempt) {
    auto current = get(namespace_, name);
    if (!current) return current.take_error();
    json object = std::move(current.value());
    if (!mutate(object)) return object;
    auto updated = update(object, subresource);
    if (updated) return updated;
    if (updated.error().code != ErrorCode::kConflict) return updated.take_error();
    // Someone else wrote in between: read their version and apply the change to it.
    last = updated.take_error();
  }
  return last;
}

Status ResourceClient::watch(const std::string& namespace_, const WatchOptions& options,
                             const std::function<bool(const WatchEvent&)>& on_event,
                             std::stop_token stop, bool* gone) {
  if (gone != nullptr) *gone = false;
  if (type_.namespaced) {
    if (auto st = check_namespace(namespace_, true); !st) return st;
  }
  const int timeout_seconds = options.timeout_seconds > 0 ? options.timeout_seconds : 300;
  Query query;
  query.add("watch", "true")
      .add("allowWatchBookmarks", options.allow_bookmarks ? "true" : "")
      .add("resourceVersion", options.resource_version)
      .add("timeoutSeconds", std::to_string(timeout_seconds))
      .add("labelSelector", options.label_selector)
      .add("fieldSelector", options.field_selector);
  Request request;
  request.target = collection_path(type_.namespaced ? namespace_ : "") + query.str();
  request.timeout = std::chrono::seconds(timeout_seconds + kWatchDeadlineMarginSeconds);

  std::optional<Error> failure;
  auto on_line = [&](std::string_view line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty()) return true;
    json event = json::parse(line, nullptr, /*allow_exceptions=*/false);
    auto type = event.is_object() ? event.find("type") : event.end();
    auto object = event.is_object() ? event.find("object") : event.end();
    if (!event.is_object() || type == event.end() || !type->is_string() || object == event.end() ||
        !object->is_object()) {
      failure = make_error(ErrorCode::kUnavailable, "watch: the API server sent a malformed event");
      return false;
    }
    WatchEvent out{type->get<std::string>(), std::move(*object)};
    if (out.type == "ERROR") {
      // In-stream errors come inside a 200: the code is in the Status object.
      failure = status_error(200, out.object.dump());
      return false;
    }
    return on_event(out);
  };
  std::string error_body;
  auto status = transport_.stream(request, on_line, stop, &error_body);
  if (!status) return status.take_error();
  if (*status < 200 || *status > 299) failure = status_error(*status, error_body);
  if (!failure) return Status::Ok();
  if (gone != nullptr) *gone = is_expired(*failure);
  return *failure;
}

}  // namespace berth::kube
