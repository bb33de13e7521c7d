#include "core/app_service.h"

#include <algorithm>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "core/image_ref.h"

namespace berth::core {

namespace {

using json = nlohmann::json;

Error invalid(std::string field, std::string message) {
  return make_error(ErrorCode::kValidation, std::move(message), std::move(field));
}

std::string path_of(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  std::string out(prefix);
  out += '.';
  out += key;
  return out;
}

const char* json_type(const json& v) {
  if (v.is_number_float()) return "a number with a fraction";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

Error wrong_type(const std::string& field, std::string_view expected, const json& got) {
  return invalid(field, "field \"" + field + "\" must be " + std::string(expected) + ", not " +
                            json_type(got));
}

// Reads one JSON object with a field-path prefix. Every accessor records the key as known so
// that finish() can reject the rest: a misspelt "registry_pasword" must not be silently
// dropped (the user would believe the password was set).
class ObjectReader {
 public:
  ObjectReader(const json& obj, std::string prefix) : obj_(obj), prefix_(std::move(prefix)) {}

  std::string path(std::string_view key) const { return path_of(prefix_, key); }

  // nullptr when absent or null.
  const json* find(std::string_view key) {
    known_.emplace(key);
    auto it = obj_.find(std::string(key));
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has_null(std::string_view key) const {
    auto it = obj_.find(std::string(key));
    return it != obj_.end() && it->is_null();
  }

  Result<std::optional<std::string>> string(std::string_view key) {
    const json* v = find(key);
    if (v == nullptr) return std::optional<std::string>{};
    if (!v->is_string()) return wrong_type(path(key), "a string", *v);
    return std::optional<std::string>(v->get<std::string>());
  }

  Result<std::optional<int>> integer(std::string_view key) {
    const json* v = find(key);
    if (v == nullptr) return std::optional<int>{};
    if (v->is_number_integer()) {
      // number_integer covers both signed and unsigned storage.
      if (v->is_number_unsigned()) {
        auto u = v->get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
          return invalid(path(key), "field \"" + path(key) + "\" is out of range");
        }
        return std::optional<int>(static_cast<int>(u));
      }
      auto i = v->get<std::int64_t>();
      if (i < std::numeric_limits<int>::min() || i > std::numeric_limits<int>::max()) {
        return invalid(path(key), "field \"" + path(key) + "\" is out of range");
      }
      return std::optional<int>(static_cast<int>(i));
    }
    return wrong_type(path(key), "an integer", *v);
  }

  Status finish() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (known_.count(it.key()) == 0) {
        const std::string p = path(it.key());
        return invalid(p, "unknown field \"" + p + "\"");
      }
    }
    return Status::Ok();
  }

