#pragma once
// The request path: HTTP in, validate against the endpoint's schema, lease a worker slot from
// the endpoint's pool, forward over a pooled keep-alive connection, retry once elsewhere on a
// transport failure or 5xx, answer with the x-tandem-* headers clients rely on, count everything.
#include "base/asio_timers.hpp"
#include "base/clock.hpp"
#include "config/config.hpp"
#include "base/ids.hpp"
#include "http/types.hpp"
#include "engine/inference.hpp"
#include "policy/autoscaler.hpp"
#include "policy/cost_meter.hpp"
#include "policy/outlier.hpp"
#include "gateway/outcome_bus.hpp"
#include "policy/service_time.hpp"
#include "policy/tier_router.hpp"
#include "pool/child_reaper.hpp"
#include "pool/local_provider.hpp"
#include "pool/worker_pool.hpp"
#include "state/audit_writer.hpp"
#include "model/model_manifest.hpp"
#include "telemetry/metrics.hpp"
#include "telemetry/otlp_exporter.hpp"
#include "telemetry/trace_context.hpp"

#include <boost/container/small_vector.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tandem::gateway {

class AdminApi;

struct GatewayOptions {
  std::string self_exe;
  std::vector<std::string> worker_log_args;  // extra arguments for every reference worker
  std::uint64_t seed = 0;
  /// What the pools and the controller wait on; null: Asio timers on the given clock (live).
  /// The simulator passes its own, on its own clock (the same one as `clock`).
  Timers* timers = nullptr;
  /// Makes the provider of a pool; null: every pool's workers are local processes.
  std::function<std::unique_ptr<pool::Provider>(const EndpointConfig&, const ModelManifest&, const PoolConfig&)>
      provider_for;
  // Optional services, owned by the caller and outliving the gateway; null: feature off.
  AdminApi* admin = nullptr;                // /admin/v1/models, /blobs, /requests, /deployments
  registry::AuditWriter* audit = nullptr;   // one record per inference request
  bool audit_input_sha256 = true;            // server.audit.input_digest: sha256
  telemetry::OtlpExporter* tracer = nullptr;  // spans of sampled requests
  double trace_sample_ratio = 1.0;          // for requests without a sampled traceparent
};

/// What one inference request did: filled along the request path, then turned into its audit
/// record and (when sampled) its spans. Times are on the gateway's monotonic clock.
struct InferTrace {
  std::string request_id;         // made here, unique: the audit record's key
  std::string client_request_id;  // the client's x-client-request-id or x-request-id, if acceptable
  std::string trace_id;
  std::string parent_span_id;  // the caller's span, from its traceparent
  telemetry::SpanIdText span_id; // the gateway's server span for this request
  bool sampled = false;
  TimePoint started{};
  std::int64_t started_unix_ns = 0;
  TimePoint validated{};
  TimePoint routed{};
  std::string route_tier;
  std::string route_reason;
  std::string route_candidates;
  std::optional<std::pair<TimePoint, TimePoint>> queue_wait;
  Duration cold_start{0};
  struct Attempt {
    telemetry::SpanIdText span_id;
    std::string worker;
    TimePoint started{};
    TimePoint finished{};
    int status = 0;  // 0: no response
    std::string error;
  };
  boost::container::small_vector<Attempt, 1> attempts; // nearly always one: no allocation for it
  std::string tier = "none";
  std::string worker;
  std::string error_code;
  std::optional<ErrorCode> error;  // unset when a worker answered 2xx
  Duration queue{0};
  Duration upstream{0};
  double cost_usd = 0;
};

/// One pool of an endpoint version, with what the request path keeps beside it.
struct PoolRuntime {
  std::string name;                          // the pool's (PoolConfig::name)
  policy::Tier kind = policy::Tier::dedicated;
  int min_ready = 0;                         // dedicated replicas, serverless min: "warm" for a rollout
  bool scales_from_zero = false;             // serverless with min 0
  std::unique_ptr<pool::WorkerPool> pool;
  std::unique_ptr<policy::CostMeter> cost;
  Counter* cost_total = nullptr;
  int reserved_workers = 0;  // dedicated: billed whether running or not
  double scaledown_window_s = 0;
  policy::ServiceTimeEstimate service;  // time on a worker per request
  Histogram* queue_wait = nullptr;
  // Cached children for the common case (a 200), so the hot path does no label lookups.
  Counter* requests_ok = nullptr;
  Histogram* duration = nullptr;
  std::unique_ptr<policy::Autoscaler> autoscaler;  // serverless pools
  Gauge* desired_workers = nullptr;
  Gauge* panic = nullptr;
  policy::ActivatorLimit activator;
  /// What the router sees of this pool now. Until this pool has measured its service time,
  /// `service_prior_ms` stands in (EndpointRuntime::service_prior_ms).
  [[nodiscard]] policy::TierState state(double service_prior_ms, double cold_start_hint_ms) const;
};

