#pragma once
// The engine's contract: what every frontend (v2 REST, the RunPod-compatible job API, batch)
// asks of the request path and what it gets back, as typed values. No HTTP here: a frontend
// maps its protocol onto an InferenceRequest and maps the InferenceResult back, so that a new
// frontend, a pipeline step or the simulator calls the same engine without building a fake
// HTTP request or parsing x-tandem-* headers.
#include "base/clock.hpp"
#include "base/status.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::engine {

enum class Priority : std::uint8_t { low, normal, high };
/// low, normal or high; nullopt for anything else.
std::optional<Priority> parse_priority(std::string_view text);
std::string_view to_string(Priority priority);

/// One inference request. Every view must outlive the engine's call (the frontend's request,
/// a job's own copy of its input).
struct InferenceRequest {
  std::string_view endpoint;
  /// A version name or digest the caller pins; empty: the endpoint's split decides.
  std::string_view version;
  /// The v2 JSON body as received. The engine validates it against the version's schema (the
  /// schema belongs to the version the split picks), then forwards it unchanged.
  std::string_view body;
  /// Replaces the endpoint's SLO timeout (a job's execution deadline); unset: the SLO's.
  std::optional<TimePoint> deadline;
  /// The caller's own limit, which only ever shortens the deadline; 0: none.
  std::chrono::milliseconds timeout_ms{0};
  Priority priority = Priority::normal;
  std::string_view traceparent;        // W3C trace context, as received; empty: a new trace
  std::string_view client_request_id;  // the caller's id, kept beside the engine's own
  std::string_view session;            // sticky key for a version split
  std::string_view tenant;             // placeholder until tenants exist: unused
};

/// What happened to an InferenceRequest.
struct InferenceResult {
  /// Unset when a worker answered with 2xx. A worker's 4xx is `worker_rejected_input`, with
  /// `worker_status` and the worker's own body; every other code means tandem answered itself
  /// and `error->message` says why.
  std::optional<Error> error;
  int worker_status = 0;        // the worker's HTTP status when one answered; 0: none did
  std::string body;             // the worker's answer
  std::string content_type;     // the worker's, when not application/json
  double retry_after_s = 0;     // for a refusal: when trying again makes sense; 0: not said
  std::string request_id;       // the engine's id for this request (its audit record's key)
  std::string client_request_id;
  std::string traceparent;      // the engine's span, for the caller to return
  std::string tier = "none";    // dedicated, serverless, none: the capacity kind that answered
  std::string pool;             // the pool that answered (one per capacity kind today)
  std::string worker;           // the worker that answered; empty: none did
  std::string model_version;    // the version that served it (or would have)
  int attempts = 0;             // upstream attempts made
  double queue_ms = 0;          // waiting for a worker slot, all attempts
  std::optional<double> cold_start_ms;  // the answering worker's start, when this request waited for it
  double upstream_ms = 0;       // on the worker, all attempts
  double total_ms = 0;          // from arrival to this result
  double cost_usd = 0;          // attributed to this request, all attempts
  double attempt_cost_usd = 0;  // of the attempt that answered
  /// Work the caller need not wait for (the audit digest of a large body): the caller runs it
  /// once its answer is on its way, with the request body it passed in. Usually empty.
  std::function<void(std::string_view body)> after_answer;

  [[nodiscard]] bool ok() const { return !error && worker_status >= 200 && worker_status < 300; }
  /// The HTTP status a frontend answers with: the worker's when one answered, else the code's.
  [[nodiscard]] int http_status() const;
};

/// Workers of an endpoint in RunPod's health terms.
struct WorkerCounts {
  int idle = 0;          // ready, serving nothing
  int initializing = 0;  // starting (cold)
  int ready = 0;         // ready, busy or not
  int running = 0;       // ready and serving at least one request
  int throttled = 0;     // ejected by outlier detection
};

/// The request path as the frontends see it. Lives on the io thread; every call is made there.
class Engine {
public:
  virtual ~Engine() = default;
  [[nodiscard]] virtual bool has_endpoint(std::string_view endpoint) const = 0;
  /// Requests the endpoint's pools can serve at once when fully scaled up.
  [[nodiscard]] virtual int capacity(std::string_view endpoint) const = 0;
  /// Checks an input as the endpoint would check an inference request, so that a caller that
  /// runs it later (a job) can refuse a bad input at once.
  [[nodiscard]] virtual Status validate(std::string_view endpoint, std::string_view input_json) const = 0;
  [[nodiscard]] virtual WorkerCounts worker_counts(std::string_view endpoint) const = 0;
  /// Serves one request: validation, version split, routing, pools, retries, cost, audit,
  /// spans and the outcome bus, as for every frontend.
  virtual boost::asio::awaitable<InferenceResult> infer(const InferenceRequest& request) = 0;
};

} // namespace tandem::engine
