#include "api/auth.h"

#include <cctype>

#include "common/base64.h"
#include "common/secret.h"

namespace berth::api {
namespace {

bool scheme_is(std::string_view value, std::string_view scheme, std::string_view& rest) {
  if (value.size() <= scheme.size() || value[scheme.size()] != ' ') return false;
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != scheme[i]) return false;
  }
  rest = value.substr(scheme.size() + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  return true;
}

Error unauthenticated(std::string message) {
  return make_error(ErrorCode::kUnauthenticated, std::move(message));
}

}  // namespace

Result<std::string> authenticate(core::StateStore& store, std::string_view authorization) {
  if (authorization.empty()) return unauthenticated("authentication is required");
  std::string_view rest;
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
    const std::string name(plain.reveal().substr(0, colon));
    const Secret password(plain.reveal().substr(colon + 1));
    auto account = store.authenticate_password(name, password);
    if (!account && account.error().code == ErrorCode::kUnauthenticated) {
      return unauthenticated("the account name or password is wrong");
    }
    return account;
  }
  if (scheme_is(authorization, "bearer", rest)) {
    if (rest.empty()) return unauthenticated("the Bearer token is empty");
    auto account = store.authenticate_token(Secret(rest));
    if (!account && account.error().code == ErrorCode::kUnauthenticated) {
      return unauthenticated("the token is not valid");
    }
    return account;
  }
  return unauthenticated("use HTTP Basic or Bearer authentication");
}

}  // namespace berth::api
