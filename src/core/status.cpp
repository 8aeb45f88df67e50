#include "core/status.hpp"

namespace tandem {

int http_status(ErrorCode code) {
  switch (code) {
  case ErrorCode::malformed_json:
  case ErrorCode::invalid_request: return 400;
  case ErrorCode::not_found: return 404;
  case ErrorCode::method_not_allowed: return 405;
  case ErrorCode::conflict: return 409;
  case ErrorCode::payload_too_large: return 413;
  case ErrorCode::overloaded: return 429;
  case ErrorCode::header_too_large: return 431;
  case ErrorCode::insufficient_storage: return 507;
  case ErrorCode::unavailable: return 503;
  case ErrorCode::upstream_error: return 502;
  case ErrorCode::timeout: return 504;
  case ErrorCode::internal: return 500;
  }
  return 500;
}

std::string_view error_label(ErrorCode code) {
  switch (code) {
  case ErrorCode::malformed_json: return "malformed_json";
  case ErrorCode::invalid_request: return "invalid_request";
  case ErrorCode::not_found: return "not_found";
  case ErrorCode::method_not_allowed: return "method_not_allowed";
  case ErrorCode::conflict: return "conflict";
  case ErrorCode::payload_too_large: return "payload_too_large";
  case ErrorCode::overloaded: return "overloaded";
  case ErrorCode::header_too_large: return "header_too_large";
  case ErrorCode::insufficient_storage: return "insufficient_storage";
  case ErrorCode::unavailable: return "unavailable";
  case ErrorCode::upstream_error: return "upstream_error";
  case ErrorCode::timeout: return "timeout";
  case ErrorCode::internal: return "internal";
  }
  return "internal";
}

} // namespace tandem
