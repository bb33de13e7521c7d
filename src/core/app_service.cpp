#include "core/app_service.h"

#include <algorithm>
#include <array>
#include <limits>
#include <type_traits>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "core/image_ref.h"

namespace berth::core {

namespace {

using json = nlohmann::json;

Error invalid(std::string field, std::string_view what) {
  return validation_error(std::move(field), what);
}

// A key the caller sent, made safe for a field path in a one-line message: printable ASCII is
// kept, other bytes become \xNN, and long keys are cut. Keys are names, not values, so the
// path may show them.
std::string printable_key(std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  constexpr std::size_t kMax = 64;
  std::string out;
  for (std::size_t i = 0; i < key.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (key.size() > kMax) out += "...";
  return out;
}

std::string path_of(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) return printable_key(key);
  return std::string(prefix) + "." + printable_key(key);
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

Error wrong_type(const std::string& path, std::string_view expected, const json& got) {
  return invalid(path, "must be " + std::string(expected) + ", not " + json_type(got));
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// --- the field tables ------------------------------------------------------------------------
//
// Create and PATCH bodies have the same fields. Each field is described once: its JSON name,
// its type and where it lands in the request (the slot), which Go SDK zero value means
// "absent", whether create requires it, how it lands in the desired config and the rule it
// must satisfy there. The readers, the create defaults, apply_patch and the validators all walk
// these tables, so a new field is one line here.

enum class Mode { kCreate, kPatch };

// When the Go SDK zero value ("" or 0, which its structs always send) means "not given".
enum class Zero {
  kIsValue,        // always a value ("health_check_path": "" switches to a TCP probe)
  kAbsentInPatch,  // a value on create (and then usually invalid), absent in a PATCH
  kAbsent,         // absent in both (the default applies on create)
};

struct UsernameSlot {};  // registry_username: a name sets; null or "" removes (PATCH)
struct PasswordSlot {};  // registry_password: "" is no password; kept only as a Secret

// The type of a field and where it goes in the request record R.
template <typename R>
using Slot = std::variant<std::optional<std::string> R::*, std::optional<int> R::*,
                          std::optional<std::map<std::string, std::string>> R::*,
                          std::optional<std::vector<std::string>> R::*, UsernameSlot, PasswordSlot>;

template <typename R>
struct Field {
  std::string_view name;
  Slot<R> slot;
  Zero zero = Zero::kIsValue;
  bool required_on_create = false;
};

struct ConfigField : Field<AppConfigPatch> {
  void (*apply)(AppConfig&, const AppConfigPatch&);  // where the value goes in the config
  Status (*check)(const AppConfig&);                 // its rule on the merged config
};

Status check_image_ref(const AppConfig& c);
Status check_container_port(const AppConfig& c);
Status check_env(const AppConfig& c);
Status check_custom_domains(const AppConfig& c);
Status check_username(const AppConfig& c);
Status check_health_path(const AppConfig& c);
Status check_interval(const AppConfig& c);
Status check_timeout(const AppConfig& c);
Status check_threshold(const AppConfig& c);
Status check_nothing(const AppConfig&) { return Status::Ok(); }

using P = AppConfigPatch;
const std::array<ConfigField, 10> kConfigFields = {{
    {{"image_ref", &P::image_ref, Zero::kAbsentInPatch, true},
     [](AppConfig& c, const P& p) { c.image_ref = p.image_ref.value_or(c.image_ref); },
     check_image_ref},
    {{"container_port", &P::container_port, Zero::kAbsentInPatch, true},
     [](AppConfig& c, const P& p) {
       c.container_port = p.container_port.value_or(c.container_port);
     },
     check_container_port},
    {{"env", &P::env},
     [](AppConfig& c, const P& p) {
       if (p.env) c.env = *p.env;
     },
     check_env},
    {{"custom_domains", &P::custom_domains},
     [](AppConfig& c, const P& p) {
       if (p.custom_domains) c.custom_domains = *p.custom_domains;
     },
     check_custom_domains},
    {{"registry_username", UsernameSlot{}},
     [](AppConfig& c, const P& p) {
       if (p.username == P::Username::kSet) c.registry_username = p.registry_username;
       if (p.username == P::Username::kRemove) c.registry_username.clear();
     },
     check_username},
    // The password never enters AppConfig; validate_password checks it.
    {{"registry_password", PasswordSlot{}}, [](AppConfig&, const P&) {}, check_nothing},
    {{"health_check_path", &P::health_check_path},
     [](AppConfig& c, const P& p) { c.health.path = p.health_check_path.value_or(c.health.path); },
     check_health_path},
    {{"health_check_interval_seconds", &P::health_check_interval_seconds, Zero::kAbsent},
     [](AppConfig& c, const P& p) {
       c.health.interval_seconds =
           p.health_check_interval_seconds.value_or(c.health.interval_seconds);
     },
     check_interval},
    {{"health_check_timeout_seconds", &P::health_check_timeout_seconds, Zero::kAbsent},
     [](AppConfig& c, const P& p) {
       c.health.timeout_seconds = p.health_check_timeout_seconds.value_or(c.health.timeout_seconds);
     },
     check_timeout},
    {{"health_check_healthy_threshold", &P::health_check_healthy_threshold, Zero::kAbsent},
     [](AppConfig& c, const P& p) {
       c.health.healthy_threshold =
           p.health_check_healthy_threshold.value_or(c.health.healthy_threshold);
     },
     check_threshold},
}};

// Top-level fields; app_config is read with kConfigFields. A PATCH accepts them only to compare
// (check_patch_top_level).
using Q = PatchRequest;
const std::array<Field<PatchRequest>, 5> kTopFields = {{
    {"name", &Q::name, Zero::kAbsentInPatch, true},
    {"plan_name", &Q::plan_name, Zero::kAbsentInPatch, true},
    {"zone", &Q::zone, Zero::kAbsent},
    {"storage_size_gb", &Q::storage_size_gb, Zero::kAbsent},
    {"storage_tier", &Q::storage_tier, Zero::kAbsent},
}};

// --- reading ---------------------------------------------------------------------------------

bool is_zero_absent(Zero zero, Mode mode) {
  return zero == Zero::kAbsent || (zero == Zero::kAbsentInPatch && mode == Mode::kPatch);
}

Result<int> read_int(const json& v, const std::string& path) {
  if (!v.is_number_integer()) return wrong_type(path, "an integer", v);
  // number_integer covers both signed and unsigned storage.
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
      return invalid(path, "is out of range");
    }
    return static_cast<int>(u);
  }
  const auto i = v.get<std::int64_t>();
  if (i < std::numeric_limits<int>::min() || i > std::numeric_limits<int>::max()) {
    return invalid(path, "is out of range");
  }
  return static_cast<int>(i);
}

Result<std::map<std::string, std::string>> read_env(const json& v, const std::string& path) {
  if (!v.is_object()) return wrong_type(path, "an object of strings", v);
  std::map<std::string, std::string> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_string()) return wrong_type(path_of(path, it.key()), "a string", *it);
    out.emplace(it.key(), it->get<std::string>());
  }
  return out;
}

