#pragma once
// What the job manager needs of the request path, as an interface: the gateway implements it
// (jobs run through the same validation, router, tiers, audit and traces as synchronous
// requests), and the job manager does not depend on the gateway's internals.
#include "base/clock.hpp"
#include "base/status.hpp"
#include "http/types.hpp"

#include <string_view>

namespace tandem::jobs {

/// Workers of an endpoint in RunPod's health terms.
struct WorkerCounts {
  int idle = 0;          // ready, serving nothing
  int initializing = 0;  // starting (cold)
  int ready = 0;         // ready, busy or not
  int running = 0;       // ready and serving at least one request
  int throttled = 0;     // ejected by outlier detection
};

/// Lives on the io thread; every call is made there.
class JobExecutor {
public:
  virtual ~JobExecutor() = default;
  [[nodiscard]] virtual bool has_endpoint(std::string_view endpoint) const = 0;
  /// Requests the endpoint's pools can serve at once when fully scaled up: the default number
  /// of its jobs executing at once.
  [[nodiscard]] virtual int capacity(std::string_view endpoint) const = 0;
  /// Checks a job's input as the endpoint would check an inference request, so that a bad
  /// input is refused when the job is submitted rather than failing later.
  [[nodiscard]] virtual Status validate(std::string_view endpoint, std::string_view input_json) const = 0;
  [[nodiscard]] virtual WorkerCounts worker_counts(std::string_view endpoint) const = 0;
  /// Runs one inference request for a job: a POST /v2/models/{endpoint}/infer whose deadline
  /// is `deadline` (the job's execution timeout) instead of the endpoint's SLO timeout.
  virtual boost::asio::awaitable<http::Reply> execute(std::string_view endpoint, http::Request& request,
                                                      TimePoint deadline) = 0;
};

} // namespace tandem::jobs
