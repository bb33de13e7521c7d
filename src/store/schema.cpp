#include "store/schema.h"

namespace berth::store {
namespace {

// v1: the base tables. JSON columns hold what codec.h writes. The assigned agent is the
// app_services.agent column (a service has at most one agent and the runtime writes it with the
// rest of the observed state), so there is no separate assignments table.
constexpr const char* kV1 = R"sql(
CREATE TABLE accounts (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  created_at    INTEGER NOT NULL
);
CREATE TABLE api_tokens (
  id           TEXT PRIMARY KEY,
  account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  label        TEXT NOT NULL,
  secret_hash  TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  last_used_at INTEGER
);
CREATE TABLE app_services (
  id                    TEXT PRIMARY KEY,
  account_id            TEXT NOT NULL REFERENCES accounts(id),
  name                  TEXT NOT NULL,
  plan_name             TEXT NOT NULL,
  zone                  TEXT NOT NULL,
  storage_size_gb       INTEGER NOT NULL,
  storage_tier          TEXT NOT NULL,
  status                TEXT NOT NULL,
  image_ref             TEXT NOT NULL,
  container_port        INTEGER NOT NULL,
  env                   TEXT NOT NULL,
  custom_domains        TEXT NOT NULL,
  registry_username     TEXT NOT NULL,
  health                TEXT NOT NULL,
  registry_host         TEXT NOT NULL,
  url                   TEXT NOT NULL,
  current_deployment_id TEXT NOT NULL,
  desired_deployment_id TEXT NOT NULL,
  agent                 TEXT NOT NULL,
  conditions            TEXT NOT NULL,
  last_error            TEXT NOT NULL,
  generation            INTEGER NOT NULL,
  created_at            INTEGER NOT NULL,
  updated_at            INTEGER NOT NULL,
  UNIQUE (account_id, name)
);
CREATE INDEX app_services_account ON app_services(account_id);
CREATE TABLE revisions (
  id            TEXT PRIMARY KEY,
  service_id    TEXT NOT NULL REFERENCES app_services(id) ON DELETE CASCADE,
  number        INTEGER NOT NULL,
  config        TEXT NOT NULL,
  registry_host TEXT NOT NULL,
  reason        TEXT NOT NULL,
  state         TEXT NOT NULL,
  image_digest  TEXT NOT NULL,
  deploy_logs   TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  finished_at   INTEGER NOT NULL,
  UNIQUE (service_id, number)
);
CREATE TABLE credentials (
  service_id    TEXT PRIMARY KEY REFERENCES app_services(id) ON DELETE CASCADE,
  registry_host TEXT NOT NULL,
  username      TEXT NOT NULL,
  key_id        TEXT NOT NULL,
  nonce         BLOB NOT NULL,
  ciphertext    BLOB NOT NULL,
  set_at        INTEGER NOT NULL,
  expires_at    INTEGER
);
CREATE TABLE agents (
  name             TEXT PRIMARY KEY,
  zone             TEXT NOT NULL,
  cert_fingerprint TEXT NOT NULL,
  last_seen        INTEGER NOT NULL
);
CREATE TABLE tasks (
  id          TEXT PRIMARY KEY,
  service_id  TEXT NOT NULL REFERENCES app_services(id) ON DELETE CASCADE,
  revision_id TEXT NOT NULL,
  kind        TEXT NOT NULL,
  state       TEXT NOT NULL,
  agent       TEXT NOT NULL,
  attempts    INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX tasks_state_service ON tasks(state, service_id);
)sql";

// v2: the per-request paths that v1 left to scans. pending_tasks(service) filters by service
// first (tasks_state_service leads with state, useless for that); list_revisions without
// failures and the history pruning filter by (service, state) newest first; the ON DELETE
// CASCADE of app_services -> api_tokens needs an index on the child key.
constexpr const char* kV2 = R"sql(
CREATE INDEX tasks_service_state ON tasks(service_id, state);
CREATE INDEX revisions_service_state ON revisions(service_id, state, number);
CREATE INDEX api_tokens_account ON api_tokens(account_id);
)sql";

constexpr Migration kMigrations[] = {
    {1, "base tables", kV1},
    {2, "indexes for per-service task, revision and token lookups", kV2},
};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

int latest_schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

}  // namespace berth::store
