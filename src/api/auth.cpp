#include "api/auth.h"
#include "common/text.h"

#include <cctype>

#include "common/base64.h"

namespace berth::api {
namespace {

bool scheme_is(std::string_view value, std::string_view scheme, std::string_view& rest) {
  if (value.size() <= scheme.size() || value[scheme.size()] != ' ') return false;
  if (!iequals_ascii(value.substr(0, scheme.size()), scheme)) return false;
  rest = value.substr(scheme.size() + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  return true;
}

Error unauthenticated(std::string message) {
  return make_error(ErrorCode::kUnauthenticated, std::move(message));
}

// The verdict of the request being handled on this thread (VerifiedScope).
struct Verified {
  bool active = false;
  std::string_view authorization;
  std::string_view account_id;
};
thread_local Verified t_verified;

}  // namespace

Result<Credentials> parse_authorization(std::string_view authorization) {
  if (authorization.empty()) return unauthenticated("authentication is required");
  std::string_view rest;
  Credentials c;
  if (scheme_is(authorization, "basic", rest)) {
    std::string decoded;
    if (!base64::decode(rest, decoded)) {
      return unauthenticated("the Basic credentials are not valid base64");
    }
    const Secret plain(decoded);
    secure_wipe(decoded.data(), decoded.size());
    const auto colon = plain.reveal().find(':');
    if (colon == std::string_view::npos) {
      return unauthenticated("the Basic credentials must be name:password");
    }
    c.scheme = Credentials::Scheme::kBasic;
    c.account_name = std::string(plain.reveal().substr(0, colon));
    c.secret = Secret(plain.reveal().substr(colon + 1));
    return c;
  }
  if (scheme_is(authorization, "bearer", rest)) {
    if (rest.empty()) return unauthenticated("the Bearer token is empty");
    c.scheme = Credentials::Scheme::kBearer;
    c.secret = Secret(rest);
    return c;
  }
  return unauthenticated("use HTTP Basic or Bearer authentication");
}

Result<std::string> verify(core::StateStore& store, const Credentials& credentials) {
  if (credentials.scheme == Credentials::Scheme::kBasic) {
    auto account = store.authenticate_password(credentials.account_name, credentials.secret);
    if (!account && account.error().code == ErrorCode::kUnauthenticated) {
      return unauthenticated("the account name or password is wrong");
    }
    return account;
  }
  // The store's sentence is kept: it tells a token from an older berth from a wrong one.
  return store.authenticate_token(credentials.secret);
}

Result<std::string> authenticate(core::StateStore& store, std::string_view authorization) {
  if (t_verified.active) {
    // Under the server: its verdict is final, and nothing is hashed on this (I/O) thread. The
    // verified header is not parsed again (every authenticated request comes this way).
    if (!t_verified.account_id.empty() && t_verified.authorization == authorization) {
      return std::string(t_verified.account_id);
    }
    auto credentials = parse_authorization(authorization);
    if (!credentials) return credentials.take_error();
    return unauthenticated("the credentials were not verified");
  }
  auto credentials = parse_authorization(authorization);
  if (!credentials) return credentials.take_error();
  return verify(store, *credentials);
}

VerifiedScope::VerifiedScope(std::string_view authorization, std::string_view account_id) {
  t_verified = Verified{true, authorization, account_id};
}

VerifiedScope::~VerifiedScope() { t_verified = Verified{}; }

}  // namespace berth::api
