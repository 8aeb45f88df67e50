#pragma once
// How the engine sends one inference to one worker and reads its answer. Keep-alive HTTP/1.1
// (UpstreamPool) is the usual one; a provider whose workers speak something else (a cloud's
// job API, the simulator's workers) supplies its own.
#include "base/status.hpp"
#include "http/types.hpp"
#include "http/upstream_response.hpp"

#include <chrono>
#include <string_view>

namespace tandem::http {

class Upstream {
public:
  virtual ~Upstream() = default;
  Upstream() = default;
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;
  /// Sends the request and reads the response before the deadline. Errors: deadline_exceeded
  /// (the deadline passed), upstream_error (the worker could not be reached or went away).
  /// `head` is a complete HTTP/1.1 request head (see wire.hpp), `body` the v2 request after it.
  virtual asio::awaitable<Result<UpstreamResponse>> send(std::string_view head, std::string_view body,
                                                         std::chrono::steady_clock::time_point deadline) = 0;
  /// No more requests: drop what is kept for the next one (idle connections).
  virtual void close() = 0;
};

} // namespace tandem::http
