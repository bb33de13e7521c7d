#pragma once
// The API server's answer to a failed request (a metav1.Status object, or whatever a proxy in
// front of it sent) as an Error: the server's own sentence as the message and the HTTP status
// mapped to a code that says whether retrying helps (see kube/resource_client.h):
//   400 kInvalidArgument, 401 kUnauthenticated, 403 kPermissionDenied, 404 kNotFound,
//   409 kConflict (stale resourceVersion and AlreadyExists alike), 410 kFailedPrecondition with
//   a message starting "expired: ", 413 kPayloadTooLarge, 415 kUnsupportedMedia, 422 kValidation
//   (`field` from the first cause), 429 and 5xx kUnavailable, 504 or reason Timeout
//   kDeadlineExceeded, anything else kInternal.
// The message is one line: control bytes are escaped and it is cut at a few hundred bytes, so
// it can go into a log or a condition as it is. Pure; safe from any thread.
#include <string>
#include <string_view>

#include "common/result.h"

namespace berth::kube {

// `http_status` is the response's status; `body` its body (a Status object, or anything).
Error status_error(int http_status, std::string_view body);

ErrorCode code_for_http_status(int http_status);

// Whether `error` came from a 410 Gone (its message starts with "expired:").
bool is_expired(const Error& error);

// `text` as one printable line of at most `max_bytes` (control bytes as \xNN, "..." when cut).
std::string one_line(std::string_view text, std::size_t max_bytes = 512);

}  // namespace berth::kube
