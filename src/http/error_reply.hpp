#pragma once
// Error answers shared by the admin API, the rollout API and the job API: the ErrorCode's HTTP
// status with {"error": message}.
#include "base/status.hpp"
#include "http/types.hpp"

#include <string_view>

namespace tandem::http {

/// The ErrorCode's status and {"error": message}.
Reply error_reply(const Error& error);

/// 405 naming the method and the path, with `Allow: allow`.
Reply method_not_allowed(const Request& request, std::string_view path, std::string_view allow);

} // namespace tandem::http
