#pragma once
// Errors on the request path are values: a stable code (HTTP status + metric label) and a
// message naming the offending field.
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tandem {

enum class ErrorCode {
  malformed_json,     // 400
  invalid_request,    // 400
  not_found,          // 404
  method_not_allowed, // 405
  conflict,           // 409: e.g. an attempt to change an immutable model version
  payload_too_large,  // 413
  overloaded,         // 429, with Retry-After: refused at once rather than answered late
  header_too_large,   // 431
  insufficient_storage, // 507: a store's quota (blob bytes) would be exceeded
  unavailable,        // 503, with Retry-After
  upstream_error,     // 502
  timeout,            // 504
  internal,           // 500
};

int http_status(ErrorCode code);
/// Stable snake_case name used as a metric label and in logs.
std::string_view error_label(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
};

/// Either a value or an Error. Deliberately small: no exceptions on the request path.
template <typename T> class Result {
public:
  Result(T value) : data_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Error error) : data_(std::move(error)) {}     // NOLINT(google-explicit-constructor)
  [[nodiscard]] bool ok() const { return data_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(data_); }
  const T& value() const { return std::get<0>(data_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  [[nodiscard]] const Error& error() const { return std::get<1>(data_); }

private:
  std::variant<T, Error> data_;
};

struct Ok {};
using Status = Result<Ok>;

inline Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

} // namespace tandem
