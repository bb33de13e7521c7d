#pragma once
// The domain records of berth. Plain data: no I/O, no clocks (times are passed in as values).
// Everything the REST API, the store, the planner and Kubernetes mode agree on lives here.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth::core {

// Milliseconds since the Unix epoch, always supplied by the caller.
using UnixMillis = std::int64_t;

// RFC 3339 in UTC, e.g. "2024-05-01T12:00:00Z"; milliseconds appear (".250Z") only when they
// are not zero. Pure: no time zone database, no clock.
std::string format_rfc3339(UnixMillis t);

enum class ServiceStatus { kPending, kRunning, kPendingModification, kFailed, kDeleting };
const char* to_string(ServiceStatus s);  // "Pending", "Running", ...
std::optional<ServiceStatus> parse_service_status(std::string_view text);

struct HealthCheck {
  std::string path;  // empty: TCP connect probe
  int interval_seconds = 5;
  int timeout_seconds = 3;
  int healthy_threshold = 1;
  bool operator==(const HealthCheck&) const = default;
};

// The desired configuration of an app service (`app_config` in the API), minus the password,
// which is never part of any record that can be serialised.
struct AppConfig {
  std::string image_ref;
  int container_port = 0;
  std::map<std::string, std::string> env;
  std::vector<std::string> custom_domains;
  std::string registry_username;  // empty: public image, no credential
  HealthCheck health;
  bool operator==(const AppConfig&) const = default;
};

// metav1.Condition-shaped.
struct Condition {
  std::string type;     // Ready, Progressing, CredentialsResolved, Degraded, Scheduled
  std::string status;   // "True" | "False" | "Unknown"
  std::string reason;   // CamelCase
  std::string message;  // one sentence
  UnixMillis last_transition_time = 0;
  bool operator==(const Condition&) const = default;
};

struct AppService {
  std::string id;          // UUID v4
  std::string account_id;  // owner
  std::string name;        // DNS label, 3-63
  std::string plan_name;   // tier-1 .. tier-15
  std::string zone;
  int storage_size_gb = 10;
  std::string storage_tier = "standard";
  ServiceStatus status = ServiceStatus::kPending;
  AppConfig config;                   // the desired configuration
  std::string registry_host;          // derived from config.image_ref
  std::string url;                    // where the app is served, empty until running
  std::string current_deployment_id;  // revision serving now; empty before the first success
  std::string desired_deployment_id;  // revision being (or last) rolled out
  std::string agent;                  // assigned agent name, empty until placed
  std::vector<Condition> conditions;
  std::string last_error;
  std::int64_t generation = 1;  // bumped on every accepted change
  UnixMillis created_at = 0;
  UnixMillis updated_at = 0;
};

// kSuperseded: a later change replaced the revision before it had an outcome (it never served;
// it is not a failure and is never retried).
enum class RevisionState { kPending, kSucceeded, kFailed, kSuperseded };
const char* to_string(RevisionState s);  // "pending" | "succeeded" | "failed" | "superseded"
std::optional<RevisionState> parse_revision_state(std::string_view text);

struct DeployLogEntry {
  std::string step;    // pull, start, probe, switch, cleanup, ...
  std::string status;  // "ok" | "failed" | "info"
  std::string message;
  std::string detail;
  UnixMillis started_at = 0;
  std::int64_t duration_ms = 0;
  bool operator==(const DeployLogEntry&) const = default;
};

// A revision (a "deployment" in the API): an immutable config plus its rollout outcome.
struct Revision {
  std::string id;  // UUID v4
  std::string service_id;
  std::int64_t number = 0;  // 1, 2, ...
  AppConfig config;
  std::string registry_host;
  std::string reason;  // "initial deployment" | "configuration update" | "rollback to <id>"
  RevisionState state = RevisionState::kPending;
  std::string image_digest;  // sha256:..., resolved before dispatch
  std::vector<DeployLogEntry> deploy_logs;
  UnixMillis created_at = 0;
  UnixMillis finished_at = 0;
};

// The stored registry credential of an app service, without the password (which stays sealed
// in the store and is only unsealed to build a deploy task).
struct StoredCredential {
  std::string registry_host;
  std::string username;
  UnixMillis set_at = 0;
  std::optional<UnixMillis> expires_at;  // ECR: set_at + 12h
};

}  // namespace berth::core