 private:
  const json& obj_;
  std::string prefix_;
  std::set<std::string, std::less<>> known_;
};

std::string to_lower_ascii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// The fields app_config shares between create and PATCH.
struct ConfigFields {
  std::optional<std::string> image_ref;
  std::optional<int> container_port;
  std::optional<std::map<std::string, std::string>> env;
  std::optional<std::vector<std::string>> custom_domains;
  bool username_present = false;  // key present, possibly null
  std::optional<std::string> registry_username;
  std::optional<Secret> registry_password;
  std::optional<std::string> health_check_path;
  std::optional<int> interval;
  std::optional<int> timeout;
  std::optional<int> threshold;
};

Result<ConfigFields> read_app_config(const json& value, const std::string& prefix) {
  if (!value.is_object()) return wrong_type(prefix, "an object", value);
  ObjectReader r(value, prefix);
  ConfigFields f;

  auto image = r.string("image_ref");
  if (!image) return image.take_error();
  f.image_ref = std::move(*image);

  auto port = r.integer("container_port");
  if (!port) return port.take_error();
  f.container_port = *port;

  if (const json* env = r.find("env")) {
    if (!env->is_object()) return wrong_type(r.path("env"), "an object of strings", *env);
    std::map<std::string, std::string> out;
    for (auto it = env->begin(); it != env->end(); ++it) {
      const std::string p = r.path("env") + "." + it.key();
      if (!it->is_string()) return wrong_type(p, "a string", *it);
      out.emplace(it.key(), it->get<std::string>());
    }
    f.env = std::move(out);
  }

  if (const json* domains = r.find("custom_domains")) {
    if (!domains->is_array()) {
      return wrong_type(r.path("custom_domains"), "an array of strings", *domains);
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < domains->size(); ++i) {
      const json& d = (*domains)[i];
      const std::string p = r.path("custom_domains") + "[" + std::to_string(i) + "]";
      if (!d.is_string()) return wrong_type(p, "a string", d);
      // DNS names are case-insensitive; storing them lowercase makes duplicates visible.
      out.push_back(to_lower_ascii(d.get<std::string>()));
    }
    f.custom_domains = std::move(out);
  }

  f.username_present = r.has_null("registry_username");
  auto user = r.string("registry_username");
  if (!user) return user.take_error();
  if (user->has_value()) f.username_present = true;
  f.registry_username = std::move(*user);

  if (const json* pw = r.find("registry_password")) {
    if (!pw->is_string()) return wrong_type(r.path("registry_password"), "a string", *pw);
    // The Go SDK sends "" for "not set"; an empty password is never a usable credential.
    const auto& text = pw->get_ref<const std::string&>();
    if (!text.empty()) f.registry_password.emplace(text);
  }

  auto hc_path = r.string("health_check_path");
  if (!hc_path) return hc_path.take_error();
  f.health_check_path = std::move(*hc_path);

  auto interval = r.integer("health_check_interval_seconds");
  if (!interval) return interval.take_error();
  f.interval = *interval;
  auto timeout = r.integer("health_check_timeout_seconds");
  if (!timeout) return timeout.take_error();
  f.timeout = *timeout;
  auto threshold = r.integer("health_check_healthy_threshold");
  if (!threshold) return threshold.take_error();
  f.threshold = *threshold;

  if (Status s = r.finish(); !s) return s.error();
  return f;
}

// Zero means "absent" for the Go SDK's integer fields that are always serialised.
std::optional<int> nonzero(std::optional<int> v) {
  if (v && *v == 0) return std::nullopt;
  return v;
}
std::optional<std::string> nonempty(std::optional<std::string> v) {
  if (v && v->empty()) return std::nullopt;
  return v;
}

Status require_object(const json& body) {
  if (!body.is_object()) {
    return invalid("", std::string("request body must be a JSON object, not ") + json_type(body));
  }
  return Status::Ok();
}

bool valid_dns_label(std::string_view s, std::size_t min_len, std::size_t max_len,
                     bool must_start_with_letter) {
  if (s.size() < min_len || s.size() > max_len) return false;
  for (char c : s) {
    if (!is_lower_alnum(c) && c != '-') return false;
  }
  if (must_start_with_letter ? !(s.front() >= 'a' && s.front() <= 'z')
                             : !is_lower_alnum(s.front())) {
    return false;
  }
  return is_lower_alnum(s.back());
}

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  std::size_t labels = 0;
  std::string_view last;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = d.find('.', start);
    std::string_view label =
        d.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!valid_dns_label(label, 1, 63, false)) return false;
    ++labels;
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  // A top-level label of digits only is an IP address, not a domain.
  return labels >= 2 && !std::all_of(last.begin(), last.end(), is_digit);
}

bool valid_env_name(std::string_view n) {
  if (n.empty()) return false;
  auto head = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!head(n.front())) return false;
  return std::all_of(n.begin(), n.end(), [&](char c) { return head(c) || is_digit(c); });
}

Status validate_env(const std::map<std::string, std::string>& env) {
  if (env.size() > kMaxEnvVars) {
    return invalid("app_config.env",
                   "app_config.env may hold at most " + std::to_string(kMaxEnvVars) + " variables");
  }
  std::size_t total = 0;
  for (const auto& [name, value] : env) {
    const std::string p = "app_config.env." + name;
    if (name.size() > kMaxEnvNameLength || !valid_env_name(name)) {
      return invalid(p, "environment variable name \"" + name.substr(0, kMaxEnvNameLength) +
                            "\" must match [A-Za-z_][A-Za-z0-9_]* and be at most " +
                            std::to_string(kMaxEnvNameLength) + " characters");
    }
    if (name.rfind("MDB_", 0) == 0) {
      return invalid(p,
                     "environment variable names starting with MDB_ are reserved by the "
                     "platform");
    }
    if (name == "DATABASE_URL") {
      return invalid(p, "environment variable DATABASE_URL is reserved by the platform");
    }
    if (value.size() > kMaxEnvValueLength) {
      return invalid(p, "environment variable " + name + " is longer than " +
                            std::to_string(kMaxEnvValueLength) + " bytes");
    }
    if (value.find('\0') != std::string::npos) {
      return invalid(p, "environment variable " + name + " contains a NUL byte");
    }
    total += name.size() + value.size();
  }
  if (total > kMaxEnvTotalBytes) {
    return invalid("app_config.env", "app_config.env is larger than " +
                                         std::to_string(kMaxEnvTotalBytes) + " bytes in total");
  }
  return Status::Ok();
}

