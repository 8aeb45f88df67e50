#include "base/status.hpp"

#include <array>

namespace tandem {

namespace {

struct ErrorRow {
  int http;
  int grpc;
  std::string_view label;
};

constexpr std::array kErrors{
#define TANDEM_ERROR_ROW(name, http, grpc, what) ErrorRow{http, grpc, #name},
    TANDEM_ERROR_CODES(TANDEM_ERROR_ROW)
#undef TANDEM_ERROR_ROW
};

const ErrorRow& row(ErrorCode code) {
  const auto index = static_cast<std::size_t>(code);
  return index < kErrors.size() ? kErrors[index] : kErrors[static_cast<std::size_t>(ErrorCode::internal)];
}

} // namespace

int http_status(ErrorCode code) {
  return row(code).http;
}
int grpc_status(ErrorCode code) {
  return row(code).grpc;
}
std::string_view error_label(ErrorCode code) {
  return row(code).label;
}

std::optional<ErrorCode> parse_error_label(std::string_view label) {
  for (std::size_t i = 0; i < kErrors.size(); ++i)
    if (kErrors[i].label == label) return static_cast<ErrorCode>(i);
  return std::nullopt;
}

} // namespace tandem
