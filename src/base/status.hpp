#pragma once
// Errors on the request path are values: a stable code (base/error_codes.hpp: what happened,
// with its HTTP status, gRPC code and metric label) and a message naming the offending field.
#include "base/error_codes.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tandem {

enum class ErrorCode {
#define TANDEM_ERROR_ENUM(name, http, grpc, what) name,
  TANDEM_ERROR_CODES(TANDEM_ERROR_ENUM)
#undef TANDEM_ERROR_ENUM
};

/// The HTTP status a frontend answers with (a worker's 4xx passes through with its own).
int http_status(ErrorCode code);
/// The gRPC status code a gRPC frontend would answer with.
int grpc_status(ErrorCode code);
/// Stable snake_case name: the metric label, the audit record's error code, logs.
std::string_view error_label(ErrorCode code);
/// The code with this label; nullopt for any other text.
std::optional<ErrorCode> parse_error_label(std::string_view label);

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
