#include "base/decimal.hpp"
#include "http/upstream_response.hpp"
#include "http/wire.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tandem::http {
namespace {

std::string joined(const ResponseHead& head) {
  std::string out;
  for (const auto& piece : head.buffers()) out.append(static_cast<const char*>(piece.data()), piece.size());
  return out;
}

TEST(ResponseHead, PiecesMakeTheWholeHeadWithTheReplysLines) {
  Reply reply;
  reply.body = "{\"ok\":true}";
  reply.set("x-request-id", "abc");
  reply.set("x-tandem-tier", "dedicated");
  EXPECT_EQ(joined(ResponseHead(reply, true)),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: abc\r\n"
            "x-tandem-tier: dedicated\r\nContent-Length: 11\r\n\r\n");
  EXPECT_EQ(response_head(reply, true), joined(ResponseHead(reply, true)));
}

TEST(ResponseHead, OwnContentTypeStatusReasonAndConnectionClose) {
  Reply reply;
  reply.status = 431;
  reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
  EXPECT_EQ(joined(ResponseHead(reply, false)),
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; version=0.0.4; "
            "charset=utf-8\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST(ReplySet, ManyLinesGrowPastTheFirstReservationIntact) {
  Reply reply;
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    const std::string name = "x-line-" + std::to_string(i);
    const std::string value(static_cast<std::size_t>(i), 'v');
    reply.set(name, value);
    expected += name + ": " + value + "\r\n";
  }
  EXPECT_EQ(reply.headers, expected);
  EXPECT_EQ(reply.header("x-line-42"), std::string(42, 'v'));
}

/// Feeds `wire` to the parser in pieces of `step` bytes, as reads would.
boost::system::error_code feed(UpstreamResponseParser& parser, const std::string& wire, std::size_t step) {
  boost::system::error_code ec;
  std::size_t at = 0;
  std::string pending;
  while (at < wire.size() || !pending.empty()) {
    pending += wire.substr(at, step);
    at += step;
    const std::size_t used = parser.put(boost::asio::buffer(pending), ec);
    pending.erase(0, used);
    if (ec == bhttp::error::need_more) {
      ec = {};
      if (at >= wire.size()) break;
      continue;
    }
    if (ec || parser.is_done()) break;
  }
  return ec;
}

TEST(UpstreamResponseParser, KeepsStatusContentTypeAndBodyWhateverTheReadSizes) {
  const std::string wire = "HTTP/1.1 201 Created\r\nServer: w\r\nContent-Type: application/x-test\r\n"
                           "Content-Length: 10\r\n\r\n0123456789";
  for (std::size_t step : {1U, 7U, 4096U}) {
    UpstreamResponseParser parser;
    parser.eager(true);
    ASSERT_FALSE(feed(parser, wire, step)) << step;
    ASSERT_TRUE(parser.is_done()) << step;
    EXPECT_EQ(parser.response.status, 201U);
    EXPECT_EQ(parser.response.content_type, "application/x-test");
    EXPECT_EQ(parser.response.body, "0123456789");
    EXPECT_TRUE(parser.response.keep_alive);
  }
}

TEST(UpstreamResponseParser, ChunkedBodiesAndConnectionClose) {
  UpstreamResponseParser parser;
  parser.eager(true);
  ASSERT_FALSE(feed(parser,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                    5));
  ASSERT_TRUE(parser.is_done());
  EXPECT_EQ(parser.response.body, "hello world");
  EXPECT_TRUE(parser.response.content_type.empty());
  EXPECT_FALSE(parser.response.keep_alive);
}

TEST(UpstreamResponseParser, ABodyOverTheLimitIsRefusedBeforeItIsRead) {
  UpstreamResponseParser parser;
  parser.body_limit(8);
  EXPECT_EQ(feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789", 4096),
            bhttp::error::body_limit);
  EXPECT_TRUE(parser.response.body.empty());
}

TEST(FixedDecimal, RoundsToThePlaceAndPadsWithZeros) {
  EXPECT_EQ(fixed_decimal(0.0, 3), "0.000");
  EXPECT_EQ(fixed_decimal(1.5, 3), "1.500");
  EXPECT_EQ(fixed_decimal(0.0015, 3), "0.002");
  EXPECT_EQ(fixed_decimal(123.4564, 3), "123.456");
  EXPECT_EQ(fixed_decimal(1.1507894722222223e-07, 9), "0.000000115");
  EXPECT_EQ(fixed_decimal(2.5, 0), "3");
  EXPECT_EQ(fixed_decimal(-2.25, 1), "-2.3");
  EXPECT_EQ(fixed_decimal(-0.0001, 3), "0.000");
  EXPECT_EQ(fixed_decimal(12.0, 1), "12.0");
  // Every place of the fraction, written two digits at a time (odd and even precisions).
  EXPECT_EQ(fixed_decimal(0.987654321, 9), "0.987654321");
  EXPECT_EQ(fixed_decimal(3.14159265, 6), "3.141593");
  EXPECT_EQ(fixed_decimal(7.0061, 2), "7.01");
  EXPECT_EQ(fixed_decimal(-40.123456789, 8), "-40.12345679");
  EXPECT_EQ(fixed_decimal(5.0000001, 7), "5.0000001");
  // Too large for the integer path: the general conversion, same shape.
  EXPECT_EQ(fixed_decimal(1e20, 2), "100000000000000000000.00");
  EXPECT_EQ(fixed_decimal(1.25, 12), "1.250000000000");
}

} // namespace
} // namespace tandem::http
