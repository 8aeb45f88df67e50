#pragma once
// Asynchronous HTTP/1.1 server with keep-alive on Boost.Beast and C++20 coroutines. Every
// limit (connections, header bytes, body bytes, idle time) is enforced, counted in a metric
// and answered with a clear error.
#include "core/config.hpp"
#include "core/status.hpp"
#include "http/types.hpp"
#include "telemetry/metrics.hpp"

#include <chrono>
#include <functional>
#include <list>
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
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> session(tcp::socket socket);
  asio::awaitable<void> reject_connection(tcp::socket socket);
  asio::awaitable<void> idle_sweeper();

  asio::io_context& io_;
  HttpLimits limits_;
  Handler handler_;
  tcp::acceptor acceptor_;
  bool stopping_ = false;
  std::size_t open_connections_ = 0;
  Gauge& connections_gauge_;
  Counter& connections_accepted_;
  Family<Counter>& rejected_;
  // Connections waiting for their next request. One sweeper closes those idle too long, so an
  // idle connection holds only a readiness wait: no timer, buffer or parser of its own.
  struct IdleConnection {
    tcp::socket* socket;
    std::chrono::steady_clock::time_point since;
    bool expired = false;
  };
  std::list<IdleConnection> idle_;  // oldest first
  asio::steady_timer sweeper_;
};

} // namespace tandem::http
