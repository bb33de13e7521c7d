// Compiled by no_compile.cmake once per case (-DCASE_<name>): every case but CASE_control must
// fail to compile, for the reason its comment names. CASE_control is the same code with a plain
// string, so a broken include path or flag cannot make the failing cases pass.
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/secret.h"

namespace {

// A type that holds a Secret beside other data, as a credential does.
struct Credential {
  std::string username;
  berth::Secret password;
};

}  // namespace

void use(const berth::Secret& secret) {
#if defined(CASE_control)
  const std::string password = "not a secret";
  berth::log::info("control", {{"password", password}});
  nlohmann::json j = password;
  std::ostringstream out;
  out << password;
  (void)secret;
  (void)j;
#elif defined(CASE_json)
  // A Secret converted to JSON directly.
  nlohmann::json j = secret;
  (void)j;
#elif defined(CASE_log_field)
  // A Secret passed as a log field.
  berth::log::info("credential stored", {{"password", secret}});
#elif defined(CASE_log_scope)
  // A Secret in scoped log fields.
  berth::log::ScopedFields scope({{"token", secret}});
#elif defined(CASE_container)
  // Secrets inside standard containers and pairs.
  std::vector<berth::Secret> many{secret};
  std::map<std::string, berth::Secret> by_name{{"registry", secret}};
  berth::log::info("many", {{"all", many}, {"by_name", by_name}});
#elif defined(CASE_holder)
  // A struct holding a Secret, given the usual field-by-field conversion.
  Credential c{"berth", secret};
  nlohmann::json j;
  j["username"] = c.username;
  j["password"] = c.password;
  (void)j;
#elif defined(CASE_holder_macro)
  // The same struct through nlohmann's conversion macro.
  Credential c{"berth", secret};
  nlohmann::json j = c;
  (void)j;
#elif defined(CASE_stream)
  // A Secret written to a stream.
  std::ostringstream out;
  out << secret;
#else
#error "no CASE_ defined"
#endif
}

#if defined(CASE_holder_macro)
namespace {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Credential, username, password)
}  // namespace
#endif
