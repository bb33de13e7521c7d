#include "api/handler.h"
#include "common/text.h"

#include <optional>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/auth.h"
#include "api/ui/ui.h"
#include "common/log.h"
#include "common/pause_point.h"
#include "core/app_service.h"
#include "core/change.h"
#include "core/credentials.h"
#include "core/image_ref.h"
#include "core/revision.h"

namespace berth::api {
namespace {

using nlohmann::json;

constexpr const char* kChallenge = R"(Basic realm="berth", Bearer realm="berth")";

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kValidation:
      return 422;
    case ErrorCode::kUnauthenticated:
      return 401;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kFailedPrecondition:
      return 422;
    case ErrorCode::kPayloadTooLarge:
      return 413;
    case ErrorCode::kUnsupportedMedia:
      return 415;
    case ErrorCode::kUnavailable:
    case ErrorCode::kDeadlineExceeded:
    case ErrorCode::kResourceExhausted:
    case ErrorCode::kPermissionDenied:
      return 503;
    case ErrorCode::kDataLoss:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

HttpResponse from_error(const Error& e) {
  const int status = http_status(e.code);
  if (status >= 500) {
    // Server-side trouble is logged once here; the client gets a sentence without internals.
    log::error("api request failed", {{"code", to_string(e.code)}, {"error", e.message}});
    if (status == 503) {
      HttpResponse r = json_error(503, "the service is temporarily unavailable; retry shortly");
      r.headers["Retry-After"] = "1";
      return r;
    }
    return json_error(500, "internal error");
  }
  HttpResponse r = json_error(status, e.message, e.field);
  if (status == 401) r.headers["WWW-Authenticate"] = kChallenge;
  return r;
}

}  // namespace

json progress_json(const core::RolloutProgress& p) {
  return json{{"step", p.step},
              {"layersDone", p.layers_done},
              {"layersTotal", p.layers_total},
              {"bytesDone", p.bytes_done},
              {"bytesTotal", p.bytes_total},
              {"updatedAt", core::format_rfc3339(p.updated_at)}};
}

namespace {

HttpResponse json_response(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.headers["Content-Type"] = "application/json";
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// "application/json" with any parameters ("; charset=utf-8"), case-insensitively.
bool is_json_media_type(std::string_view value) {
  const auto semi = value.find(';');
  std::string_view type = value.substr(0, semi);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  constexpr std::string_view kJson = "application/json";
  return iequals_ascii(type, kJson);
}

// Reads a JSON object body. Never echoes the body: parser messages quote the input, which may
// hold a password.
Result<json> read_json_body(const HttpRequest& req) {
  if (!is_json_media_type(req.header("content-type"))) {
    return make_error(ErrorCode::kUnsupportedMedia, "request bodies must be application/json");
  }
  json doc = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return make_error(ErrorCode::kInvalidArgument, "the request body is not valid JSON");
  }
  if (!doc.is_object()) {
    return make_error(ErrorCode::kInvalidArgument, "the request body must be a JSON object");
  }
  return doc;
}

struct Route {
  enum class Kind {
    kNone,
    kLive,
    kReady,
    kMetrics,
    kCollection,
    kItem,
    kDeployments,
    kRollback,
    kRestart,
    kUi  // the status page (api/ui/ui.h); id holds the path
  };
  Kind kind = Kind::kNone;
  std::string id;
  std::string query;
};

Route route(const std::string& target) {
  Route r;
  const auto q = target.find('?');
  std::string path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  if (ui::is_ui_path(path)) {
    // Before the trailing slash goes: "/ui/" and "/ui" are different answers.
    r.kind = Route::Kind::kUi;
    r.id = std::move(path);
    return r;
  }
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/healthz") {
    r.kind = Route::Kind::kLive;
    return r;
  }
  if (path == "/readyz") {
    r.kind = Route::Kind::kReady;
    return r;
  }
  if (path == "/metrics") {
    r.kind = Route::Kind::kMetrics;
    return r;
  }
  constexpr std::string_view kBase = "/app-services";
  if (path == kBase) {
    r.kind = Route::Kind::kCollection;
    return r;
  }
  if (path.rfind(std::string(kBase) + "/", 0) != 0) return r;
  std::string rest = path.substr(kBase.size() + 1);
  const auto slash = rest.find('/');
  r.id = rest.substr(0, slash);
  if (r.id.empty()) return r;
  if (slash == std::string::npos) {
    r.kind = Route::Kind::kItem;
    return r;
  }
  const std::string sub = rest.substr(slash + 1);
  if (sub == "deployments")
    r.kind = Route::Kind::kDeployments;
  else if (sub == "rollback")
    r.kind = Route::Kind::kRollback;
  else if (sub == "restart")
    r.kind = Route::Kind::kRestart;
  return r;
}

const char* allowed_methods(Route::Kind k) {
  switch (k) {
    case Route::Kind::kLive:
    case Route::Kind::kReady:
    case Route::Kind::kMetrics:
      return "GET";
    case Route::Kind::kCollection:
      return "GET, POST";
    case Route::Kind::kItem:
      return "GET, PATCH, DELETE";
    case Route::Kind::kDeployments:
    case Route::Kind::kUi:
      return "GET";
    case Route::Kind::kRollback:
    case Route::Kind::kRestart:
      return "POST";
    case Route::Kind::kNone:
      return "";
  }
  return "";
}

bool method_allowed(Route::Kind k, const std::string& m) {
  std::string_view allow = allowed_methods(k);
  size_t pos = 0;
  while (pos < allow.size()) {
    auto comma = allow.find(", ", pos);
    if (allow.substr(pos, comma - pos) == m) return true;
    if (comma == std::string_view::npos) break;
    pos = comma + 2;
  }
  return false;
}

bool query_flag(const std::string& query, std::string_view key) {
  size_t pos = 0;
  while (pos <= query.size()) {
    auto amp = query.find('&', pos);
    std::string_view part = std::string_view(query).substr(pos, amp - pos);
    auto eq = part.find('=');
    if (part.substr(0, eq) == key) {
      std::string_view v = eq == std::string_view::npos ? "" : part.substr(eq + 1);
      return v == "true" || v == "1";
    }
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return false;
}

metrics::Registry& registry_of(const HandlerOptions& options) {
  return options.metrics != nullptr ? *options.metrics : metrics::process_registry();
}

metrics::Family<metrics::Counter>& credential_checks(const HandlerOptions& options) {
  return registry_of(options).counter(
      "berth_credential_checks_total",
      "Checks of a new registry password against the registry, by result", {"result"});
}

void count_credential_check(const HandlerOptions& options, const char* result) {
  credential_checks(options).with({result}).inc();
}

}  // namespace

std::string route_template(const std::string& target) {
  switch (route(target).kind) {
    case Route::Kind::kLive:
      return "/healthz";
    case Route::Kind::kReady:
      return "/readyz";
    case Route::Kind::kMetrics:
      return "/metrics";
    case Route::Kind::kCollection:
      return "/app-services";
    case Route::Kind::kItem:
      return "/app-services/{id}";
    case Route::Kind::kDeployments:
      return "/app-services/{id}/deployments";
    case Route::Kind::kRollback:
      return "/app-services/{id}/rollback";
    case Route::Kind::kRestart:
      return "/app-services/{id}/restart";
    case Route::Kind::kUi:
      return "/ui/";
    case Route::Kind::kNone:
      break;
  }
  return "other";
}

Handler::Handler(HandlerOptions options, core::StateStore& store,
                 std::function<core::UnixMillis()> clock,
                 std::function<void(const std::string& service_id)> on_change)
    : options_(std::move(options)),
      store_(store),
      clock_(std::move(clock)),
      on_change_(std::move(on_change)) {
  // Every result has a series from the start, so a rate() over them exists before the first
  // check.
  for (const char* result : {"accepted", "refused", "unchecked"}) {
    (void)credential_checks(options_).with({result});
  }
}

namespace {

// The pieces of one request's work, so that each endpoint reads as its steps.
class Call {
 public:
  Call(const HandlerOptions& options, core::StateStore& store, core::UnixMillis now,
       std::string account)
      : options_(options), store_(store), now_(now), account_(std::move(account)) {}

