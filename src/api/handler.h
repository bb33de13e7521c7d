#pragma once
// Handler: turns one authenticated-or-not HttpRequest into an HttpResponse (SPEC section 3).
// No sockets and no Beast here, so it can be driven directly by tests.
//
// Contract:
//   - Authenticates every /app-services request (HTTP Basic: account name + password; Bearer:
//     API token) through core::StateStore, and scopes every read and write to that account.
//   - Parsing, validation and credential rules come from core (app_service.h, credentials.h);
//     an accepted change is committed as one core::Change (service, revision, credential,
//     outbox task) in a single store call, then on_change(service_id) is called.
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
#include <string>

#include "api/http.h"
#include "core/execution.h"
#include "core/ports.h"
#include "core/types.h"

namespace berth::api {

struct HandlerOptions {
  std::string default_zone = "local";
  std::function<std::string()> new_id;  // UUID v4 generator
  // Checks a new registry password before it is stored; null: no check. Not owned.
  core::DigestResolver* credential_check = nullptr;
};

class Handler {
 public:
  Handler(HandlerOptions options, core::StateStore& store, std::function<core::UnixMillis()> clock,
          std::function<void(const std::string& service_id)> on_change);

  HttpResponse handle(const HttpRequest& request) const;

 private:
  HandlerOptions options_;
  core::StateStore& store_;
  std::function<core::UnixMillis()> clock_;
  std::function<void(const std::string&)> on_change_;
};

}  // namespace berth::api