Status validate_domains(const std::vector<std::string>& domains) {
  if (domains.size() > kMaxCustomDomains) {
    return invalid("app_config.custom_domains", "app_config.custom_domains may hold at most " +
                                                    std::to_string(kMaxCustomDomains) + " domains");
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < domains.size(); ++i) {
    const std::string p = "app_config.custom_domains[" + std::to_string(i) + "]";
    if (!valid_domain(domains[i])) {
      return invalid(p, "custom domain \"" + domains[i].substr(0, 253) +
                            "\" is not a valid lowercase DNS name such as app.example.com");
    }
    if (!seen.insert(domains[i]).second) {
      return invalid(p, "custom domain \"" + domains[i] + "\" is listed twice");
    }
  }
  return Status::Ok();
}

Status validate_health(const HealthCheck& h) {
  if (!h.path.empty()) {
    if (h.path.front() != '/' || h.path.size() > kMaxHealthCheckPathLength ||
        std::any_of(h.path.begin(), h.path.end(),
                    [](char c) { return is_control(c) || c == ' '; })) {
      return invalid("app_config.health_check_path",
                     "app_config.health_check_path must start with '/', contain no spaces or "
                     "control characters and be at most " +
                         std::to_string(kMaxHealthCheckPathLength) + " characters");
    }
  }
  if (h.interval_seconds < 1 || h.interval_seconds > kMaxHealthCheckIntervalSeconds) {
    return invalid("app_config.health_check_interval_seconds",
                   "app_config.health_check_interval_seconds must be between 1 and " +
                       std::to_string(kMaxHealthCheckIntervalSeconds));
  }
  if (h.timeout_seconds < 1 || h.timeout_seconds > kMaxHealthCheckTimeoutSeconds) {
    return invalid("app_config.health_check_timeout_seconds",
                   "app_config.health_check_timeout_seconds must be between 1 and " +
                       std::to_string(kMaxHealthCheckTimeoutSeconds));
  }
  if (h.timeout_seconds > h.interval_seconds) {
    return invalid("app_config.health_check_timeout_seconds",
                   "app_config.health_check_timeout_seconds must not exceed "
                   "health_check_interval_seconds");
  }
  if (h.healthy_threshold < 1 || h.healthy_threshold > kMaxHealthyThreshold) {
    return invalid("app_config.health_check_healthy_threshold",
                   "app_config.health_check_healthy_threshold must be between 1 and " +
                       std::to_string(kMaxHealthyThreshold));
  }
  return Status::Ok();
}

Status validate_username(std::string_view user) {
  if (user.empty()) return Status::Ok();
  if (user.size() > kMaxRegistryUsernameLength ||
      std::any_of(user.begin(), user.end(), [](char c) { return is_control(c) || c == ':'; })) {
    // ':' would split differently in the auth file's base64(user:pass).
    return invalid("app_config.registry_username",
                   "app_config.registry_username must be at most " +
                       std::to_string(kMaxRegistryUsernameLength) +
                       " characters without ':' or control characters");
  }
  return Status::Ok();
}

Status validate_password(const std::optional<Secret>& pw, const std::string& field) {
  if (pw && pw->size() > kMaxRegistryPasswordLength) {
    return invalid(
        field, field + " must be at most " + std::to_string(kMaxRegistryPasswordLength) + " bytes");
  }
  return Status::Ok();
}

json conditions_json(const std::vector<Condition>& conditions) {
  json out = json::array();
  for (const auto& c : conditions) {
    out.push_back({{"type", c.type},
                   {"status", c.status},
                   {"reason", c.reason},
                   {"message", c.message},
                   {"last_transition_time", format_rfc3339(c.last_transition_time)}});
  }
  return out;
}

}  // namespace

// --- parsing -------------------------------------------------------------------------------

