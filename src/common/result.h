#pragma once
// Errors as values across module boundaries. An Error carries a code that says what kind of
// failure it is (and therefore whether retrying can help), one clear sentence for humans, and
// optionally the request field it is about.
#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace berth {

enum class ErrorCode {
  kInvalidArgument,     // malformed input (400)
  kValidation,          // well-formed input that breaks a rule (422); `field` names it
  kUnauthenticated,     // 401
  kNotFound,            // 404 (also: owned by someone else)
  kConflict,            // 409: name taken, concurrent update
  kFailedPrecondition,  // state does not allow it (422-class, not retryable)
  kPayloadTooLarge,     // 413
  kUnsupportedMedia,    // 415
  kUnavailable,         // transient: peer down, busy database; retry with backoff
  kDeadlineExceeded,    // transient: timed out
  kResourceExhausted,   // disk full, too many connections
  kPermissionDenied,    // credential refused by a registry, read-only database
  kDataLoss,            // tampered or unreadable sealed data, corrupt file
  kInternal,            // a bug
};

const char* to_string(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string field;  // the request field the error is about, empty when none

  bool retryable() const {
    return code == ErrorCode::kUnavailable || code == ErrorCode::kDeadlineExceeded ||
           code == ErrorCode::kResourceExhausted;
  }
};

inline Error make_error(ErrorCode code, std::string message, std::string field = {}) {
  return Error{code, std::move(message), std::move(field)};
}

// The one shape of a rejected request value: code kValidation, `field` set, and the message
// "<field path>: <what is wrong>" (just `what` when no field applies). `what` describes the
// problem without repeating the submitted value, which may be a secret pasted by mistake.
inline Error validation_error(std::string field, std::string_view what) {
  std::string message = field.empty() ? std::string(what) : field + ": " + std::string(what);
  return Error{ErrorCode::kValidation, std::move(message), std::move(field)};
}

// Result<T>: a T or an Error. Access to the wrong side is a programming error (asserted).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& take_error() {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

// Status: success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error)
      : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  static Status Ok() { return Status(); }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace berth