Result<std::vector<std::string>> read_domains(const json& v, const std::string& path) {
  if (!v.is_array()) return wrong_type(path, "an array of strings", v);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      return wrong_type(path + "[" + std::to_string(i) + "]", "a string", v[i]);
    // DNS names are case-insensitive; storing them lowercase makes duplicates visible.
    out.push_back(to_lower_ascii(v[i].get_ref<const std::string&>()));
  }
  return out;
}

// Reads one field of `obj` into `into`. Absent and null leave the slot empty, except that a
// null registry_username removes the credential.
template <typename R>
Status read_field(const json& obj, const std::string& prefix, const Field<R>& field, Mode mode,
                  R& into) {
  const std::string path = path_of(prefix, field.name);
  const auto it = obj.find(std::string(field.name));
  const bool present = it != obj.end() && !it->is_null();
  if (mode == Mode::kCreate && field.required_on_create && !present) {
    return invalid(path, "is required");
  }
  if constexpr (std::is_same_v<R, AppConfigPatch>) {
    if (std::holds_alternative<UsernameSlot>(field.slot)) {
      if (it == obj.end()) return Status::Ok();
      if (it->is_null()) {
        into.username = P::Username::kRemove;
        return Status::Ok();
      }
      if (!it->is_string()) return wrong_type(path, "a string", *it);
      into.registry_username = it->template get<std::string>();
      into.username = into.registry_username.empty() ? P::Username::kRemove : P::Username::kSet;
      return Status::Ok();
    }
    if (std::holds_alternative<PasswordSlot>(field.slot)) {
      if (!present) return Status::Ok();
      if (!it->is_string()) return wrong_type(path, "a string", *it);
      // The Go SDK sends "" for "not set"; an empty password is never a usable credential.
      const auto& text = it->template get_ref<const std::string&>();
      if (!text.empty()) into.registry_password.emplace(text);
      return Status::Ok();
    }
  }
  if (!present) return Status::Ok();
  const json& v = *it;
  const bool zero_absent = is_zero_absent(field.zero, mode);
  if (auto m = std::get_if<std::optional<std::string> R::*>(&field.slot)) {
    if (!v.is_string()) return wrong_type(path, "a string", v);
    auto text = v.template get<std::string>();
    if (!(zero_absent && text.empty())) into.** m = std::move(text);
  } else if (auto m = std::get_if<std::optional<int> R::*>(&field.slot)) {
    auto n = read_int(v, path);
    if (!n) return n.take_error();
    if (!(zero_absent && *n == 0)) into.** m = *n;
  } else if (auto m =
                 std::get_if<std::optional<std::map<std::string, std::string>> R::*>(&field.slot)) {
    auto env = read_env(v, path);
    if (!env) return env.take_error();
    into.** m = std::move(*env);
  } else if (auto m = std::get_if<std::optional<std::vector<std::string>> R::*>(&field.slot)) {
    auto domains = read_domains(v, path);
    if (!domains) return domains.take_error();
    into.** m = std::move(*domains);
  }
  return Status::Ok();
}

