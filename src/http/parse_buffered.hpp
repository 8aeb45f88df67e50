#pragma once
// Runs a Beast parser over what a connection's buffer holds, reading more only when it must.
//
// A small message usually arrives in one read and is parsed by one put(). Beast's async_read and
// async_read_header run the same parser inside composed operations that post their completion
// through the scheduler, which cost more than the parsing itself. Used for client request heads
// (the body is read separately) and for whole worker responses.
#include "http/types.hpp"

namespace tandem::http {

/// Feeds `parser` from `buffer` (consuming what it uses) and reads from `socket` into `buffer`
/// until `done(parser)`. Returns the parser's error (e.g. header_limit, body_limit),
/// end_of_stream when the peer closed before sending anything, or the read's error.
template <bool isRequest, class Done>
asio::awaitable<boost::system::error_code> parse_buffered(tcp::socket& socket, beast::flat_buffer& buffer,
                                                          bhttp::basic_parser<isRequest>& parser, Done done) {
  for (;;) {
    boost::system::error_code ec;
    if (buffer.size() > 0) {
      const std::size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (done(parser)) co_return boost::system::error_code{};
      if (ec && ec != bhttp::error::need_more) co_return ec;
      if (!ec && used > 0 && buffer.size() > 0) continue;  // more of the message is buffered
    }
    auto [read_ec, n] = co_await socket.async_read_some(buffer.prepare(beast::read_size(buffer, 65536)),
                                                        asio::as_tuple(asio::use_awaitable));
    if (read_ec == asio::error::eof) {
      if (!parser.got_some()) co_return bhttp::error::end_of_stream;
      parser.put_eof(ec);  // a partial message, or a body that runs to the end of the connection
      if (!ec && !done(parser)) ec = bhttp::error::partial_message;
      co_return ec;
    }
    if (read_ec) co_return read_ec;
    buffer.commit(n);
  }
}

} // namespace tandem::http
