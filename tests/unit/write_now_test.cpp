#include "http/write_now.hpp"

#include <gtest/gtest.h>

#include <boost/asio.hpp>

#include <string>

namespace tandem::http {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

/// A connected pair of loopback sockets; the writer in non-blocking mode.
struct SocketPair {
  asio::io_context io;
  tcp::socket writer{io};
  tcp::socket reader{io};
  SocketPair() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    writer.connect(acceptor.local_endpoint());
    acceptor.accept(reader);
    writer.non_blocking(true);
  }
};

TEST(WriteNow, ASmallMessageGoesOutWhole) {
  SocketPair pair;
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n";
  const std::string body = "{}";
  boost::system::error_code ec;
  const std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
  EXPECT_EQ(write_now(pair.writer, buffers, ec), head.size() + body.size());
  EXPECT_FALSE(ec);
  std::string got(head.size() + body.size(), '\0');
  asio::read(pair.reader, asio::buffer(got));
  EXPECT_EQ(got, head + body);
}

TEST(WriteNow, AFullSocketTakesPartThenNothingWithoutAnErrorOrBlocking) {
  SocketPair pair;
  const std::string chunk(1 << 20, 'x');
  boost::system::error_code ec;
  std::size_t first = write_now(pair.writer, asio::buffer(chunk), ec);
  ASSERT_FALSE(ec);
  ASSERT_GT(first, 0U);
  // Nobody reads: the kernel's buffers fill up, and then a write takes nothing.
  std::size_t taken = first;
  for (int i = 0; i < 64 && taken > 0; ++i) {
    taken = write_now(pair.writer, asio::buffer(chunk), ec);
    ASSERT_FALSE(ec);
  }
  EXPECT_EQ(taken, 0U);
}

TEST(WriteNow, AClosedPeerIsAnError) {
  SocketPair pair;
  pair.reader.close();
  const std::string chunk(1 << 16, 'x');
  boost::system::error_code ec;
  for (int i = 0; i < 64 && !ec; ++i) write_now(pair.writer, asio::buffer(chunk), ec);
  EXPECT_TRUE(ec == asio::error::broken_pipe || ec == asio::error::connection_reset) << ec.message();
}

} // namespace
} // namespace tandem::http