// Every key must be one the table knows: a misspelt "registry_pasword" must not be silently
// dropped (the user would believe the password was set).
template <typename Table>
Status reject_unknown(const json& obj, const std::string& prefix, const Table& table,
                      std::string_view extra = {}) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const bool known =
        it.key() == extra ||
        std::any_of(table.begin(), table.end(), [&](const auto& f) { return f.name == it.key(); });
    if (!known) return invalid(path_of(prefix, it.key()), "unknown field");
  }
  return Status::Ok();
}

Status require_object(const json& body) {
  if (!body.is_object()) {
    // Valid JSON of the wrong shape is malformed input, like invalid JSON text (400).
    return make_error(
        ErrorCode::kInvalidArgument,
        std::string("the request body must be a JSON object, not ") + json_type(body));
  }
  return Status::Ok();
}

// The one reader behind parse_create_request and parse_patch_request.
Result<PatchRequest> read_body(const json& body, Mode mode) {
  if (Status s = require_object(body); !s) return s.error();
  PatchRequest req;
  for (const auto& field : kTopFields) {
    if (Status s = read_field(body, "", field, mode, req); !s) return s.error();
  }
  const auto cfg = body.find("app_config");
  if (cfg == body.end() || cfg->is_null()) return invalid("app_config", "is required");
  if (!cfg->is_object()) return wrong_type("app_config", "an object", *cfg);
  for (const auto& field : kConfigFields) {
    if (Status s = read_field(*cfg, "app_config", field, mode, req.app_config); !s) {
      return s.error();
    }
  }
  if (Status s = reject_unknown(*cfg, "app_config", kConfigFields); !s) return s.error();
  if (Status s = reject_unknown(body, "", kTopFields, "app_config"); !s) return s.error();
  return req;
}

// --- rules -----------------------------------------------------------------------------------