struct EndpointSlot;

/// One model version of an endpoint with its pools. An endpoint has one; during a rollout, two
/// (the stable version and the candidate).
struct EndpointRuntime {
  EndpointConfig config;
  EndpointSlot* slot = nullptr;
  int active = 0;         // inference requests using this runtime right now
  bool retiring = false;  // released by a rollout: stopped once `active` is 0
  bool stopped = false;
  ModelManifest manifest;
  std::string upstream_infer_target;  // /v2/models/{name the worker serves}/infer
  policy::RoutingPolicy routing = policy::RoutingPolicy::dedicated_first;
  std::vector<PoolRuntime> pools;  // in EndpointConfig::pools() order; at most policy::kMaxPools
  policy::RetryBudget retry_budget;
  Gauge* in_flight = nullptr;
  /// The first pool of `kind`; null when there is none.
  [[nodiscard]] const PoolRuntime* first_of(policy::Tier kind) const;
  /// The service time pool `index` is assumed to take until it has measured enough of its own:
  /// what its workers reported of themselves when they started (the reference worker times its
  /// warm-up run), else what another pool's workers reported or measured, else the manifest's
  /// `service_ms`; 0 when unknown.
  [[nodiscard]] double service_prior_ms(std::size_t index) const;
  /// A cold-start estimate for a pool that has not started a worker yet: another pool's
  /// (same model), else an optimistic prior, so that an empty serverless pool is tried (and
  /// learns) rather than refused on a guess.
  [[nodiscard]] double cold_start_hint_ms() const;
  [[nodiscard]] bool any_ready() const;
  /// The latest failed worker start of any pool (in pool order); empty when none.
  [[nodiscard]] std::string last_start_failure() const;
};

/// What clients address by name: the endpoint, with the version(s) serving it.
struct EndpointSlot {
  std::string name;
  EndpointRuntime* stable = nullptr;
  EndpointRuntime* candidate = nullptr;  // a rollout's new version
  int candidate_percent = 0;             // of requests, 0..100
};

class RolloutManager;

class Gateway final : public engine::Engine {
public:
  /// Everything runs on the io thread of `io`. `manifests` are in config.endpoints order.
  Gateway(boost::asio::io_context& io, const Config& config, std::vector<ModelManifest> manifests,
          pool::ChildReaper& reaper, MetricsRegistry& metrics, const Clock& clock,
          GatewayOptions options);
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;
  ~Gateway() override;

  /// Starts the pools and the controller loop (autoscaler and cost metering every tick).
  void start();
  boost::asio::awaitable<http::Reply> handle(http::Request& request);
  void shutdown();
  void kill_remaining();
  [[nodiscard]] bool all_endpoints_ready() const;
  /// Inference requests being served right now (for draining at shutdown).
  [[nodiscard]] std::size_t in_flight() const { return in_flight_total_; }

  // For rollouts (on the io thread).
  [[nodiscard]] EndpointSlot* slot(std::string_view name);
  [[nodiscard]] std::vector<EndpointSlot*> slots();
  /// Creates and starts a runtime for another version of an endpoint.
  EndpointRuntime* add_runtime(const EndpointConfig& config, ModelManifest manifest, const std::string& worker_prefix);
  /// Stops a runtime's workers once its requests are done (checked every controller tick).
  void retire(EndpointRuntime* runtime);
  void set_rollouts(RolloutManager* rollouts) { rollouts_ = rollouts; }
  /// Every finished inference request, published once (rollout arms observe it).
  OutcomeBus& outcomes() { return outcomes_; }
  /// The RunPod-compatible job API under /runpod/v2/ (null: not served).
  void set_job_api(std::function<boost::asio::awaitable<http::Reply>(http::Request&, std::string_view path,
                                                                      std::string_view query)>
                       api) {
    job_api_ = std::move(api);
  }