Result<CreateRequest> parse_create_request(const json& body) {
  if (Status s = require_object(body); !s) return s.error();
  try {
    ObjectReader r(body, "");
    CreateRequest req;
    auto name = r.string("name");
    if (!name) return name.take_error();
    req.name = name->value_or("");
    auto plan = r.string("plan_name");
    if (!plan) return plan.take_error();
    req.plan_name = plan->value_or("");
    auto zone = r.string("zone");
    if (!zone) return zone.take_error();
    req.zone = nonempty(std::move(*zone));
    auto size = r.integer("storage_size_gb");
    if (!size) return size.take_error();
    req.storage_size_gb = nonzero(*size);
    auto tier = r.string("storage_tier");
    if (!tier) return tier.take_error();
    req.storage_tier = nonempty(std::move(*tier));

    const json* cfg = r.find("app_config");
    if (cfg == nullptr) return invalid("app_config", "app_config is required");
    auto fields = read_app_config(*cfg, "app_config");
    if (!fields) return fields.take_error();
    if (Status s = r.finish(); !s) return s.error();

    ConfigFields& f = *fields;
    req.config.image_ref = f.image_ref.value_or("");
    req.config.container_port = f.container_port.value_or(0);
    if (f.env) req.config.env = std::move(*f.env);
    if (f.custom_domains) req.config.custom_domains = std::move(*f.custom_domains);
    req.config.registry_username = f.registry_username.value_or("");
    req.registry_password = std::move(f.registry_password);
    HealthCheck defaults;
    req.config.health.path = f.health_check_path.value_or("");
    req.config.health.interval_seconds = nonzero(f.interval).value_or(defaults.interval_seconds);
    req.config.health.timeout_seconds = nonzero(f.timeout).value_or(defaults.timeout_seconds);
    req.config.health.healthy_threshold = nonzero(f.threshold).value_or(defaults.healthy_threshold);
    return req;
  } catch (const json::exception& e) {
    // Only reachable through a bug in the type checks above; never a 5xx for bad input.
    return invalid("", std::string("request body could not be read: ") + e.what());
  }
}

Result<PatchRequest> parse_patch_request(const json& body) {
  if (Status s = require_object(body); !s) return s.error();
  try {
    ObjectReader r(body, "");
    PatchRequest req;
    auto name = r.string("name");
    if (!name) return name.take_error();
    req.name = nonempty(std::move(*name));
    auto plan = r.string("plan_name");
    if (!plan) return plan.take_error();
    req.plan_name = nonempty(std::move(*plan));
    auto zone = r.string("zone");
    if (!zone) return zone.take_error();
    req.zone = nonempty(std::move(*zone));
    auto size = r.integer("storage_size_gb");
    if (!size) return size.take_error();
    req.storage_size_gb = nonzero(*size);
    auto tier = r.string("storage_tier");
    if (!tier) return tier.take_error();
    req.storage_tier = nonempty(std::move(*tier));

    const json* cfg = r.find("app_config");
    if (cfg == nullptr) return invalid("app_config", "app_config is required");
    auto fields = read_app_config(*cfg, "app_config");
    if (!fields) return fields.take_error();
    if (Status s = r.finish(); !s) return s.error();

    ConfigFields& f = *fields;
    AppConfigPatch& p = req.app_config;
    p.image_ref = nonempty(std::move(f.image_ref));
    p.container_port = nonzero(f.container_port);
    p.env = std::move(f.env);
    p.custom_domains = std::move(f.custom_domains);
    if (f.username_present) {
      if (f.registry_username && !f.registry_username->empty()) {
        p.username = AppConfigPatch::Username::kSet;
        p.registry_username = std::move(*f.registry_username);
      } else {
        p.username = AppConfigPatch::Username::kRemove;
      }
    }
    p.registry_password = std::move(f.registry_password);
    p.health_check_path = std::move(f.health_check_path);
    p.health_check_interval_seconds = nonzero(f.interval);
    p.health_check_timeout_seconds = nonzero(f.timeout);
    p.health_check_healthy_threshold = nonzero(f.threshold);
    return req;
  } catch (const json::exception& e) {
    return invalid("", std::string("request body could not be read: ") + e.what());
  }
}

Result<RollbackRequest> parse_rollback_request(const json& body) {
  if (Status s = require_object(body); !s) return s.error();
  try {
    ObjectReader r(body, "");
    RollbackRequest req;
    auto id = r.string("deployment_id");
    if (!id) return id.take_error();
    if (!id->has_value() || (*id)->empty()) {
      return invalid("deployment_id", "deployment_id is required");
    }
    req.deployment_id = std::move(**id);
    if (const json* pw = r.find("registry_password")) {
      if (!pw->is_string()) return wrong_type("registry_password", "a string", *pw);
      const auto& text = pw->get_ref<const std::string&>();
      if (!text.empty()) req.registry_password.emplace(text);
    }
    if (Status s = r.finish(); !s) return s.error();
    if (Status s = validate_password(req.registry_password, "registry_password"); !s) {
      return s.error();
    }
    return req;
  } catch (const json::exception& e) {
    return invalid("", std::string("request body could not be read: ") + e.what());
  }
}