  HttpResponse list() {
    auto services = store_.list_services(account_);
    if (!services) return from_error(services.error());
    json items = json::array();
    for (const auto& s : *services) items.push_back(core::to_json(s));
    return json_response(200, {{"app_services", std::move(items)}});
  }

  HttpResponse get(const std::string& id) {
    auto s = store_.get_service(account_, id);
    if (!s) return from_error(s.error());
    json body = core::to_json(*s);
    if (auto p = live_progress(id)) body["progress"] = progress_json(*p);
    return json_response(200, body);
  }

  std::optional<core::RolloutProgress> live_progress(const std::string& id) const {
    if (!options_.progress) return std::nullopt;
    return options_.progress(id);
  }

  HttpResponse deployments(const std::string& id, bool all) {
    auto s = store_.get_service(account_, id);
    if (!s) return from_error(s.error());
    auto revs = store_.list_revisions(id, all);
    if (!revs) return from_error(revs.error());
    json items = json::array();
    auto live = live_progress(id);
    for (const auto& r : *revs) {
      if (live && r.state == core::RevisionState::kPending && r.deploy_logs.empty() &&
          r.id == s->desired_deployment_id) {
        // The rollout runs: its steps so far, from memory, until the outcome is recorded.
        core::Revision shown = r;
        shown.deploy_logs = live->entries;
        items.push_back(core::to_json(shown));
      } else {
        items.push_back(core::to_json(r));
      }
    }
    return json_response(200, {{"deployments", std::move(items)}});
  }

