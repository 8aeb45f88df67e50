#include "http/error_reply.hpp"

#include "protocol/v2_codec.hpp"

#include <string>

namespace tandem::http {

Reply error_reply(const Error& error) {
  return json_response(static_cast<unsigned>(http_status(error.code)), v2::encode_error(error.message));
}

Reply method_not_allowed(const Request& request, std::string_view path, std::string_view allow) {
  auto reply = error_reply({ErrorCode::method_not_allowed, std::string(request.method_string()) +
                                                               " is not allowed on " + std::string(path) + "; use " +
                                                               std::string(allow)});
  reply.set("Allow", allow);
  return reply;
}

} // namespace tandem::http
