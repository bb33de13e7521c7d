#pragma once
// Request authentication for the REST API: an Authorization header value to an account id.
//
//   "Basic base64(account-name:password)"  -> StateStore::authenticate_password
//   "Bearer <token>"                       -> StateStore::authenticate_token
//
// Contract: kUnauthenticated (with a sentence that never contains the presented secret) for a
// missing, malformed or wrong credential; store errors (kUnavailable, ...) pass through. The
// password and token only ever live in berth::Secret here.
#include <string>
#include <string_view>

#include "common/result.h"
#include "core/ports.h"

namespace berth::api {

Result<std::string> authenticate(core::StateStore& store, std::string_view authorization);

}  // namespace berth::api