  HttpResponse create(const HttpRequest& req, std::string& changed) {
    auto body = read_json_body(req);
    if (!body) return from_error(body.error());
    auto parsed = core::parse_create_request(*body);
    if (!parsed) return from_error(parsed.error());
    core::CreateRequest& request = *parsed;
    if (auto s = core::validate_create(request); !s) return from_error(s.error());
    auto ref = core::parse_image_ref(request.config.image_ref);
    if (!ref) return from_error(ref.error());

    core::AppService service = core::service_from_create(request, options_.default_zone);
    service.id = options_.new_id();
    service.account_id = account_;
    service.registry_host = ref->registry_host;

    auto decision =
        core::decide_credential(std::nullopt, core::credential_request_for_create(request), now_);
    if (!decision) return from_error(decision.error());
    std::string digest;
    if (auto refused = check_new_credential(request.config.image_ref, *decision,
                                            request.registry_password, "app_config", digest)) {
      return *refused;
    }

    const core::Change change = core::create_change(
        std::move(service), std::move(digest),
        core::credential_write(*decision, std::nullopt, request.registry_password, now_), ids());
    if (auto s = store_.create_service(change); !s) {
      if (s.error().code == ErrorCode::kConflict) {
        return json_error(409, "an app service with this name already exists", "name");
      }
      return from_error(s.error());
    }
    log::info("app service created",
              {{"app", change.service.id}, {"revision", change.revision->number}});
    changed = change.service.id;
    return json_response(201, core::to_json(change.service));
  }

  HttpResponse patch(const HttpRequest& req, const std::string& id, std::string& changed) {
    // One read for everything the change is built from; the write is one transaction.
    auto basis = store_.read_for_change(account_, id);
    if (!basis) return from_error(basis.error());
    const core::AppService* current = &basis->service;
    auto body = read_json_body(req);
    if (!body) return from_error(body.error());
    auto parsed = core::parse_patch_request(*body);
    if (!parsed) return from_error(parsed.error());
    if (auto busy = refuse_if_deleting(*current)) return *busy;
    if (auto s = core::check_patch_top_level(*current, *parsed); !s) return from_error(s.error());
    auto config = core::apply_patch(current->config, parsed->app_config);
    if (!config) return from_error(config.error());
    auto ref = core::parse_image_ref(config->image_ref);
    if (!ref) return from_error(ref.error());
    const std::optional<core::StoredCredential>& stored = basis->credential;
    auto decision = core::decide_credential(
        stored, core::credential_request_for_patch(*config, parsed->app_config), now_);
    if (!decision) return from_error(decision.error());
    std::string digest;
    if (auto refused =
            check_new_credential(config->image_ref, *decision, parsed->app_config.registry_password,
                                 "app_config", digest)) {
      return *refused;
    }
    return commit_redeploy(
        *current, *config, ref->registry_host, "configuration update", digest,
        core::credential_write(*decision, stored, parsed->app_config.registry_password, now_),
        basis->next_revision_number, changed);
  }