// A valid name in the sense of RFC 1123, lowercase, at least two labels, no IP address.
bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  std::size_t labels = 0;
  std::string_view last;
  while (true) {
    const std::size_t dot = d.find('.');
    last = d.substr(0, dot);
    if (!is_dns_label(last)) return false;
    ++labels;
    if (dot == std::string_view::npos) break;
    d.remove_prefix(dot + 1);
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

std::string range(int lo, int hi) {
  return "must be between " + std::to_string(lo) + " and " + std::to_string(hi);
}

Status check_image_ref(const AppConfig& c) {
  if (c.image_ref.empty()) return invalid("app_config.image_ref", "is required");
  if (auto ref = parse_image_ref(c.image_ref, "app_config.image_ref"); !ref) return ref.error();
  return Status::Ok();
}

Status check_container_port(const AppConfig& c) {
  if (c.container_port < 1 || c.container_port > 65535) {
    return invalid("app_config.container_port", "is out of range (1-65535)");
  }
  return Status::Ok();
}

// The agent hands env to podman as an --env-file (NAME=VALUE lines, read with Go's
// bufio.Scanner; containers/podman pkg/env ParseFile) and the runtime passes it to execve.
// So a value cannot hold a newline (it would end the line and start another variable), a
// carriage return (the agent refuses it: a trailing one would be dropped) or a NUL (execve
// strings end there). The name rule already keeps out '=', '#', whitespace and empty names.
Status check_env(const AppConfig& c) {
  const auto& env = c.env;
  if (env.size() > kMaxEnvVars) {
    return invalid("app_config.env",
                   "may hold at most " + std::to_string(kMaxEnvVars) + " variables");
  }
  std::size_t total = 0;
  for (const auto& [name, value] : env) {
    if (name.empty()) return invalid("app_config.env", "has a variable with an empty name");
    const std::string p = path_of("app_config.env", name);
    if (name.size() > kMaxEnvNameLength || !valid_env_name(name)) {
      return invalid(p, "the name must match [A-Za-z_][A-Za-z0-9_]* and be at most " +
                            std::to_string(kMaxEnvNameLength) + " characters");
    }
    if (name.starts_with("MDB_")) {
      return invalid(p, "names starting with MDB_ are reserved by the platform");
    }
    if (name == "DATABASE_URL") return invalid(p, "the name is reserved by the platform");
    if (value.size() > kMaxEnvValueLength) {
      return invalid(p,
                     "the value is longer than " + std::to_string(kMaxEnvValueLength) + " bytes");
    }
    if (value.find('\n') != std::string::npos) return invalid(p, "the value contains a newline");
    if (value.find('\r') != std::string::npos) {
      return invalid(p, "the value contains a carriage return");
    }
    if (value.find('\0') != std::string::npos) return invalid(p, "the value contains a NUL byte");
    total += name.size() + value.size();
  }
  if (total > kMaxEnvTotalBytes) {
    return invalid("app_config.env",
                   "is larger than " + std::to_string(kMaxEnvTotalBytes) + " bytes in total");
  }
  return Status::Ok();
}

Status check_custom_domains(const AppConfig& c) {
  const auto& domains = c.custom_domains;
  if (domains.size() > kMaxCustomDomains) {
    return invalid("app_config.custom_domains",
                   "may hold at most " + std::to_string(kMaxCustomDomains) + " domains");
  }
  const auto path = [](std::size_t i) {
    return "app_config.custom_domains[" + std::to_string(i) + "]";
  };
  for (std::size_t i = 0; i < domains.size(); ++i) {
    if (!valid_domain(domains[i])) {
      return invalid(path(i), "is not a valid lowercase DNS name such as app.example.com");
    }
    const auto first =
        std::find(domains.begin(), domains.begin() + static_cast<long>(i), domains[i]);
    if (first != domains.begin() + static_cast<long>(i)) {
      return invalid(path(i), "repeats " + path(static_cast<std::size_t>(first - domains.begin())));
    }
  }
  return Status::Ok();
}

Status check_username(const AppConfig& c) {
  const std::string& user = c.registry_username;
  if (user.size() > kMaxRegistryUsernameLength) {
    return invalid("app_config.registry_username",
                   "is longer than " + std::to_string(kMaxRegistryUsernameLength) + " characters");
  }
  // ':' would split differently in the auth file's base64(user:pass).
  if (std::any_of(user.begin(), user.end(), [](char ch) { return is_control(ch) || ch == ':'; })) {
    return invalid("app_config.registry_username", "must not contain ':' or control characters");
  }
  return Status::Ok();
}

// The agent puts the path in an HTTP request line: printable ASCII only, as in a URL.
Status check_health_path(const AppConfig& c) {
  const std::string& path = c.health.path;
  if (path.empty()) return Status::Ok();
  const std::string field = "app_config.health_check_path";
  if (path.front() != '/') return invalid(field, "must be empty (TCP probe) or start with '/'");
  if (path.size() > kMaxHealthCheckPathLength) {
    return invalid(field,
                   "is longer than " + std::to_string(kMaxHealthCheckPathLength) + " characters");
  }
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto ch = static_cast<unsigned char>(path[i]);
    if (ch <= 0x20 || ch >= 0x7f) {
      return invalid(field, "has a space, control character or non-ASCII byte at position " +
                                std::to_string(i + 1));
    }
  }
  return Status::Ok();
}

