#pragma once
// Keep-alive connections from the gateway to one worker. Bounded idle set; a reused
// connection that turns out to be closed by the peer is retried once on a fresh connection
// (that is not an application retry: the request never reached the worker).
#include "base/status.hpp"
#include "http/types.hpp"
#include "http/upstream.hpp"
#include "http/upstream_response.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

namespace tandem::http {

class UpstreamPool final : public Upstream {
public:
  /// Lives on the io thread that owns the executor. close() drops idle connections.
  UpstreamPool(asio::any_io_executor executor, const tcp::endpoint& endpoint, std::size_t max_idle,
               std::size_t max_response_bytes);

  /// Sends the request and reads the response before the deadline. Errors:
  /// timeout (deadline passed), upstream_error (connect/transport failure).
  /// `head` is a complete request head (see wire.hpp), `body` goes after it uncopied.
  asio::awaitable<Result<UpstreamResponse>> send(std::string_view head, std::string_view body,
                                                 std::chrono::steady_clock::time_point deadline) override;
  void close() override;

private:
  asio::any_io_executor executor_;
  tcp::endpoint endpoint_;
  std::size_t max_idle_;
  std::size_t max_response_bytes_;
  // A connection keeps its read buffer, so a reused connection allocates nothing to read.
  struct Connection {
    explicit Connection(const asio::any_io_executor& executor) : socket(executor), watchdog(executor) {}
    tcp::socket socket;
    // One timer for a whole exchange (connect, write, read), not one per socket operation.
    asio::steady_timer watchdog;
    beast::flat_buffer buffer;
    std::uint64_t exchange = 0;  // which exchange the watchdog guards
    bool timed_out = false;
    std::chrono::steady_clock::time_point idle_since{};
    std::optional<UpstreamResponseParser> parser; // the current exchange's (a parser reads one message)
  };
  /// Shuts the connection's socket at the deadline unless disarm() came first.
  static void arm(const std::shared_ptr<Connection>& connection, std::chrono::steady_clock::time_point deadline);
  static void disarm(Connection& connection);
  // Below the reference worker's keep-alive idle timeout (60 s by default): a connection the
  // worker may already have closed is not reused.
  static constexpr std::chrono::seconds kMaxIdle{30};
  std::vector<std::shared_ptr<Connection>> idle_;
  bool closed_ = false;
};

} // namespace tandem::http
