#include "kube/status_error.h"

#include <cstdio>

#include <nlohmann/json.hpp>

namespace berth::kube {
namespace {

constexpr std::string_view kExpiredPrefix = "expired: ";

std::string string_field(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// The first cause's field of a 422 ("spec.containerPort"), which callers show next to the
// message; empty when the server gave none.
std::string first_cause_field(const nlohmann::json& status) {
  auto details = status.find("details");
  if (details == status.end() || !details->is_object()) return {};
  auto causes = details->find("causes");
  if (causes == details->end() || !causes->is_array() || causes->empty()) return {};
  const auto& cause = causes->front();
  return cause.is_object() ? string_field(cause, "field") : std::string();
}

}  // namespace

std::string one_line(std::string_view text, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 3);
  for (char c : text) {
    if (out.size() >= max_bytes) {
      out += "...";
      break;
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

ErrorCode code_for_http_status(int http_status) {
  switch (http_status) {
    case 400:
      return ErrorCode::kInvalidArgument;
    case 401:
      return ErrorCode::kUnauthenticated;
    case 403:
      return ErrorCode::kPermissionDenied;
    case 404:
      return ErrorCode::kNotFound;
    case 409:
      return ErrorCode::kConflict;
    case 410:
      return ErrorCode::kFailedPrecondition;
    case 413:
      return ErrorCode::kPayloadTooLarge;
    case 415:
      return ErrorCode::kUnsupportedMedia;
    case 422:
      return ErrorCode::kValidation;
    case 429:
      return ErrorCode::kUnavailable;
    case 504:
      return ErrorCode::kDeadlineExceeded;
    default:
      return http_status >= 500 && http_status <= 599 ? ErrorCode::kUnavailable
                                                      : ErrorCode::kInternal;
  }
}

Error status_error(int http_status, std::string_view body) {
  std::string message;
  std::string reason;
  std::string field;
  int code = http_status;
  // A body that is not a Status (an HTML page from a proxy, a truncated answer) still gives a
  // useful error: the status line and the start of the text.
  const nlohmann::json status = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (status.is_object() && string_field(status, "kind") == "Status") {
    message = string_field(status, "message");
    reason = string_field(status, "reason");
    field = first_cause_field(status);
    auto it = status.find("code");
    if (it != status.end() && it->is_number_integer()) code = it->get<int>();
    // In-stream watch errors come with HTTP 200 and the real code inside.
    if (code < 400) code = http_status;
  }
  if (message.empty()) {
    message = "the API server answered HTTP " + std::to_string(code);
    if (!reason.empty()) message += " (" + reason + ")";
    const std::string excerpt = one_line(body, 160);
    if (!excerpt.empty() && !status.is_object()) message += ": " + excerpt;
  }
  message = one_line(message);
  ErrorCode error_code = code_for_http_status(code);
  if (reason == "Timeout") error_code = ErrorCode::kDeadlineExceeded;
  if (code == 410 && message.rfind(kExpiredPrefix, 0) != 0) {
    message = std::string(kExpiredPrefix) + message;
  }
  return make_error(error_code, std::move(message), std::move(field));
}

bool is_expired(const Error& error) {
  return error.code == ErrorCode::kFailedPrecondition &&
         error.message.rfind(kExpiredPrefix, 0) == 0;
}

}  // namespace berth::kube