Status check_interval(const AppConfig& c) {
  const int v = c.health.interval_seconds;
  if (v < 1 || v > kMaxHealthCheckIntervalSeconds) {
    return invalid("app_config.health_check_interval_seconds",
                   range(1, kMaxHealthCheckIntervalSeconds));
  }
  return Status::Ok();
}

Status check_timeout(const AppConfig& c) {
  const int v = c.health.timeout_seconds;
  if (v < 1 || v > kMaxHealthCheckTimeoutSeconds) {
    return invalid("app_config.health_check_timeout_seconds",
                   range(1, kMaxHealthCheckTimeoutSeconds));
  }
  if (v > c.health.interval_seconds) {
    return invalid("app_config.health_check_timeout_seconds",
                   "must not exceed app_config.health_check_interval_seconds");
  }
  return Status::Ok();
}

Status check_threshold(const AppConfig& c) {
  const int v = c.health.healthy_threshold;
  if (v < 1 || v > kMaxHealthyThreshold) {
    return invalid("app_config.health_check_healthy_threshold", range(1, kMaxHealthyThreshold));
  }
  return Status::Ok();
}

Status validate_password(const std::optional<Secret>& pw, const std::string& field) {
  if (pw && pw->size() > kMaxRegistryPasswordLength) {
    return invalid(field,
                   "is longer than " + std::to_string(kMaxRegistryPasswordLength) + " bytes");
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
  try {
    auto read = read_body(body, Mode::kCreate);
    if (!read) return read.take_error();
    PatchRequest& r = *read;
    CreateRequest req;
    req.name = r.name.value_or("");
    req.plan_name = r.plan_name.value_or("");
    req.zone = std::move(r.zone);
    req.storage_size_gb = r.storage_size_gb;
    req.storage_tier = std::move(r.storage_tier);
    // A create is a PATCH of the default config.
    for (const auto& field : kConfigFields) field.apply(req.config, r.app_config);
    req.registry_password = std::move(r.app_config.registry_password);
    return req;
  } catch (const json::exception&) {
    // Only reachable through a bug in the type checks above; never a 5xx for bad input. The
    // library's text is not passed on: it can quote the input.
    return invalid("", "the request body could not be read");
  }
}

Result<PatchRequest> parse_patch_request(const json& body) {
  try {
    return read_body(body, Mode::kPatch);
  } catch (const json::exception&) {
    return invalid("", "the request body could not be read");
  }
}

Result<RollbackRequest> parse_rollback_request(const json& body) {
  if (Status s = require_object(body); !s) return s.error();
  try {
    RollbackRequest req;
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (it.key() != "deployment_id" && it.key() != "registry_password") {
        return invalid(path_of("", it.key()), "unknown field");
      }
    }
    const auto id = body.find("deployment_id");
    if (id == body.end() || id->is_null()) return invalid("deployment_id", "is required");
    if (!id->is_string()) return wrong_type("deployment_id", "a string", *id);
    req.deployment_id = id->get<std::string>();
    if (req.deployment_id.empty()) return invalid("deployment_id", "is required");
    const auto pw = body.find("registry_password");
    if (pw != body.end() && !pw->is_null()) {
      if (!pw->is_string()) return wrong_type("registry_password", "a string", *pw);
      const auto& text = pw->get_ref<const std::string&>();
      if (!text.empty()) req.registry_password.emplace(text);
    }
    if (Status s = validate_password(req.registry_password, "registry_password"); !s) {
      return s.error();
    }
    return req;
  } catch (const json::exception&) {
    return invalid("", "the request body could not be read");
  }
}