// --- semantic rules ----------------------------------------------------------------------

Status validate_name(std::string_view name) {
  if (name.empty()) return invalid("name", "name is required");
  if (!valid_dns_label(name, 3, 63, true)) {
    return invalid("name",
                   "name must be a DNS label of 3 to 63 characters: lowercase letters, digits "
                   "and '-', starting with a letter and ending with a letter or digit");
  }
  return Status::Ok();
}

Status validate_plan_name(std::string_view plan) {
  if (plan.empty()) return invalid("plan_name", "plan_name is required");
  constexpr std::string_view kPrefix = "tier-";
  bool ok = plan.size() > kPrefix.size() && plan.size() <= kPrefix.size() + 2 &&
            plan.substr(0, kPrefix.size()) == kPrefix;
  if (ok) {
    std::string_view digits = plan.substr(kPrefix.size());
    ok = std::all_of(digits.begin(), digits.end(), is_digit) && digits.front() != '0';
    if (ok) {
      int n = 0;
      for (char c : digits) n = n * 10 + (c - '0');
      ok = n >= 1 && n <= 15;
    }
  }
  if (!ok) return invalid("plan_name", "plan_name must be one of tier-1 to tier-15");
  return Status::Ok();
}

Status validate_zone(std::string_view zone) {
  if (!valid_dns_label(zone, 1, 63, false)) {
    return invalid("zone",
                   "zone must be 1 to 63 lowercase letters, digits or '-', such as se-sto1");
  }
  return Status::Ok();
}

Status validate_storage(int size_gb, std::string_view tier) {
  if (size_gb < kMinStorageGb || size_gb > kMaxStorageGb) {
    return invalid("storage_size_gb", "storage_size_gb must be between " +
                                          std::to_string(kMinStorageGb) + " and " +
                                          std::to_string(kMaxStorageGb));
  }
  if (tier != "standard" && tier != "maxiops") {
    return invalid("storage_tier", "storage_tier must be standard or maxiops");
  }
  return Status::Ok();
}

Status validate_app_config(const AppConfig& config) {
  if (config.image_ref.empty()) {
    return invalid("app_config.image_ref", "app_config.image_ref is required");
  }
  if (auto ref = parse_image_ref(config.image_ref); !ref) {
    return invalid("app_config.image_ref", ref.error().message);
  }
  if (config.container_port == 0) {
    return invalid("app_config.container_port", "app_config.container_port is required");
  }
  if (config.container_port < 1 || config.container_port > 65535) {
    return invalid("app_config.container_port",
                   "app_config.container_port must be between 1 and 65535");
  }
  if (Status s = validate_env(config.env); !s) return s;
  if (Status s = validate_domains(config.custom_domains); !s) return s;
  if (Status s = validate_username(config.registry_username); !s) return s;
  return validate_health(config.health);
}

Status validate_create(const CreateRequest& request) {
  if (Status s = validate_name(request.name); !s) return s;
  if (Status s = validate_plan_name(request.plan_name); !s) return s;
  if (request.zone) {
    if (Status s = validate_zone(*request.zone); !s) return s;
  }
  if (Status s = validate_storage(request.storage_size_gb.value_or(kDefaultStorageGb),
                                  request.storage_tier.value_or("standard"));
      !s) {
    return s;
  }
  if (Status s = validate_app_config(request.config); !s) return s;
  if (Status s = validate_password(request.registry_password, "app_config.registry_password"); !s) {
    return s;
  }
  const bool has_user = !request.config.registry_username.empty();
  const bool has_password = request.registry_password.has_value();
  if (has_user && !has_password) {
    return invalid("app_config.registry_password",
                   "registry_password is required when registry_username is set");
  }
  if (has_password && !has_user) {
    return invalid("app_config.registry_username",
                   "registry_username is required when registry_password is set");
  }
  return Status::Ok();
}

