#pragma once
// HTTP/1.1 message heads written by hand. Beast's serializer walks its buffer views one
// element at a time, which profiling showed to cost a third of the gateway's instructions
// per request; a head is a short string, and the body goes out as a second buffer, uncopied.
#include "http/types.hpp"

#include <array>
#include <string>

namespace tandem::http {

/// "HTTP/1.1 200 OK\r\n" + Content-Type + the reply's header lines + Content-Length (of its
/// body) + Connection + "\r\n".
std::string response_head(const Reply& reply, bool keep_alive);

/// The same head as buffers for one gathered write, pointing into `reply` and into this
/// object's own two small arrays: no allocation and no copy of the header lines, which the
/// string above cost on every proxied request. Valid while both live and stay unchanged.
class ResponseHead {
public:
  ResponseHead(const Reply& reply, bool keep_alive);
  ResponseHead(const ResponseHead&) = delete;
  ResponseHead& operator=(const ResponseHead&) = delete;
  static constexpr std::size_t kBuffers = 5;
  [[nodiscard]] const std::array<boost::asio::const_buffer, kBuffers>& buffers() const { return buffers_; }

private:
  char status_line_[80];  // "HTTP/1.1 NNN Reason\r\nContent-Type: "
  char tail_[64];         // "Content-Length: N\r\n" [+ "Connection: close\r\n"] + "\r\n"
  std::array<boost::asio::const_buffer, kBuffers> buffers_;
};

} // namespace tandem::http
