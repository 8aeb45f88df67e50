#pragma once
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "http/append_string_body.hpp"

#include <algorithm>
#include <cstring>
#include <functional>

namespace tandem::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

using Request = bhttp::request<AppendStringBody>;

/// What a handler answers. Headers are kept as preformatted lines: a reply is built once and
/// written once, so a field container (one allocation per field) would be pure overhead.
struct Reply {
  static constexpr std::size_t kHeadersReserveBytes = 512;
  unsigned status = 200;
  std::string content_type;  // empty: application/json (the common case costs no allocation)
  std::string headers;  // "Name: value\r\n" lines, without Content-Type/Length/Connection
  std::string body;
  /// Work the client need not wait for: the server runs it once the reply is written (or the
  /// write failed), while the request is still whole; whoever consumes a reply without a server
  /// (a batch job) runs it at once. Empty for nearly every reply.
  std::function<void(const Request&)> after_sent;

  void set(std::string_view name, std::string_view value) {
    // A gateway reply carries a dozen x-tandem-* lines: one allocation instead of five growths,
    // and one resize and four copies per line instead of four appends.
    const std::size_t at = headers.size();
    const std::size_t length = name.size() + value.size() + 4;
    if (headers.capacity() < at + length) headers.reserve(std::max(kHeadersReserveBytes, 2 * (at + length)));
    headers.resize(at + length);
    char* p = headers.data() + at;
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
  }
  /// The value of a header set with set() (linear search: for tests and rare paths).
  [[nodiscard]] std::string_view header(std::string_view name) const;
};

/// A JSON reply with the given status and body.
Reply json_response(unsigned status, std::string body);

} // namespace tandem::http
