#pragma once
// ApiServer: the REST front door of standalone mode (SPEC section 3). An HTTP/1.1 server on
// Boost.Beast (HTTPS when a certificate and key are given) that authenticates each request
// and hands it to the request handler (handler.h), which reads and writes state only through
// core::StateStore.
//
// Contract:
//   - start() binds and listens, then serves on `threads` background threads; it returns an
//     error value (kInvalidArgument: bad address, plain HTTP on a non-loopback address without
//     allow_insecure_http, unreadable TLS material; kUnavailable: the address is in use).
//   - port() is the bound port once start() succeeded (useful with port 0).
//   - stop() stops accepting, closes idle connections, lets requests in flight finish for at
//     most `shutdown_grace`, then joins the threads. Idempotent; the destructor calls it.
//   - Every read has a deadline (`read_timeout` for a whole request, `idle_timeout` between
//     keep-alive requests), every write `write_timeout`. Connections beyond
//     `max_connections` are closed at once.
//   - Bodies over `max_body_bytes` get 413, header blocks over `max_header_bytes` get 431;
//     request bodies are never logged.
//   - /app-services requests are authenticated before the handler runs (docs/api.md,
//     "Authentication"): Bearer inline; Basic from a cache of verified headers, else by scrypt
//     on `auth.hash_threads` threads with at most `auth.hash_queue` more waiting (beyond that:
//     503 with Retry-After at once). Failed Basic attempts are limited per client address and
//     per account name (429 with Retry-After). Failures are logged at warn with the client
//     address and the account name, never the password or token.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/auth.h"
#include "api/auth_cache.h"
#include "common/metrics.h"
#include "common/result.h"
#include "common/secret.h"
#include "core/execution.h"
#include "core/ports.h"
#include "core/progress.h"
#include "core/types.h"

namespace berth::api {

struct ApiAuthOptions {
  AuthCacheOptions cache;  // verified Basic headers: TTL and size
  LimiterOptions per_address{10, std::chrono::milliseconds(3'000)};
  LimiterOptions per_account{20, std::chrono::milliseconds(3'000)};
  int hash_threads = 1;         // scrypt verifications at once (32 MiB, ~0.1 s each)
  std::size_t hash_queue = 16;  // verifications waiting for a hash thread
  SteadyClock clock;            // empty: std::chrono::steady_clock (tests inject one)
  // Verifies Basic credentials on a hash thread; empty: the store (api::verify). Tests inject
  // one to hold verifications at a gate.
  std::function<Result<std::string>(const Credentials&)> verify_basic;
};

struct ApiOptions {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;  // 0: pick a free port
  // PEM files; both empty: plain HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;
  bool allow_insecure_http = false;  // plain HTTP on a non-loopback address
  std::string default_zone = "local";
  int threads = 2;
  std::size_t max_connections = 256;
  std::size_t max_body_bytes = 1024 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds read_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{30000};
  std::chrono::milliseconds shutdown_grace{5000};
  // New UUIDs for services, revisions and tasks (the composition root wires
  // crypto::random_uuid; the API does not depend on crypto).
  std::function<std::string()> new_id;
  ApiAuthOptions auth;
  // Checks a new registry password before it is stored (handler.h); null: no check. Not
  // owned; must outlive the server.
  core::DigestResolver* credential_check = nullptr;
  // Serve /healthz and /readyz only (Kubernetes mode's health port): every other path is 404
  // and no request is authenticated, whatever Authorization header it carries (handler.h).
  bool health_only = false;
  // The /readyz verdict (handler.h): empty or nullopt is ready, a reason is 503 with it. Called
  // on a server thread for each /readyz; keep it short and thread-safe.
  std::function<std::optional<std::string>()> not_ready;
  // Served on /metrics (handler.h), and where every answered request is counted:
  // berth_api_requests_total{route,code} and berth_api_request_duration_seconds{route}, route
  // being the route template (api::route_template), never the raw path. Null:
  // metrics::process_registry(). Not owned; must outlive the server.
  metrics::Registry* metrics = nullptr;
  // The live progress of an app's rollout (handler.h); null: never any.
  std::function<std::optional<core::RolloutProgress>(const std::string& service_id)> progress;
};

class ApiServer {
 public:
  // `store` must outlive the server. `clock` stamps created_at/updated_at. `on_change` is
  // called with the service id after every committed change (from a server thread; keep it
  // short and thread-safe).
  ApiServer(ApiOptions options, core::StateStore& store, std::function<core::UnixMillis()> clock,
            std::function<void(const std::string& service_id)> on_change);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  Status start();
  std::uint16_t port() const;
  // "host:port" as bound (IPv6 hosts in brackets).
  std::string bound_address() const;
  void stop();
  // Forgets the cached verifications of an account; to be called by whatever changes an
  // account's password or removes it (no such operation exists yet: docs/api.md).
  void account_changed(const std::string& account_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::api
