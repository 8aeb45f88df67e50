#include "http/upstream_pool.hpp"

#include "base/clock.hpp"

#include "http/parse_buffered.hpp"
#include "http/transfer_all.hpp"
#include "http/wire.hpp"
#include "http/write_now.hpp"

#include <array>
#include <tuple>

namespace tandem::http {

UpstreamPool::UpstreamPool(asio::any_io_executor executor, const tcp::endpoint& endpoint,
                           std::size_t max_idle, std::size_t max_response_bytes)
    : executor_(std::move(executor)), endpoint_(endpoint), max_idle_(max_idle),
      max_response_bytes_(max_response_bytes) {}

void UpstreamPool::arm(const std::shared_ptr<Connection>& connection, std::chrono::steady_clock::time_point deadline) {
  connection->timed_out = false;
  connection->watchdog.expires_at(deadline);
  // The handler keeps the connection alive until it has run, and does nothing unless this
  // exchange is still the current one: a deadline that fired just as the answer arrived must
  // not shut the socket of a connection that went back to the idle set.
  connection->watchdog.async_wait([connection, exchange = ++connection->exchange](const boost::system::error_code& ec) {
    if (ec || connection->exchange != exchange) return;
    connection->timed_out = true;
    boost::system::error_code ignored;
    connection->socket.cancel(ignored);
    connection->socket.shutdown(tcp::socket::shutdown_both, ignored);
  });
}

void UpstreamPool::disarm(Connection& connection) {
  ++connection.exchange;
  connection.watchdog.cancel();
}

void UpstreamPool::close() {
  closed_ = true;
  idle_.clear();
}

asio::awaitable<Result<UpstreamResponse>> UpstreamPool::send(std::string_view head, std::string_view body,
                                                     std::chrono::steady_clock::time_point deadline) {
  bool fresh_only = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_ptr<Connection> connection;
    bool reused = false;
    if (fresh_only) {
      // One reused connection was dead: the others idled as long, so they go too, and the
      // retry is on a new connection (never on another possibly-stale one).
      idle_.clear();
    }
    // Connections idle for longer than the worker keeps them (its idle timeout) are closed.
    const auto now = coarse_steady_now(); // idle limits are seconds
    while (!idle_.empty() && now - idle_.back()->idle_since > kMaxIdle) idle_.pop_back();
    if (!idle_.empty()) {
      connection = std::move(idle_.back());
      idle_.pop_back();
      reused = true;
    } else {
      connection = std::make_shared<Connection>(executor_);
      arm(connection, deadline);
      auto [ec] = co_await connection->socket.async_connect(endpoint_, asio::as_tuple(asio::use_awaitable));
      if (ec) {
        disarm(*connection);
        if (connection->timed_out)
          co_return make_error(ErrorCode::deadline_exceeded, "deadline passed while connecting to the worker");
        co_return make_error(ErrorCode::upstream_error, "cannot connect to worker: " + ec.message());
      }
      boost::system::error_code opt_ec;
      connection->socket.set_option(tcp::no_delay(true), opt_ec);
      connection->socket.non_blocking(true, opt_ec);  // for write_now()
    }
    if (reused) arm(connection, deadline);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head.data(), head.size()),
                                              asio::buffer(body.data(), body.size())};
    beast::buffers_suffix<std::array<asio::const_buffer, 2>> unsent(buffers);
    boost::system::error_code write_ec;
    unsent.consume(write_now(connection->socket, unsent, write_ec));
    if (!write_ec && beast::buffer_bytes(unsent) > 0)
      std::tie(write_ec, std::ignore) = co_await asio::async_write(connection->socket, unsent, TransferAll{},
                                                                   asio::as_tuple(asio::use_awaitable));
    if (write_ec) {
      disarm(*connection);
      if (connection->timed_out)
        co_return make_error(ErrorCode::deadline_exceeded, "deadline passed while sending to the worker");
      if (reused) {  // stale keep-alive connection
        fresh_only = true;
        continue;
      }
      co_return make_error(ErrorCode::upstream_error, "sending to worker failed: " + write_ec.message());
    }
    // The parser lives with the connection and the read loop is inline, not in
    // parse_buffered(): this frame stays small and is the only one per exchange.
    UpstreamResponseParser& parser = connection->parser.emplace();
    parser.body_limit(max_response_bytes_);
    parser.eager(true);  // header and body in one put()
    constexpr auto done = [](const auto& p) { return p.is_done(); };
    boost::system::error_code read_ec = parse_step(connection->buffer, parser, done);
    while (read_ec == bhttp::error::need_more) {
      auto [ec, n] = co_await connection->socket.async_read_some(read_space(connection->buffer),
                                                                 asio::as_tuple(asio::use_awaitable));
      if (ec) {
        read_ec = parse_end(ec, parser, done);
        break;
      }
      connection->buffer.commit(n);
      read_ec = parse_step(connection->buffer, parser, done);
    }
    disarm(*connection);
    if (read_ec) {
      if (connection->timed_out)
        co_return make_error(ErrorCode::deadline_exceeded, "no answer from the worker before the deadline (or per_try_timeout)");
      // A reused connection closed by the peer before it answered anything: the request was
      // not processed, so one more try on a fresh connection is safe.
      if (reused && (read_ec == bhttp::error::end_of_stream || read_ec == asio::error::connection_reset) &&
          !parser.got_some()) {
        fresh_only = true;
        continue;
      }
      co_return make_error(ErrorCode::upstream_error, "reading the worker's response failed: " + read_ec.message());
    }
    UpstreamResponse response = std::move(parser.response);
    if (response.keep_alive && !closed_ && !connection->timed_out && idle_.size() < max_idle_ &&
        connection->buffer.size() == 0) {
      connection->idle_since = coarse_steady_now();
      idle_.push_back(std::move(connection));
    }
    co_return response;
  }
  co_return make_error(ErrorCode::upstream_error, "worker closed the connection");
}

} // namespace tandem::http
