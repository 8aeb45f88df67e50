#include "http/wire.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace tandem::http {
namespace {

/// Copies `text` to `out`, at most up to `end`; returns where it stopped.
char* put(char* out, const char* end, std::string_view text) {
  const std::size_t n = std::min(text.size(), static_cast<std::size_t>(end - out));
  std::memcpy(out, text.data(), n);
  return out + n;
}

} // namespace

ResponseHead::ResponseHead(const Reply& reply, bool keep_alive) {
  char* p = status_line_;
  char* const status_end = status_line_ + sizeof status_line_;
  p = put(p, status_end, "HTTP/1.1 ");
  p = std::to_chars(p, status_end, reply.status).ptr;
  p = put(p, status_end, " ");
  const auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(reply.status));
  // The longest reason is 31 characters: never cut, but bounded all the same.
  p = put(p, status_end - 16, std::string_view(reason.data(), reason.size()));
  p = put(p, status_end, "\r\nContent-Type: ");
  const std::string_view content_type =
      reply.content_type.empty() ? std::string_view("application/json") : std::string_view(reply.content_type);

  char* t = tail_;
  char* const tail_end = tail_ + sizeof tail_;
  t = put(t, tail_end, "Content-Length: ");
  t = std::to_chars(t, tail_end, reply.body.size()).ptr;
  t = put(t, tail_end, "\r\n");
  if (!keep_alive) t = put(t, tail_end, "Connection: close\r\n");
  t = put(t, tail_end, "\r\n");

  buffers_ = {boost::asio::buffer(status_line_, static_cast<std::size_t>(p - status_line_)),
              boost::asio::buffer(content_type.data(), content_type.size()), boost::asio::buffer("\r\n", 2),
              boost::asio::buffer(reply.headers), boost::asio::buffer(tail_, static_cast<std::size_t>(t - tail_))};
}

std::string response_head(const Reply& reply, bool keep_alive) {
  const ResponseHead head(reply, keep_alive);
  std::string out;
  out.reserve(boost::asio::buffer_size(head.buffers()));
  for (const auto& piece : head.buffers()) out.append(static_cast<const char*>(piece.data()), piece.size());
  return out;
}

} // namespace tandem::http