// --- semantic rules ----------------------------------------------------------------------

Status validate_name(std::string_view name) {
  if (name.empty()) return invalid("name", "is required");
  if (name.size() < 3 || !is_dns_label(name) || !(name.front() >= 'a' && name.front() <= 'z')) {
    return invalid("name",
                   "must be a DNS label of 3 to 63 characters: lowercase letters, digits and "
                   "'-', starting with a letter and ending with a letter or digit");
  }
  return Status::Ok();
}

Status validate_plan_name(std::string_view plan) {
  if (plan.empty()) return invalid("plan_name", "is required");
  constexpr std::string_view kPrefix = "tier-";
  bool ok = plan.size() > kPrefix.size() && plan.size() <= kPrefix.size() + 2 &&
            plan.starts_with(kPrefix);
  if (ok) {
    const std::string_view digits = plan.substr(kPrefix.size());
    ok = std::all_of(digits.begin(), digits.end(), is_digit) && digits.front() != '0';
    if (ok) {
      int n = 0;
      for (char c : digits) n = n * 10 + (c - '0');
      ok = n >= 1 && n <= 15;
    }
  }
  if (!ok) return invalid("plan_name", "must be one of tier-1 to tier-15");
  return Status::Ok();
}

Status validate_zone(std::string_view zone) {
  if (!is_dns_label(zone)) {
    return invalid("zone", "must be 1 to 63 lowercase letters, digits or '-', such as se-sto1");
  }
  return Status::Ok();
}

Status validate_storage(int size_gb, std::string_view tier) {
  if (size_gb < kMinStorageGb || size_gb > kMaxStorageGb) {
    return invalid("storage_size_gb", range(kMinStorageGb, kMaxStorageGb));
  }
  if (tier != "standard" && tier != "maxiops") {
    return invalid("storage_tier", "must be standard or maxiops");
  }
  return Status::Ok();
}

Status validate_app_config(const AppConfig& config) {
  for (const auto& field : kConfigFields) {
    if (Status s = field.check(config); !s) return s;
  }
  return Status::Ok();
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
    return invalid("app_config.registry_password", "is required when registry_username is set");
  }
  if (has_password && !has_user) {
    return invalid("app_config.registry_username", "is required when registry_password is set");
  }
  return Status::Ok();
}

Result<AppConfig> apply_patch(const AppConfig& current, const AppConfigPatch& patch) {
  if (patch.container_port && *patch.container_port != current.container_port) {
    return invalid("app_config.container_port",
                   "cannot be changed after create; create a new app service");
  }
  AppConfig next = current;
  for (const auto& field : kConfigFields) field.apply(next, patch);
  if (Status s = validate_app_config(next); !s) return s.error();
  if (Status s = validate_password(patch.registry_password, "app_config.registry_password"); !s) {
    return s.error();
  }
  return next;
}

Status check_patch_top_level(const AppService& current, const PatchRequest& patch) {
  auto immutable = [](const char* field) {
    return invalid(field, "cannot be changed by PATCH; only app_config can be updated");
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
