#pragma once
// The seam between a pool and where its workers run. A provider starts and stops workers and
// says, for each, where it answers, when it is ready and when it is gone; the pool does
// everything else (leases, the FIFO, restarts with backoff, demand, outlier ejection). No pids
// or fork here: `local` (child processes of this host) is one provider; a cluster's jobs or a
// cloud's pods are others, behind the same three events.
#include "base/status.hpp"
#include "http/types.hpp"
#include "http/upstream.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace tandem::pool {

/// Where a ready worker answers.
struct WorkerAddress {
  std::string host;  // as the worker is addressed: the upstream request's Host header
  http::tcp::endpoint endpoint;
  [[nodiscard]] std::string url() const { return "http://" + host + ":" + std::to_string(endpoint.port()); }
};

/// How a started worker ended.
struct WorkerExit {
  enum class Kind : std::uint8_t {
    exited,           // it ran and stopped (or was stopped): `how` says how ("exit code 2")
    start_timed_out,  // it was not ready within the start timeout, and was stopped for it
  };
  Kind kind = Kind::exited;
  std::string how;
};

/// What one worker's provider tells its pool. Called on the io thread, never from inside start().
struct WorkerEvents {
  /// Ready to serve at `address`; `service_ms` is what the worker measured of one request of
  /// its own when it started (0: it did not say).
  std::function<void(const WorkerAddress& address, double service_ms)> ready;
  /// Gone. Exactly once per started worker, after which its handle only answers running() false.
  std::function<void(const WorkerExit& exit)> exited;
  /// A line of its error output (what to show when its start fails).
  std::function<void(const std::string& line)> error_line;
  /// Its error output ended; `last_error` is its last error line (empty if none).
  std::function<void(const std::string& last_error)> output_closed;
};

struct WorkerStart {
  std::string worker_id;
  std::chrono::milliseconds start_timeout{60'000};
};

/// One started worker, as its pool holds it. Destroying the handle detaches it: no event of
/// that worker reaches the pool afterwards (the worker itself is not stopped by that).
class ProviderWorker {
public:
  virtual ~ProviderWorker() = default;
  /// Graceful stop (scale-down, shutdown); the provider escalates if it does not stop.
  virtual void stop() = 0;
  /// Stops it now (a worker that cannot be reached or did not start in time; the last step of
  /// shutdown).
  virtual void kill() = 0;
  /// Started and not yet known gone: what costs money.
  [[nodiscard]] virtual bool running() const = 0;
  /// The provider's own name for it (a pid, a job id), for logs and the admin API.
  [[nodiscard]] virtual std::string instance() const = 0;
};

class Provider {
public:
  virtual ~Provider() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  /// Starts a worker. An Error when it cannot even be started (no events follow then).
  virtual Result<std::unique_ptr<ProviderWorker>> start(const WorkerStart& start, WorkerEvents events) = 0;
  /// How the pool sends requests to a worker that became ready at `address`: keep-alive
  /// HTTP/1.1 to it (at most `max_idle` idle connections, responses up to `max_response_bytes`)
  /// unless the provider's workers speak something else.
  virtual std::shared_ptr<http::Upstream> connect(boost::asio::io_context& io, const WorkerAddress& address,
                                                  std::size_t max_idle, std::size_t max_response_bytes);
};

} // namespace tandem::pool