  HttpResponse rollback(const HttpRequest& req, const std::string& id, std::string& changed) {
    auto basis = store_.read_for_change(account_, id);
    if (!basis) return from_error(basis.error());
    const core::AppService* current = &basis->service;
    auto body = read_json_body(req);
    if (!body) return from_error(body.error());
    auto parsed = core::parse_rollback_request(*body);
    if (!parsed) return from_error(parsed.error());
    if (auto busy = refuse_if_deleting(*current)) return *busy;
    auto target = store_.get_revision(id, parsed->deployment_id);
    if (!target) {
      if (target.error().code == ErrorCode::kNotFound) {
        return json_error(422, "deployment_id does not name a deployment of this app service",
                          "deployment_id");
      }
      return from_error(target.error());
    }
    if (target->state != core::RevisionState::kSucceeded) {
      return json_error(422, "only a deployment that succeeded can be rolled back to",
                        "deployment_id");
    }
    auto ref = core::parse_image_ref(target->config.image_ref);
    if (!ref) return from_error(ref.error());
    const std::optional<core::StoredCredential>& stored = basis->credential;
    auto decision = core::decide_credential(
        stored, core::credential_request_for_rollback(*target, *parsed), now_);
    if (!decision) return from_error(decision.error());
    // A rollback deploys the bits the target revision ran, not what its tag names today: the
    // new revision carries the target's digest, so the reconciler pins it instead of resolving.
    std::string digest = target->image_digest;
    const std::string image =
        digest.empty() ? target->config.image_ref : ref->pinned(target->image_digest);
    std::string checked;
    if (auto refused =
            check_new_credential(image, *decision, parsed->registry_password, "", checked)) {
      return *refused;
    }
    if (digest.empty()) digest = std::move(checked);
    return commit_redeploy(
        *current, target->config, ref->registry_host, core::rollback_reason(target->id), digest,
        core::credential_write(*decision, stored, parsed->registry_password, now_),
        basis->next_revision_number, changed);
  }

  HttpResponse restart(const std::string& id, std::string& changed) {
    auto current = store_.get_service(account_, id);
    if (!current) return from_error(current.error());
    if (auto busy = refuse_if_deleting(*current)) return *busy;
    if (current->current_deployment_id.empty()) {
      return json_error(409, "the app service has no running deployment to restart");
    }
    auto stored = store_.get_credential(id);
    if (!stored) return from_error(stored.error());
    auto decision = core::decide_credential(
        *stored, core::credential_request_for_restart(current->config), now_);
    if (!decision) return from_error(decision.error());
    const core::Change change = core::restart_change(*current, ids());
    if (auto s = store_.apply_change(change, current->generation); !s) return commit_error(s);
    log::info("app service restart requested", {{"app", id}});
    changed = id;
    return json_response(202, core::to_json(change.service));
  }

  HttpResponse remove(const std::string& id, std::string& changed) {
    auto current = store_.get_service(account_, id);
    if (!current) return from_error(current.error());
    if (current->agent.empty()) {
      // Never placed on an agent: nothing runs anywhere, so there is nothing to tear down.
      if (auto s = store_.delete_service(id); !s) return from_error(s.error());
      log::info("app service deleted", {{"app", id}});
      changed = id;
      core::AppService gone = *current;
      gone.status = core::ServiceStatus::kDeleting;
      gone.updated_at = now_;
      return json_response(200, core::to_json(gone));
    }
    if (current->status == core::ServiceStatus::kDeleting) {
      // Already being torn down: repeating the DELETE is harmless and queues nothing new.
      return json_response(202, core::to_json(*current));
    }
    const core::Change change = core::remove_change(*current, ids());
    if (auto s = store_.apply_change(change, current->generation); !s) return commit_error(s);
    log::info("app service deletion requested", {{"app", id}});
    changed = id;
    return json_response(202, core::to_json(change.service));
  }

 private:
  std::optional<HttpResponse> refuse_if_deleting(const core::AppService& s) {
    if (s.status != core::ServiceStatus::kDeleting) return std::nullopt;
    return json_error(409, "the app service is being deleted");
  }

  HttpResponse commit_error(const Status& s) {
    if (s.error().code == ErrorCode::kConflict) {
      return json_error(409, "the app service was changed by another request; retry");
    }
    return from_error(s.error());
  }

  core::ChangeIds ids() const { return core::ChangeIds{options_.new_id, now_}; }

