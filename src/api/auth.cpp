#include "api/auth.h"

#include <cctype>

#include "common/secret.h"

namespace berth::api {
namespace {

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

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

bool base64_decode(std::string_view in, std::string& out) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  out.clear();
  out.reserve(in.size() * 3 / 4);
  unsigned buffer = 0;
  int bits = 0;
  for (char c : in) {
    const int v = sextet(c);
    if (v < 0) return false;
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return true;
}

Result<std::string> authenticate(core::StateStore& store, std::string_view authorization) {
  if (authorization.empty()) return unauthenticated("authentication is required");
  std::string_view rest;
  if (scheme_is(authorization, "basic", rest)) {
    std::string decoded;
    if (!base64_decode(rest, decoded)) {
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
