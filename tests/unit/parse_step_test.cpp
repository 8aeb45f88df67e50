// parse_step() and parse_end(): the synchronous halves of parse_buffered(), which the server and
// the upstream pool call directly so that a message already in the buffer costs no coroutine;
// and parse_buffered() itself, for a head split across reads.
#include "http/parse_buffered.hpp"
#include "http/upstream_response.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>

namespace tandem::http {
namespace {

void append(beast::flat_buffer& buffer, std::string_view bytes) {
  auto space = buffer.prepare(bytes.size());
  std::memcpy(space.data(), bytes.data(), bytes.size());
  buffer.commit(bytes.size());
}

std::string rest(const beast::flat_buffer& buffer) {
  return beast::buffers_to_string(buffer.data());
}

constexpr auto head_done = [](const auto& p) { return p.is_header_done(); };
constexpr auto message_done = [](const auto& p) { return p.is_done(); };

TEST(ParseStep, AWholeHeadInTheBufferIsParsedAndTheBodyLeftThere) {
  beast::flat_buffer buffer;
  append(buffer, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
  bhttp::request_parser<AppendStringBody> parser;
  EXPECT_FALSE(parse_step(buffer, parser, head_done));
  EXPECT_EQ(parser.get().target(), "/v2/models/m/infer");
  EXPECT_EQ(parser.content_length().value_or(0), 4U);
  // The head parser stops at the head: the body is the caller's to read.
  EXPECT_FALSE(parser.is_done());
}

TEST(ParseStep, APartialHeadAsksForMoreThenCompletes) {
  beast::flat_buffer buffer;
  bhttp::request_parser<AppendStringBody> parser;
  EXPECT_EQ(parse_step(buffer, parser, head_done), bhttp::error::need_more); // nothing yet
  append(buffer, "GET /metrics HTTP/1.1\r\nHo");
  EXPECT_EQ(parse_step(buffer, parser, head_done), bhttp::error::need_more);
  append(buffer, "st: x\r\n\r\n");
  EXPECT_FALSE(parse_step(buffer, parser, head_done));
  EXPECT_EQ(parser.get().target(), "/metrics");
  EXPECT_EQ(rest(buffer), "");
}

TEST(ParseStep, AResponseStopsAtItsEndAndLeavesTheNextMessageBuffered) {
  beast::flat_buffer buffer;
  append(buffer, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n");
  UpstreamResponseParser parser;
  parser.eager(true);
  EXPECT_FALSE(parse_step(buffer, parser, message_done));
  EXPECT_EQ(parser.response.status, 200U);
  EXPECT_EQ(parser.response.body, "ok");
  EXPECT_EQ(rest(buffer), "HTTP/1.1 204 No Content\r\n\r\n");
}

TEST(ParseStep, TheParsersErrorsComeBackAsTheyAre) {
  beast::flat_buffer buffer;
  append(buffer, "GET / HTTP/1.1\r\nX-Long: " + std::string(200, 'a') + "\r\n\r\n");
  bhttp::request_parser<AppendStringBody> parser;
  parser.header_limit(64);
  EXPECT_EQ(parse_step(buffer, parser, head_done), bhttp::error::header_limit);

  beast::flat_buffer garbage;
  append(garbage, "NOT HTTP AT ALL\r\n\r\n");
  bhttp::request_parser<AppendStringBody> other;
  const auto ec = parse_step(garbage, other, head_done);
  EXPECT_TRUE(ec);
  EXPECT_NE(ec, bhttp::error::need_more);
}

TEST(ParseEnd, EndOfStreamBeforeAnythingPartialMessagesAndOtherErrors) {
  {
    bhttp::request_parser<AppendStringBody> parser;
    EXPECT_EQ(parse_end(asio::error::eof, parser, head_done), bhttp::error::end_of_stream);
  }
  {
    beast::flat_buffer buffer;
    append(buffer, "GET / HTTP/1.1\r\n");
    bhttp::request_parser<AppendStringBody> parser;
    ASSERT_EQ(parse_step(buffer, parser, head_done), bhttp::error::need_more);
    EXPECT_EQ(parse_end(asio::error::eof, parser, head_done), bhttp::error::partial_message);
  }
  {
    bhttp::request_parser<AppendStringBody> parser;
    EXPECT_EQ(parse_end(asio::error::connection_reset, parser, head_done), asio::error::connection_reset);
  }
  {
    // A response without a length runs to the end of the connection: the end completes it.
    beast::flat_buffer buffer;
    append(buffer, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it");
    UpstreamResponseParser parser;
    parser.eager(true);
    ASSERT_EQ(parse_step(buffer, parser, message_done), bhttp::error::need_more);
    EXPECT_FALSE(parse_end(asio::error::eof, parser, message_done));
    EXPECT_EQ(parser.response.body, "all of it");
  }
}

// parse_buffered() over a real loopback connection: what the server calls when parse_step()
// found only part of a head in the buffer. It reads first, then parses what it read after what
// was already buffered.
struct Loopback {
  asio::io_context io;
  tcp::socket client{io};
  tcp::socket server{io};
  beast::flat_buffer buffer;
  bhttp::request_parser<AppendStringBody> parser;
  Loopback() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
  /// What the server's earlier read left in the buffer: parse_step() must ask for more.
  boost::system::error_code begin(std::string_view first_part) {
    append(buffer, first_part);
    return parse_step(buffer, parser, head_done);
  }
  boost::system::error_code finish() {
    boost::system::error_code result = bhttp::error::need_more;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          result = co_await parse_buffered(server, buffer, parser, head_done);
        },
        asio::detached);
    io.run();
    return result;
  }
};

TEST(ParseBuffered, ReadsTheRestOfAHeadThatParseStepBegan) {
  Loopback loop;
  ASSERT_EQ(loop.begin("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Le"), bhttp::error::need_more);
  asio::write(loop.client, asio::buffer(std::string_view("ngth: 4\r\n\r\nbody")));
  EXPECT_FALSE(loop.finish());
  EXPECT_EQ(loop.parser.get().target(), "/v2/models/m/infer");
  EXPECT_EQ(loop.parser.content_length().value_or(0), 4U);
  EXPECT_EQ(rest(loop.buffer), "body");
}

TEST(ParseBuffered, APeerThatClosesMidHeadEndsInAPartialMessage) {
  Loopback loop;
  ASSERT_EQ(loop.begin("POST /v2/models/m/infer HTTP/1.1\r\nHo"), bhttp::error::need_more);
  loop.client.close();
  EXPECT_EQ(loop.finish(), bhttp::error::partial_message);
}

} // namespace
} // namespace tandem::http
