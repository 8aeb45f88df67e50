// The server's request parsing: Beast's request_parser over AppendStringBody, with the limits
// Server::session sets (server.limits.max_body_bytes and max_header_bytes, defaults here), fed by
// parse_step() as a connection's buffer would be: the head first, then the body, then the end of
// the stream. The input is split in two reads at a position taken from its first byte, so
// messages that straddle reads are covered too.
#include "config/config.hpp"
#include "http/parse_buffered.hpp"
#include "http/types.hpp"

#include <cstddef>
#include <cstdint>

namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const char* bytes = reinterpret_cast<const char*>(data) + 1;
  const std::size_t length = size - 1;
  const std::size_t first = data[0] % (length + 1);  // bytes in the first read

  const tandem::HttpLimits limits;
  bhttp::request_parser<tandem::http::AppendStringBody> parser;
  parser.body_limit(limits.max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));

  boost::beast::flat_buffer buffer;
  const auto feed = [&](const char* from, std::size_t n) {
    auto space = buffer.prepare(n);
    boost::asio::buffer_copy(space, boost::asio::buffer(from, n));
    buffer.commit(n);
  };
  constexpr auto head_done = [](const auto& p) { return p.is_header_done(); };
  constexpr auto body_done = [](const auto& p) { return p.is_done(); };

  feed(bytes, first);
  auto ec = tandem::http::parse_step(buffer, parser, head_done);
  if (ec == bhttp::error::need_more) {
    feed(bytes + first, length - first);
    ec = tandem::http::parse_step(buffer, parser, head_done);
  } else {
    feed(bytes + first, length - first);
  }
  if (ec == bhttp::error::need_more) ec = tandem::http::parse_end(boost::asio::error::eof, parser, head_done);
  if (ec || parser.is_done()) return 0;

  // The head is in: what the server reads of it, then the body.
  const auto& head = parser.get();
  (void)head.method();
  (void)head.target();
  (void)head.keep_alive();
  (void)parser.content_length();
  (void)parser.chunked();
  ec = tandem::http::parse_step(buffer, parser, body_done);
  if (ec == bhttp::error::need_more) ec = tandem::http::parse_end(boost::asio::error::eof, parser, body_done);
  if (!ec) {
    auto request = parser.release();
    (void)request.body().size();
  }
  return 0;
}
