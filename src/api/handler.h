#pragma once
// Handler: turns one authenticated-or-not HttpRequest into an HttpResponse (SPEC section 3).
// No sockets and no Beast here, so it can be driven directly by tests.
//
// Contract:
//   - Authenticates every /app-services request (HTTP Basic: account name + password; Bearer:
//     API token) through core::StateStore, and scopes every read and write to that account.
//   - Parsing, validation and credential rules come from core (app_service.h, credentials.h);
//     an accepted change is built by core (change.h, the same builders Kubernetes mode uses) and
//     committed as one core::Change (service, revision, credential, outbox task) in a single
//     store call, then on_change(service_id) is called.
//   - /ui and /ui/... (the status page, api/ui/ui.h) are authenticated like /app-services and
//     answer GET only, from the files compiled in.
//   - /healthz, /readyz and /metrics need no credentials; with health_only they are the only
//     routes. /metrics is the registry in the Prometheus text format (docs/metrics.md: no
//     value or label there carries an id, a name or a secret, so it is as public as /healthz).
//   - Each credential check counts in berth_credential_checks_total{result}: accepted (the
//     registry took the password), refused (401/403: the 422 above), unchecked (any other
//     failure: the change went through unchecked).
//   - Any error response leaves state unchanged, never echoes the request body, and never
//     contains the registry password. Bad input never produces a 5xx.
//   - A request that brings a new registry password (create, PATCH, rollback) is checked first:
//     the image is resolved with the new credential through `credential_check` (when set),
//     which blocks the calling thread for at most that resolver's deadline. A refusal by the
//     registry (401/403) is 422 and nothing is stored or deployed; any other failure (timeout,
//     unreachable, 5xx) accepts the change, whose rollout then reports the failure in status.
//     A digest the check resolved is recorded on the new revision, so it is not resolved again.
//   - Thread-safe as long as the store and the resolver are (it keeps no mutable state).
#include <functional>
#include <optional>

#include <nlohmann/json.hpp>
#include <string>

#include "api/http.h"
#include "common/metrics.h"
#include "core/execution.h"
#include "core/ports.h"
#include "core/progress.h"
#include "core/types.h"

namespace berth::api {

struct HandlerOptions {
  std::string default_zone = "local";
  std::function<std::string()> new_id;  // UUID v4 generator
  // Checks a new registry password before it is stored; null: no check. Not owned.
  core::DigestResolver* credential_check = nullptr;
  // Only /healthz and /readyz exist (Kubernetes mode's health port, where state is changed
  // through the API server): every other path is 404 "no such endpoint", whatever its
  // method or credentials, and the store is never asked to authenticate anyone.
  bool health_only = false;
  // Why the process is not ready to serve yet (e.g. its caches have not synced); called for
  // every /readyz, from the request's thread. Empty, or returning nullopt: /readyz is 200
  // {"status":"ok"}. A reason: /readyz is 503 {"status":"not ready","reason":REASON}.
  // /healthz does not ask: it is 200 for as long as the process answers at all.
  std::function<std::optional<std::string>()> not_ready;
  // Served on /metrics and where credential checks are counted; null:
  // metrics::process_registry(). Not owned.
  metrics::Registry* metrics = nullptr;
  // The live progress of the rollout running for a service (runtime::Reconciler::progress:
  // memory, no store read); null, or nullopt: none. GET /app-services/{id} shows it as
  // `progress` {step, layersDone, layersTotal, bytesDone, bytesTotal, updatedAt} while it
  // exists, and the deployments list shows its entries as the deploy_logs of the pending
  // revision until the outcome (with the agent's full log) is recorded (docs/api.md).
  std::function<std::optional<core::RolloutProgress>(const std::string& service_id)> progress;
};

// The `progress` object of an app's status (docs/api.md).
nlohmann::json progress_json(const core::RolloutProgress& p);

// The route template a request target matches, for metric labels: "/app-services",
// "/app-services/{id}", "/app-services/{id}/deployments", ".../rollback", ".../restart",
// "/healthz", "/readyz", "/metrics", or "other". Never the raw path (ids are unbounded).
std::string route_template(const std::string& target);

class Handler {
 public:
  Handler(HandlerOptions options, core::StateStore& store, std::function<core::UnixMillis()> clock,
          std::function<void(const std::string& service_id)> on_change);

  HttpResponse handle(const HttpRequest& request) const;

 private:
  HttpResponse readiness() const;

  HandlerOptions options_;
  core::StateStore& store_;
  std::function<core::UnixMillis()> clock_;
  std::function<void(const std::string&)> on_change_;
};

}  // namespace berth::api
