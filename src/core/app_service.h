#pragma once
// The AppService request model of the REST API: parsing of request bodies, the field rules of
// SPEC section 3, PATCH merging, and the JSON shape of responses.
//
// Contract:
//   - Pure: no I/O, no clock. Safe to call from any thread.
//   - Every rejection is an Error with code kValidation (HTTP 422), the offending field path in
//     `field` ("app_config.container_port", "app_config.env.MDB_HOST", "name") and the message
//     "<field>: <what is wrong>" (validation_error in common/result.h). Messages never repeat
//     a submitted value (docs/app-services.md "Error messages"). A parsed document that is not
//     an object is kInvalidArgument (400), like the caller's malformed JSON text.
//   - Create and PATCH bodies are read by one reader over one table of fields.
//   - The registry password only ever lives in a berth::Secret inside a request type. It is
//     not part of AppConfig, and no to_json here can emit a password key.
//   - Go SDK zero values: see docs/app-services.md for which zero values mean "absent".
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"
#include "common/secret.h"
#include "core/types.h"

namespace berth::core {

// Bounds that the spec leaves open (docs/app-services.md).
inline constexpr int kMinStorageGb = 10;
inline constexpr int kMaxStorageGb = 16384;
inline constexpr int kDefaultStorageGb = 10;
inline constexpr std::size_t kMaxEnvVars = 100;
inline constexpr std::size_t kMaxEnvNameLength = 255;
inline constexpr std::size_t kMaxEnvValueLength = 32 * 1024;
inline constexpr std::size_t kMaxEnvTotalBytes = 64 * 1024;
inline constexpr std::size_t kMaxCustomDomains = 5;
inline constexpr std::size_t kMaxHealthCheckPathLength = 1024;
inline constexpr int kMaxHealthCheckIntervalSeconds = 300;
inline constexpr int kMaxHealthCheckTimeoutSeconds = 60;
inline constexpr int kMaxHealthyThreshold = 10;
inline constexpr std::size_t kMaxRegistryUsernameLength = 255;
inline constexpr std::size_t kMaxRegistryPasswordLength = 8192;

struct CreateRequest {
  std::string name;
  std::string plan_name;
  std::optional<std::string> zone;          // absent: the controller's default zone
  std::optional<int> storage_size_gb;       // absent: kDefaultStorageGb
  std::optional<std::string> storage_tier;  // absent: "standard"
  AppConfig config;                         // registry_username empty: public image
  std::optional<Secret> registry_password;
};

struct AppConfigPatch {
  std::optional<std::string> image_ref;
  std::optional<int> container_port;
  std::optional<std::map<std::string, std::string>> env;   // replaces the whole map
  std::optional<std::vector<std::string>> custom_domains;  // replaces the whole list
  enum class Username { kAbsent, kSet, kRemove };
  Username username = Username::kAbsent;
  std::string registry_username;  // kSet only
  std::optional<Secret> registry_password;
  std::optional<std::string> health_check_path;  // "" switches to a TCP probe
  std::optional<int> health_check_interval_seconds;
  std::optional<int> health_check_timeout_seconds;
  std::optional<int> health_check_healthy_threshold;
};

// A PATCH body. Only app_config changes anything; the top-level fields are accepted so that
// clients which echo the whole object back keep working, but they must equal the current
// values (check_patch_top_level).
struct PatchRequest {
  AppConfigPatch app_config;
  std::optional<std::string> name;
  std::optional<std::string> plan_name;
  std::optional<std::string> zone;
  std::optional<int> storage_size_gb;
  std::optional<std::string> storage_tier;
};

struct RollbackRequest {
  std::string deployment_id;
  std::optional<Secret> registry_password;
};

// --- parsing (shape and types only; unknown fields are rejected) ------------------------------
Result<CreateRequest> parse_create_request(const nlohmann::json& body);
Result<PatchRequest> parse_patch_request(const nlohmann::json& body);
Result<RollbackRequest> parse_rollback_request(const nlohmann::json& body);

// --- semantic rules ----------------------------------------------------------------------------
Status validate_name(std::string_view name);
Status validate_plan_name(std::string_view plan);
Status validate_zone(std::string_view zone);
Status validate_storage(int size_gb, std::string_view tier);
// Every app_config rule, field paths prefixed with "app_config.". Does not look at credentials
// beyond the username's form.
Status validate_app_config(const AppConfig& config);
// All create rules, including "registry_username and registry_password together or neither".
Status validate_create(const CreateRequest& request);
// The new desired config after a PATCH: port immutability (422 on a different port), then
// validate_app_config on the result. Credential decisions are credentials.h's business.
Result<AppConfig> apply_patch(const AppConfig& current, const AppConfigPatch& patch);
// 422 when a top-level field of a PATCH differs from the service's current value.
Status check_patch_top_level(const AppService& current, const PatchRequest& patch);
// Fills defaults (zone, storage) of a validated create request into a service record.
// id, account_id, times and status are the caller's.
AppService service_from_create(const CreateRequest& request, std::string_view default_zone);

// --- responses ---------------------------------------------------------------------------------
nlohmann::json to_json(const AppService& service);
nlohmann::json to_json(const Revision& revision);
nlohmann::json to_json(const AppConfig& config);

}  // namespace berth::core
