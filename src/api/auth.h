#pragma once
// Request authentication for the REST API: an Authorization header value to an account id.
//
//   "Basic base64(account-name:password)"  -> StateStore::authenticate_password (scrypt)
//   "Bearer <token>"                       -> StateStore::authenticate_token (SHA-256)
//
// Contract: kUnauthenticated (with a sentence that never contains the presented secret) for a
// missing, malformed or wrong credential; store errors (kUnavailable, ...) pass through. The
// password and token only ever live in berth::Secret here.
//
// The server (server.cpp) verifies a request before handing it to the Handler: Basic through
// its AuthCache, FailureLimiter and a bounded hashing pool off the I/O threads; Bearer inline
// (microseconds). It then runs the Handler inside a VerifiedScope, and authenticate() returns
// that verdict instead of verifying again. Without a scope (the Handler driven directly, as in
// unit tests) authenticate() verifies against the store on the calling thread.
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/secret.h"
#include "core/ports.h"

namespace berth::api {

// The WWW-Authenticate value of every 401.
inline constexpr const char* kAuthChallenge = R"(Basic realm="berth", Bearer realm="berth")";

struct Credentials {
  enum class Scheme { kBasic, kBearer };
  Scheme scheme = Scheme::kBasic;
  std::string account_name;  // Basic only
  Secret secret;             // the password or the token
};

// Parses an Authorization value; kUnauthenticated when it is empty or malformed.
Result<Credentials> parse_authorization(std::string_view authorization);

// Verifies parsed credentials against the store on the calling thread.
Result<std::string> verify(core::StateStore& store, const Credentials& credentials);

Result<std::string> authenticate(core::StateStore& store, std::string_view authorization);

// While alive, authenticate() on this thread answers `account_id` for exactly `authorization`
// and never consults the store: any other value, or an empty `account_id`, is
// kUnauthenticated. The server wraps every handler call in one. Scopes do not nest.
class VerifiedScope {
 public:
  VerifiedScope(std::string_view authorization, std::string_view account_id);
  ~VerifiedScope();
  VerifiedScope(const VerifiedScope&) = delete;
  VerifiedScope& operator=(const VerifiedScope&) = delete;
};

}  // namespace berth::api