  // engine::Engine: how jobs (and any frontend without a v2 request) reach the request path.
  [[nodiscard]] bool has_endpoint(std::string_view endpoint) const override;
  [[nodiscard]] int capacity(std::string_view endpoint) const override;
  [[nodiscard]] Status validate(std::string_view endpoint, std::string_view input_json) const override;
  [[nodiscard]] engine::WorkerCounts worker_counts(std::string_view endpoint) const override;
  boost::asio::awaitable<engine::InferenceResult> infer(const engine::InferenceRequest& request) override;

private:
  /// The controller's tick: metering, the autoscalers, rollouts; then the next tick is set.
  void tick();
  std::unique_ptr<EndpointRuntime> make_runtime(const EndpointConfig& config, ModelManifest manifest,
                                                const std::string& worker_prefix);
  /// The version that serves a request: the pinned one, else the split (sticky by `session`).
  EndpointRuntime& pick(EndpointSlot& slot, std::string_view session, std::string_view version);
  /// The v2 frontend: maps the POST onto the engine and the result back (v2_frontend.hpp).
  boost::asio::awaitable<http::Reply> serve_v2(EndpointRuntime& endpoint, http::Request& request);
  /// The autoscaler of a serverless pool.
  void control(PoolRuntime& pool, TimePoint now);
  /// Every request but an inference POST to a known endpoint (those go straight to infer()).
  boost::asio::awaitable<http::Reply> route(http::Request& request);
  http::Reply no_such_version(const EndpointRuntime& endpoint, std::string_view version);
  /// The engine's request path for one version of an endpoint. `refused`: the frontend could
  /// not map the request; it is answered with that error, counted and audited as any other.
  boost::asio::awaitable<engine::InferenceResult> run(EndpointRuntime& endpoint,
                                                      const engine::InferenceRequest& request,
                                                      const Error* refused = nullptr);
  // The steps of infer() between its suspensions (see Attempts in gateway.cpp).
  struct Attempts;
  /// Deadline, validation and the upstream head; false: answered (a.answered).
  bool admit(Attempts& a, const Error* refused);
  /// The routing decision for this attempt; false: stop (answered, or a.last_error says why).
  bool plan_attempt(Attempts& a);
  /// Records a queue wait (`queued`: the slot was not free at once); false: the wait failed
  /// (a.last_error).
  bool end_wait(Attempts& a, std::size_t pool_waited, bool queued);
  void no_lease(Attempts& a);
  void start_upstream(Attempts& a);
  /// true: try again elsewhere; false: stop (answered on success, else a.last_error).
  bool finish_upstream(Attempts& a, Result<http::UpstreamResponse>& response);
  void give_up(Attempts& a);
  /// Answers the request with `e` (counted, audited as any answer).
  void fail(Attempts& a, const Error& e, std::string_view tier);
  /// The result's fields that every answer carries, from the trace (before finish_trace).
  void seal(Attempts& a);
  void start_trace(std::string_view traceparent, InferTrace& trace);
  /// Exports the spans, publishes the outcome, then moves the trace's strings into the audit
  /// record: `trace` is spent afterwards. A large body's record is left to result.after_answer,
  /// so that the answer does not wait for its digest.
  void finish_trace(const EndpointRuntime& endpoint, std::string_view body, InferTrace& trace,
                    engine::InferenceResult& result);
  void export_spans(const EndpointRuntime& endpoint, const InferTrace& trace, int status);
  http::Reply model_route(const EndpointRuntime& endpoint, bool ready_only);
  http::Reply admin_workers() const;
  http::Reply metrics_response();
  http::Reply error_response(const Error& error, const std::string& endpoint);
  void count(const EndpointRuntime& endpoint, std::string_view tier, int status,
             std::optional<ErrorCode> error, double seconds);

  boost::asio::io_context& io_;
  pool::ChildReaper& reaper_;
  const Clock& clock_;
  MetricsRegistry& metrics_;
  std::vector<std::unique_ptr<EndpointRuntime>> runtimes_;  // every version ever started, retired included
  std::vector<std::unique_ptr<EndpointSlot>> slots_;
  std::map<std::string, EndpointSlot*, std::less<>> by_name_;
  RolloutManager* rollouts_ = nullptr;
  OutcomeBus outcomes_;
  std::function<boost::asio::awaitable<http::Reply>(http::Request&, std::string_view, std::string_view)> job_api_;
  std::uint64_t split_state_ = 0;  // for weighted splits without a session
  IdGenerator ids_;
  std::size_t in_flight_total_ = 0;
  Family<Counter>& requests_;
  Family<Counter>& errors_;
  Family<Histogram>& durations_;
  Family<Histogram>& queue_waits_;
  Family<Counter>& retries_;
  Family<Counter>& unrouted_;
  Family<Gauge>& workers_gauge_;
  std::chrono::milliseconds tick_ms_;
  TimePoint last_tick_{};
  bool stopping_ = false;
  std::unique_ptr<AsioTimers> own_timers_;  // when the options gave none
  Timers* timers_ = nullptr;
  TimerHandle ticker_;
  Family<Counter>& spillovers_;
  Family<Counter>& rejected_;
  Family<Counter>& retries_denied_;
  GatewayOptions options_;
  HttpLimits limits_;
};

} // namespace tandem::gateway
