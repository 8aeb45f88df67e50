#pragma once
// Asynchronous HTTP/1.1 server with keep-alive on Boost.Beast and C++20 coroutines. Every
// limit (connections, header bytes, body bytes, bodies in flight, idle time) is enforced,
// counted in a metric and answered with a clear error.
#include "config/config.hpp"
#include "base/status.hpp"
#include "http/body_budget.hpp"
#include "http/body_recycler.hpp"
#include "http/types.hpp"
#include "telemetry/metrics.hpp"

#include <chrono>
#include <functional>

#include <boost/intrusive/list.hpp>
#include <string>

namespace tandem::http {

/// Handles one request; runs on the server's io thread. Must not block.
using Handler = std::function<asio::awaitable<Reply>(Request&)>;

class Server {
public:
  /// The server, its handler and the registry live on one io_context thread.
  Server(asio::io_context& io, HttpLimits limits, Handler handler, MetricsRegistry& metrics);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds and listens; port 0 picks a free port. Returns the bound endpoint.
  Result<tcp::endpoint> listen(const std::string& host, unsigned short port);
  void start();
  /// Stops accepting; open connections finish their current request and close.
  void stop();

private:
  /// A connection's place in the deadline list. Each phase (idle, reading a request, writing a
  /// reply) has server.limits.idle_timeout; handling a request has the request's own deadline
  /// instead. Lives in the session's coroutine frame and unlinks itself when the session ends.
  /// One sweeper closes the connections whose deadline has passed, so the hot path arms no
  /// timer (re-arming is a clock read and a relink), and an idle connection holds no timer,
  /// parser or large buffer.
  struct Watch : boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
    tcp::socket* socket = nullptr;
    std::chrono::steady_clock::time_point deadline;
    bool expired = false;
  };

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> session(tcp::socket socket);
  asio::awaitable<void> reject_connection(tcp::socket socket);
  asio::awaitable<void> deadline_sweeper();
  /// Starts a phase: the connection must finish it within the idle timeout from now.
  void arm(Watch& watch);

  asio::io_context& io_;
  HttpLimits limits_;
  Handler handler_;
  tcp::acceptor acceptor_;
  bool stopping_ = false;
  std::size_t open_connections_ = 0;
  Gauge& connections_gauge_;
  Counter& connections_accepted_;
  Family<Counter>& rejected_;
  // Oldest deadline first: every phase has the same timeout, so appending keeps the order.
  boost::intrusive::list<Watch, boost::intrusive::constant_time_size<false>> watched_;
  BodyRecycler bodies_;
  BodyBudget body_budget_; // server.limits.max_inflight_body_bytes
  asio::steady_timer sweeper_;
};

} // namespace tandem::http
