#pragma once
// Runs a Beast parser over what a connection's buffer holds, reading more only when it must.
//
// A small message usually arrives in one read and is parsed by one put(). Beast's async_read and
// async_read_header run the same parser inside composed operations that post their completion
// through the scheduler, which cost more than the parsing itself. Used for client request heads
// (the body is read separately) and for whole worker responses.
//
// parse_step() is the synchronous part, for callers that try the buffer first and suspend only
// when it is not enough: a coroutine of its own costs a frame, and frames of mixed sizes defeat
// Asio's small frame cache (it hands out the first cached block that fits).
#include "http/types.hpp"

namespace tandem::http {

/// Feeds `parser` from `buffer`, consuming what it uses. Returns {} once `done(parser)`,
/// need_more when the buffer ran dry first, or the parser's error (e.g. header_limit,
/// body_limit).
template <bool isRequest, class Done>
boost::system::error_code parse_step(beast::flat_buffer& buffer, bhttp::basic_parser<isRequest>& parser,
                                     Done done) {
  for (;;) {
    boost::system::error_code ec;
    if (buffer.size() == 0) return bhttp::error::need_more;
    const std::size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (done(parser)) return {};
    if (ec && ec != bhttp::error::need_more) return ec;
    if (ec || used == 0 || buffer.size() == 0) return bhttp::error::need_more;
    // more of the message is buffered: go on
  }
}

/// After a read that failed with `read_ec` (eof included): the error the parse ends with.
/// end_of_stream when the peer closed before sending anything.
template <bool isRequest, class Done>
boost::system::error_code parse_end(boost::system::error_code read_ec, bhttp::basic_parser<isRequest>& parser,
                                    Done done) {
  if (read_ec != asio::error::eof) return read_ec;
  if (!parser.got_some()) return bhttp::error::end_of_stream;
  boost::system::error_code ec;
  parser.put_eof(ec); // a partial message, or a body that runs to the end of the connection
  if (!ec && !done(parser)) ec = bhttp::error::partial_message;
  return ec;
}

/// The buffer size a read asks for: Beast's growth rule, at most 64 KiB at a time.
inline asio::mutable_buffer read_space(beast::flat_buffer& buffer) {
  return buffer.prepare(beast::read_size(buffer, 65536));
}

/// After parse_step() answered need_more: reads from `socket` into `buffer` and parses until
/// `done(parser)` or an error. (It reads first: stepping again through what is buffered would
/// only rescan it.)
template <bool isRequest, class Done>
asio::awaitable<boost::system::error_code> parse_buffered(tcp::socket& socket, beast::flat_buffer& buffer,
                                                          bhttp::basic_parser<isRequest>& parser, Done done) {
  for (;;) {
    auto [read_ec, n] =
        co_await socket.async_read_some(read_space(buffer), asio::as_tuple(asio::use_awaitable));
    if (read_ec) co_return parse_end(read_ec, parser, done);
    buffer.commit(n);
    const boost::system::error_code ec = parse_step(buffer, parser, done);
    if (ec != bhttp::error::need_more) co_return ec;
  }
}

} // namespace tandem::http
