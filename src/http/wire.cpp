#include "http/wire.hpp"

#include <charconv>

namespace tandem::http {
namespace {

void append_length(std::string& out, std::size_t length) {
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, length);
  out += "Content-Length: ";
  out.append(digits, r.ptr);
  out += "\r\n";
}

} // namespace

std::string response_head(const Reply& reply, bool keep_alive) {
  std::string out;
  out.reserve(128 + reply.headers.size());
  out += "HTTP/1.1 ";
  char code[8];
  auto r = std::to_chars(code, code + sizeof code, reply.status);
  out.append(code, r.ptr);
  out += ' ';
  auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(reply.status));
  out.append(reason.data(), reason.size());
  out += "\r\nContent-Type: ";
  out += reply.content_type.empty() ? std::string_view("application/json") : std::string_view(reply.content_type);
  out += "\r\n";
  out += reply.headers;
  append_length(out, reply.body.size());
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

} // namespace tandem::http
