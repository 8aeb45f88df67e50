#include "http/wire.hpp"

#include <charconv>

namespace tandem::http {
namespace {

template <typename Fields> void append_fields(std::string& out, const Fields& fields) {
  for (const auto& f : fields) {
    auto name = f.name();
    if (name == bhttp::field::content_length || name == bhttp::field::connection ||
        name == bhttp::field::transfer_encoding)
      continue;
    auto name_text = f.name_string();
    auto value = f.value();
    out.append(name_text.data(), name_text.size());
    out += ": ";
    out.append(value.data(), value.size());
    out += "\r\n";
  }
}

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
  out += reply.content_type;
  out += "\r\n";
  out += reply.headers;
  append_length(out, reply.body.size());
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

std::string request_head(const Request& request, std::size_t content_length) {
  std::string out;
  out.reserve(256);
  auto method = request.method_string();
  out.append(method.data(), method.size());
  out += ' ';
  auto target = request.target();
  out.append(target.data(), target.size());
  out += " HTTP/1.1\r\n";
  append_fields(out, request);
  append_length(out, content_length);
  out += "\r\n";
  return out;
}

} // namespace tandem::http