  // Resolves `image` with a new password (decision kReplace with a password in the request)
  // before anything is stored. The registry's refusal is the answer: 422 naming the password
  // field under `prefix`, and the caller stores nothing. Any other failure (unreachable, slow,
  // 5xx, unknown image) lets the change through; its rollout resolves again and reports the
  // failure in status. On success `digest` is what the image resolved to.
  std::optional<HttpResponse> check_new_credential(const std::string& image,
                                                   const core::CredentialDecision& decision,
                                                   const std::optional<Secret>& password,
                                                   std::string_view prefix, std::string& digest) {
    if (options_.credential_check == nullptr ||
        !core::needs_credential_check(decision, password.has_value())) {
      return std::nullopt;
    }
    const core::RegistryLogin login{decision.username, *password};
    auto resolved = options_.credential_check->resolve(image, &login);
    if (resolved.ok()) {
      count_credential_check(options_, "accepted");
      digest = std::move(resolved).value();
      return std::nullopt;
    }
    const Error& e = resolved.error();
    if (core::is_credential_refusal(e)) {
      count_credential_check(options_, "refused");
      log::warn("new registry credential refused by the registry",
                {{"registry", decision.registry_host}, {"error", e.message}});
      const std::string field =
          prefix.empty() ? "registry_password" : std::string(prefix) + ".registry_password";
      return json_error(422, e.message, field);
    }
    count_credential_check(options_, "unchecked");
    log::warn("new registry credential could not be checked; change accepted",
              {{"registry", decision.registry_host}, {"error", e.message}});
    return std::nullopt;
  }

  HttpResponse commit_redeploy(const core::AppService& current, const core::AppConfig& config,
                               const std::string& registry_host, std::string reason,
                               std::string image_digest, core::CredentialWrite credential,
                               std::int64_t revision_number, std::string& changed) {
    const core::Change change = core::redeploy_change(
        current, config, registry_host, std::move(reason), std::move(image_digest), revision_number,
        std::move(credential), ids());
    if (auto s = store_.apply_change(change, current.generation); !s) return commit_error(s);
    pause_point("accept");  // stored, not yet acknowledged (tests/crash)
    log::info("app service change accepted", {{"app", current.id},
                                              {"revision", change.revision->number},
                                              {"reason", change.revision->reason}});
    changed = current.id;
    return json_response(200, core::to_json(change.service));
  }

  const HandlerOptions& options_;
  core::StateStore& store_;
  core::UnixMillis now_;
  std::string account_;
};

}  // namespace

HttpResponse Handler::readiness() const {
  if (options_.not_ready) {
    if (auto reason = options_.not_ready()) {
      return json_response(503, {{"status", "not ready"}, {"reason", std::move(*reason)}});
    }
  }
  return json_response(200, {{"status", "ok"}});
}

HttpResponse Handler::handle(const HttpRequest& req) const {
  const Route r = route(req.target);
  const bool health = r.kind == Route::Kind::kLive || r.kind == Route::Kind::kReady ||
                      r.kind == Route::Kind::kMetrics;
  if (r.kind == Route::Kind::kNone || (options_.health_only && !health)) {
    return json_error(404, "no such endpoint");
  }
  if (!method_allowed(r.kind, req.method)) {
    HttpResponse res =
        json_error(405, "method " + req.method.substr(0, 16) + " is not allowed here");
    res.headers["Allow"] = allowed_methods(r.kind);
    return res;
  }
  if (r.kind == Route::Kind::kLive) return json_response(200, {{"status", "ok"}});
  if (r.kind == Route::Kind::kReady) return readiness();
  if (r.kind == Route::Kind::kMetrics) {
    HttpResponse res;
    res.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8";
    res.body = registry_of(options_).render();
    return res;
  }

  auto account = authenticate(store_, req.header("authorization"));
  if (!account) {
    if (account.error().code == ErrorCode::kUnauthenticated) {
      log::info("api authentication failed", {{"reason", account.error().message}});
    }
    return from_error(account.error());
  }
  // The page's files hold no data (its script reads the API as this account), but they are
  // served only to a caller the API would answer, so a browser asks for the credentials once.
  if (r.kind == Route::Kind::kUi) return ui::serve(r.id, req.header("if-none-match"));

  Call call(options_, store_, clock_(), *account);
  std::string changed;
  HttpResponse res;
  switch (r.kind) {
    case Route::Kind::kCollection:
      res = req.method == "GET" ? call.list() : call.create(req, changed);
      break;
    case Route::Kind::kItem:
      if (req.method == "GET")
        res = call.get(r.id);
      else if (req.method == "PATCH")
        res = call.patch(req, r.id, changed);
      else
        res = call.remove(r.id, changed);
      break;
    case Route::Kind::kDeployments:
      res = call.deployments(r.id, query_flag(r.query, "all"));
      break;
    case Route::Kind::kRollback:
      res = call.rollback(req, r.id, changed);
      break;
    case Route::Kind::kRestart:
      res = call.restart(r.id, changed);
      break;
    default:
      res = json_error(404, "no such endpoint");
  }
  if (!changed.empty() && on_change_) on_change_(changed);
  return res;
}

}  // namespace berth::api
