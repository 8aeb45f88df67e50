#pragma once
// A tiny OTLP/HTTP (JSON) trace receiver for tests: a real HTTP/1.1 server on 127.0.0.1 that
// records what exporters post to it. Not a fake of the exporter under test: the exporter talks
// to it over a real socket.
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tandem::testing {

/// Serves any number of keep-alive connections on its own thread (one io_context); answers
/// every POST with 200 "{}" unless told to fail. Accessors are thread-safe and return copies.
class OtlpReceiver {
public:
  struct Request {
    std::string target;
    std::string content_type;
    std::string body;
    int status = 0;             // what the receiver answered
    std::size_t span_count = 0; // spans in the body (recorded by spans() only when status was 2xx)
  };
  struct ReceivedSpan {
    std::string service_name; // the resource's service.name
    boost::json::object span;
  };

  /// Binds 127.0.0.1:0 and starts serving.
  OtlpReceiver();
  /// Calls stop().
  ~OtlpReceiver();
  OtlpReceiver(const OtlpReceiver&) = delete;
  OtlpReceiver& operator=(const OtlpReceiver&) = delete;

  unsigned short port() const { return port_; }
  /// "http://127.0.0.1:PORT/v1/traces"
  std::string url() const;

  /// Bodies of every POST received, failed ones included, in arrival order.
  std::vector<std::string> bodies() const;
  std::vector<Request> requests() const;
  /// Every span of every accepted (2xx) POST, in arrival order.
  std::vector<boost::json::object> spans() const;
  std::vector<ReceivedSpan> received_spans() const;
  std::size_t span_count() const;
  /// TCP connections accepted so far.
  std::size_t connections() const;
  /// Bodies that were not a parseable ExportTraceServiceRequest.
  std::size_t malformed_bodies() const;

  /// Answers the next `n` POSTs with `status` (recorded, spans not accepted).
  void fail_next(int n, int status = 503);
  /// Answers with "Connection: close" and closes, so every POST needs a new connection.
  void close_after_each(bool close);

  /// Waits (on a condition variable, not a sleep) until at least `count` spans were accepted.
  bool wait_for_spans(std::size_t count, std::chrono::milliseconds timeout) const;

  struct State; // shared by the server's coroutines and the accessors; defined in the .cpp

  /// Stops serving and closes the listening socket and every connection; from then on a
  /// connect to port() is refused. Idempotent.
  void stop();

private:
  std::shared_ptr<State> state_; // shared with the connection coroutines
  std::unique_ptr<boost::asio::io_context> io_;
  std::thread thread_;
  unsigned short port_ = 0;
};

} // namespace tandem::testing