Result<AppConfig> apply_patch(const AppConfig& current, const AppConfigPatch& patch) {
  AppConfig next = current;
  if (patch.container_port && *patch.container_port != current.container_port) {
    return invalid("app_config.container_port",
                   "app_config.container_port cannot be changed after create (it is " +
                       std::to_string(current.container_port) + "); create a new app service");
  }
  if (patch.image_ref) next.image_ref = *patch.image_ref;
  if (patch.env) next.env = *patch.env;
  if (patch.custom_domains) next.custom_domains = *patch.custom_domains;
  switch (patch.username) {
    case AppConfigPatch::Username::kAbsent:
      break;
    case AppConfigPatch::Username::kSet:
      next.registry_username = patch.registry_username;
      break;
    case AppConfigPatch::Username::kRemove:
      next.registry_username.clear();
      break;
  }
  if (patch.health_check_path) next.health.path = *patch.health_check_path;
  if (patch.health_check_interval_seconds) {
    next.health.interval_seconds = *patch.health_check_interval_seconds;
  }
  if (patch.health_check_timeout_seconds) {
    next.health.timeout_seconds = *patch.health_check_timeout_seconds;
  }
  if (patch.health_check_healthy_threshold) {
    next.health.healthy_threshold = *patch.health_check_healthy_threshold;
  }
  if (Status s = validate_app_config(next); !s) return s.error();
  if (Status s = validate_password(patch.registry_password, "app_config.registry_password"); !s) {
    return s.error();
  }
  return next;
}

Status check_patch_top_level(const AppService& current, const PatchRequest& patch) {
  auto immutable = [](const char* field) {
    return invalid(
        field, std::string(field) + " cannot be changed by PATCH; only app_config can be updated");
  };
  if (patch.name && *patch.name != current.name) return immutable("name");
  if (patch.plan_name && *patch.plan_name != current.plan_name) return immutable("plan_name");
  if (patch.zone && *patch.zone != current.zone) return immutable("zone");
  if (patch.storage_size_gb && *patch.storage_size_gb != current.storage_size_gb) {
    return immutable("storage_size_gb");
  }
  if (patch.storage_tier && *patch.storage_tier != current.storage_tier) {
    return immutable("storage_tier");
  }
  return Status::Ok();
}

AppService service_from_create(const CreateRequest& request, std::string_view default_zone) {
  AppService s;
  s.name = request.name;
  s.plan_name = request.plan_name;
  s.zone = request.zone.value_or(std::string(default_zone));
  s.storage_size_gb = request.storage_size_gb.value_or(kDefaultStorageGb);
  s.storage_tier = request.storage_tier.value_or("standard");
  s.status = ServiceStatus::kPending;
  s.config = request.config;
  if (auto ref = parse_image_ref(request.config.image_ref)) s.registry_host = ref->registry_host;
  return s;
}

// --- responses -----------------------------------------------------------------------------

json to_json(const AppConfig& config) {
  return json{{"image_ref", config.image_ref},
              {"container_port", config.container_port},
              {"env", config.env},
              {"custom_domains", config.custom_domains},
              {"registry_username", config.registry_username},
              {"health_check_path", config.health.path},
              {"health_check_interval_seconds", config.health.interval_seconds},
              {"health_check_timeout_seconds", config.health.timeout_seconds},
              {"health_check_healthy_threshold", config.health.healthy_threshold}};
}

json to_json(const AppService& service) {
  return json{{"id", service.id},
              {"name", service.name},
              {"plan_name", service.plan_name},
              {"zone", service.zone},
              {"storage_size_gb", service.storage_size_gb},
              {"storage_tier", service.storage_tier},
              {"status", to_string(service.status)},
              {"app_config", to_json(service.config)},
              {"url", service.url},
              {"created_at", format_rfc3339(service.created_at)},
              {"updated_at", format_rfc3339(service.updated_at)},
              {"current_deployment_id", service.current_deployment_id},
              {"registry_host", service.registry_host},
              {"conditions", conditions_json(service.conditions)},
              {"last_error", service.last_error},
              {"agent", service.agent}};
}

json to_json(const Revision& revision) {
  json logs = json::array();
  for (const auto& l : revision.deploy_logs) {
    logs.push_back({{"step", l.step},
                    {"status", l.status},
                    {"message", l.message},
                    {"detail", l.detail},
                    {"started_at", format_rfc3339(l.started_at)},
                    {"duration_ms", l.duration_ms}});
  }
  return json{{"id", revision.id},
              {"service_id", revision.service_id},
              {"revision", revision.number},
              {"image_ref", revision.config.image_ref},
              {"image_digest", revision.image_digest},
              {"container_port", revision.config.container_port},
              {"env", revision.config.env},
              {"custom_domains", revision.config.custom_domains},
              {"registry_username", revision.config.registry_username},
              {"reason", revision.reason},
              {"state", to_string(revision.state)},
              {"deploy_logs", std::move(logs)},
              {"created_at", format_rfc3339(revision.created_at)}};
}

}  // namespace berth::core
