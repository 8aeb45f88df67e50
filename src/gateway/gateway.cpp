#include "gateway/gateway.hpp"

#include "http/server.hpp"
#include "protocol/v2_codec.hpp"
#include "protocol/v2_path.hpp"
#include "protocol/v2_validator.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace tandem::gateway {

namespace asio = boost::asio;
using http::bhttp::field;

namespace {
// A decimal with `precision` digits after the point (snprintf's %.*f, without its locale work).
std::string fixed(double value, int precision) {
  char buffer[48];
  auto r = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed, precision);
  return std::string(buffer, r.ptr);
}
} // namespace

using http::bhttp::verb;

Gateway::Gateway(asio::io_context& io, const Config& config, std::vector<ModelManifest> manifests,
                 pool::ChildReaper& reaper, MetricsRegistry& metrics, const Clock& clock,
                 GatewayOptions options)
    : io_(io), clock_(clock), metrics_(metrics), ids_(options.seed),
      requests_(metrics.counter("tandem_requests_total",
                                "Inference requests answered, by endpoint, model version, tier and HTTP status.",
                                {"endpoint", "model_version", "tier", "code"})),
      errors_(metrics.counter("tandem_request_errors_total",
                              "Inference requests answered with an error, by endpoint and error code.",
                              {"endpoint", "error"})),
      durations_(metrics.histogram("tandem_request_duration_seconds",
                                   "Time from request received to response ready, by endpoint and tier.",
                                   {"endpoint", "tier"}, latency_buckets_seconds())),
      queue_waits_(metrics.histogram("tandem_queue_wait_seconds",
                                     "Time a request waited for a free worker slot, by endpoint and tier.",
                                     {"endpoint", "tier"}, latency_buckets_seconds())),
      retries_(metrics.counter("tandem_retries_total",
                               "Requests retried on another worker, by endpoint and reason.",
                               {"endpoint", "reason"})),
      unrouted_(metrics.counter("tandem_http_unrouted_total",
                                "Requests for no known route or model, by HTTP status.", {"code"})),
      workers_gauge_(metrics.gauge("tandem_workers", "Workers by endpoint, tier and state.",
                                   {"endpoint", "tier", "state"})),
      tick_ms_(config.server.autoscaler_tick_ms), ticker_(io),
      spillovers_(metrics.counter("tandem_spillovers_total",
                                  "Requests served by another tier than the policy's preferred one, by reason.",
                                  {"endpoint", "from", "to", "reason"})),
      rejected_(metrics.counter("tandem_rejected_total",
                                "Requests refused at once by admission control, by reason.", {"endpoint", "reason"})),
      retries_denied_(metrics.counter("tandem_retries_denied_total",
                                      "Retries not made because the endpoint's retry budget was spent.",
                                      {"endpoint"})) {
  auto& in_flight = metrics.gauge("tandem_requests_in_flight", "Inference requests being served, by endpoint.",
                                  {"endpoint"});
  auto& cost_family = metrics.counter("tandem_cost_dollars_total",
                                      "Metered cost of each tier pool: serverless per live worker-second (cold "
                                      "start and idle included), dedicated per reserved worker-second.",
                                      {"endpoint", "tier"});
  auto& desired_family = metrics.gauge("tandem_autoscaler_desired_workers",
                                       "Workers the autoscaler wants in the serverless pool.", {"endpoint", "tier"});
  auto& panic_family = metrics.gauge("tandem_autoscaler_panic", "1 while the autoscaler is in panic mode.",
                                     {"endpoint", "tier"});
  auto make_pool_options = [&](const EndpointRuntime& rt, const std::string& tier) {
    pool::PoolOptions po;
    po.endpoint = rt.config.name;
    po.tier = tier;
    po.worker = rt.config.worker;
    po.manifest = rt.manifest;
    po.self_exe = options.self_exe;
    po.worker_log_args = options.worker_log_args;
    po.max_response_bytes = config.server.limits.max_response_bytes;
    po.max_request_bytes = config.server.limits.max_body_bytes;
    po.outlier.consecutive_failures = rt.config.outlier_consecutive_failures;
    po.outlier.base_ejection_ms = rt.config.outlier_base_ejection_ms;
    po.outlier.max_ejected_percent = rt.config.outlier_max_ejected_percent;
    return po;
  };
  for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
    auto rt = std::make_unique<EndpointRuntime>();
    rt->config = config.endpoints[i];
    rt->manifest = std::move(manifests[i]);
    rt->routing = policy::parse_routing_policy(rt->config.routing).value_or(policy::RoutingPolicy::dedicated_first);
    rt->retry_budget = policy::RetryBudget(rt->config.retry_budget_percent / 100.0);
    const std::string served_name =
        rt->config.worker.model_name.empty() ? rt->manifest.name : rt->config.worker.model_name;
    rt->upstream_infer_target = "/v2/models/" + served_name + "/infer";
    rt->in_flight = &in_flight.with({rt->config.name});
    if (const auto& spec = rt->config.dedicated) {
      auto po = make_pool_options(*rt, "dedicated");
      po.replicas = spec->replicas;
      po.max_workers = spec->replicas;
      po.max_concurrency_per_worker = spec->max_concurrency_per_worker;
      po.queue_max = spec->queue_max;
      rt->dedicated.pool = std::make_unique<pool::WorkerPool>(io, reaper, std::move(po), metrics);
      rt->dedicated.cost = std::make_unique<policy::CostMeter>(spec->price_per_hour / 3600.0);
      rt->dedicated.reserved_workers = spec->replicas;
      rt->dedicated.cost_total = &cost_family.with({rt->config.name, "dedicated"});
      rt->dedicated.queue_wait = &queue_waits_.with({rt->config.name, "dedicated"});
      rt->dedicated.requests_ok = &requests_.with({rt->config.name, rt->manifest.version, "dedicated", "200"});
      rt->dedicated.duration = &durations_.with({rt->config.name, "dedicated"});
    }
    if (const auto& spec = rt->config.serverless) {
      auto po = make_pool_options(*rt, "serverless");
      po.replicas = spec->min;
      po.max_workers = spec->max;
      po.scalable = true;
      po.max_concurrency_per_worker = spec->max_concurrency_per_worker;
      po.queue_max = spec->queue_max;
      rt->serverless.pool = std::make_unique<pool::WorkerPool>(io, reaper, std::move(po), metrics);
      rt->serverless.cost = std::make_unique<policy::CostMeter>(spec->price_per_second);
      rt->serverless.cost_total = &cost_family.with({rt->config.name, "serverless"});
      rt->serverless.queue_wait = &queue_waits_.with({rt->config.name, "serverless"});
      rt->serverless.requests_ok = &requests_.with({rt->config.name, rt->manifest.version, "serverless", "200"});
      rt->serverless.duration = &durations_.with({rt->config.name, "serverless"});
      rt->serverless.scaledown_window_s = std::chrono::duration<double>(spec->scaledown_window_ms).count();
      policy::AutoscalerSpec as;
      as.min_workers = spec->min;
      as.max_workers = spec->max;
      as.buffer_workers = spec->buffer;
      as.target_concurrency = spec->target_concurrency;
      as.stable_window_ms = spec->stable_window_ms;
      as.panic_window_ms = spec->panic_window_ms;
      as.panic_threshold = spec->panic_threshold;
      as.scaledown_window_ms = spec->scaledown_window_ms;
      rt->autoscaler = std::make_unique<policy::Autoscaler>(as);
      rt->desired_workers = &desired_family.with({rt->config.name, "serverless"});
      rt->panic = &panic_family.with({rt->config.name, "serverless"});
      rt->desired_workers->set(spec->min);
      EndpointRuntime* raw = rt.get();
      rt->serverless.pool->on_demand([this, raw] {
        // Rate-limited: under a sustained burst every queued request would poke.
        const TimePoint now = clock_.now();
        if (now - raw->last_poke < std::chrono::milliseconds(10) && raw->serverless.pool->snapshot().live_workers > 0)
          return;
        raw->last_poke = now;
        control(*raw, now);
      });
    }
    by_name_[rt->config.name] = rt.get();
    endpoints_.push_back(std::move(rt));
  }
  metrics.gauge("tandem_build_info", "Always 1; labels carry the version.", {"version"}).with({TANDEM_VERSION}).set(1);
  metrics.on_collect([this] {
    workers_gauge_.clear();
    for (const auto& ep : endpoints_) {
      for (const TierRuntime* tier : {&ep->dedicated, &ep->serverless}) {
        if (!tier->pool) continue;
        const std::string& tier_name = tier->pool->options().tier;
        for (auto state : {pool::WorkerState::starting, pool::WorkerState::ready, pool::WorkerState::draining,
                           pool::WorkerState::stopped})
          workers_gauge_.with({ep->config.name, tier_name, std::string(pool::to_string(state))}).set(0);
        for (const auto& w : tier->pool->describe())
          workers_gauge_.with({ep->config.name, tier_name, std::string(pool::to_string(w.state))}).inc();
      }
    }
  });
}

policy::TierState TierRuntime::state(double service_hint_ms, double cold_start_hint_ms) const {
  policy::TierState s;
  if (!pool) return s;
  auto snap = pool->snapshot();
  s.exists = true;
  s.ready_workers = snap.ready_workers;
  s.starting_workers = snap.starting_workers;
  s.max_workers = snap.max_workers;
  s.max_concurrency_per_worker = snap.max_concurrency_per_worker;
  s.in_flight = snap.in_flight;
  s.waiting = snap.waiting;
  s.queue_max = snap.queue_max;
  s.service_ms = service_measured ? service_ms : service_hint_ms;
  s.cold_start_ms = snap.cold_start_ms > 0 ? snap.cold_start_ms : cold_start_hint_ms;
  s.price_per_second = cost->price_per_second();
  s.reserved = reserved_workers > 0;
  s.scaledown_window_s = scaledown_window_s;
  s.scalable = pool->options().scalable;
  return s;
}

double EndpointRuntime::service_hint_ms() const {
  // The same model on the other tier is the best guess; 10 ms is a prior that makes a burst
  // on an unmeasured pool queue a little and then spill, rather than pile up unboundedly.
  if (dedicated.service_measured) return dedicated.service_ms;
  if (serverless.service_measured) return serverless.service_ms;
  return 10.0;
}

double EndpointRuntime::cold_start_hint_ms() const {
  for (const TierRuntime* t : {&dedicated, &serverless}) {
    if (!t->pool) continue;
    if (double measured = t->pool->cold_start_ms(); measured > 0) return measured;
  }
  return 10.0;
}

bool EndpointRuntime::any_ready() const {
  // A serverless pool that scales from zero is "ready" to take requests: it will cold-start.
  if (dedicated.pool && dedicated.pool->any_ready()) return true;
  return serverless.pool != nullptr && (serverless.pool->any_ready() || config.serverless->min == 0);
}

void Gateway::start() {
  for (auto& ep : endpoints_) {
    if (ep->dedicated.pool) ep->dedicated.pool->start();
    if (ep->serverless.pool) ep->serverless.pool->start();
  }
  last_tick_ = clock_.now();
  asio::co_spawn(io_, controller_loop(), asio::detached);
}

asio::awaitable<void> Gateway::controller_loop() {
  while (!stopping_) {
    ticker_.expires_after(tick_ms_);
    auto [ec] = co_await ticker_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || stopping_) co_return;
    const TimePoint now = clock_.now();
    const Duration elapsed = now - last_tick_;
    last_tick_ = now;
    for (auto& ep : endpoints_) {
      // Metering: dedicated reservations accrue while the server runs; serverless workers
      // accrue while their process exists (cold start and idle included).
      if (ep->dedicated.pool)
        ep->dedicated.cost_total->inc(ep->dedicated.cost->accrue(elapsed, ep->dedicated.reserved_workers));
      if (ep->serverless.pool) {
        ep->serverless.cost_total->inc(
            ep->serverless.cost->accrue(elapsed, ep->serverless.pool->billable_workers()));
        control(*ep, now);
      }
    }
  }
}

void Gateway::control(EndpointRuntime& ep, TimePoint now) {
  if (!ep.serverless.pool || stopping_) return;
  auto& pool = *ep.serverless.pool;
  auto demand = pool.take_demand(now);
  auto snapshot = pool.snapshot();
  policy::AutoscalerObservation observation;
  observation.now = now;
  observation.concurrency = demand.average_concurrency;
  observation.instant_demand = demand.instant_demand;
  observation.arrivals = demand.arrivals;
  observation.ready_workers = snapshot.ready_workers;
  observation.live_workers = snapshot.live_workers;
  auto decision = ep.autoscaler->observe(observation);
  ep.desired_workers->set(decision.desired_workers);
  ep.panic->set(decision.panic ? 1 : 0);
  pool.set_desired(decision.desired_workers);
}

void Gateway::shutdown() {
  stopping_ = true;
  ticker_.cancel();
  for (auto& ep : endpoints_)
    for (TierRuntime* tier : {&ep->dedicated, &ep->serverless})
      if (tier->pool) tier->pool->shutdown();
}

void Gateway::kill_remaining() {
  for (auto& ep : endpoints_)
    for (TierRuntime* tier : {&ep->dedicated, &ep->serverless})
      if (tier->pool) tier->pool->kill_remaining();
}

bool Gateway::all_endpoints_ready() const {
  for (const auto& ep : endpoints_)
    if (!ep->any_ready()) return false;
  return true;
}

http::Reply Gateway::error_response(const Error& error, const std::string& endpoint,
                                       const std::string& request_id) {
  int status = http_status(error.code);
  auto res = http::json_response(static_cast<unsigned>(status), v2::encode_error(error.message));
  if (!request_id.empty()) res.set("x-request-id", request_id);
  if (status == 503) res.set("Retry-After", "1");
  if (endpoint.empty()) unrouted_.with({std::to_string(status)}).inc();
  return res;
}

asio::awaitable<http::Reply> Gateway::handle(http::Request& request) {
  std::string_view target = v2::strip_query(request.target());
  auto only_get = [&]() -> std::optional<http::Reply> {
    if (request.method() == verb::get || request.method() == verb::head) return std::nullopt;
    auto res = error_response({ErrorCode::method_not_allowed,
                               std::string(request.method_string()) + " is not allowed on " + std::string(target)},
                              "", "");
    res.set("Allow", "GET");
    return res;
  };
  if (target == "/v2/health/live") {
    if (auto r = only_get()) co_return *r;
    co_return http::json_response(200, R"({"live":true})");
  }
  if (target == "/v2/health/ready") {
    if (auto r = only_get()) co_return *r;
    bool ready = all_endpoints_ready();
    co_return http::json_response(ready ? 200 : 503, ready ? R"({"ready":true})" : R"({"ready":false})");
  }
  if (target == "/v2") {
    if (auto r = only_get()) co_return *r;
    co_return http::json_response(200, R"({"name":"tandem","version":")" TANDEM_VERSION R"(","extensions":[]})");
  }
  if (target == "/metrics") {
    if (auto r = only_get()) co_return *r;
    co_return metrics_response();
  }
  if (target == "/admin/v1/workers") {
    if (auto r = only_get()) co_return *r;
    co_return admin_workers();
  }
  if (auto path = v2::parse_model_path(target)) {
    auto it = by_name_.find(path->name);
    if (it == by_name_.end())
      co_return error_response({ErrorCode::not_found, "unknown model " + v2::quote_value(path->name)}, "", "");
    EndpointRuntime& ep = *it->second;
    if (!path->version.empty() && path->version != ep.manifest.version && path->version != ep.manifest.digest)
      co_return error_response({ErrorCode::not_found, "model \"" + ep.config.name + "\" has no version " +
                                                          v2::quote_value(path->version) + " (serving " +
                                                          ep.manifest.version + ")"},
                               "", "");
    if (path->action == v2::ModelAction::infer) {
      if (request.method() != verb::post) {
        auto res = error_response({ErrorCode::method_not_allowed,
                                   std::string(request.method_string()) + " is not allowed on " +
                                       std::string(target) + "; use POST"},
                                  "", "");
        res.set("Allow", "POST");
        co_return res;
      }
      co_return co_await infer(ep, request);
    }
    if (auto r = only_get()) co_return *r;
    co_return model_route(ep, path->action == v2::ModelAction::ready);
  }
  co_return error_response({ErrorCode::not_found, "no route for " + std::string(request.method_string()) + " " +
                                                      std::string(target)},
                           "", "");
}

http::Reply Gateway::model_route(const EndpointRuntime& ep, bool ready_only) {
  if (ready_only) {
    bool ready = ep.any_ready();
    return http::json_response(ready ? 200 : 503, R"({"name":")" + v2::json_escape(ep.config.name) +
                                                       R"(","ready":)" + (ready ? "true" : "false") + "}");
  }
  return http::json_response(200, v2::encode_model_metadata(ep.config.name, ep.manifest.version, "onnx",
                                                            ep.manifest.schema));
}

http::Reply Gateway::metrics_response() {
  auto res = http::json_response(200, metrics_.render());
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return res;
}

std::string Gateway::traceparent_for(const http::Request& request) {
  // W3C trace context: keep the caller's trace id, give this hop a new span id.
  // "00-" trace(32) "-" span(16) "-" flags(2): 55 characters.
  std::string out = "00-00000000000000000000000000000000-0000000000000000-01";
  bool kept = false;
  auto incoming = request["traceparent"];
  if (incoming.size() == 55 && incoming.substr(0, 3) == "00-" && incoming[35] == '-' && incoming[52] == '-') {
    auto candidate = incoming.substr(3, 32);
    bool hex = std::all_of(candidate.begin(), candidate.end(),
                           [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    if (hex && candidate.find_first_not_of('0') != decltype(candidate)::npos) {
      std::copy(candidate.begin(), candidate.end(), out.begin() + 3);
      std::copy(incoming.begin() + 53, incoming.end(), out.begin() + 53);  // the caller's sampling decision
      kept = true;
    }
  }
  if (!kept) ids_.fill_hex(out.data() + 3, 32);
  ids_.fill_hex(out.data() + 36, 16);
  return out;
}

void Gateway::count(const EndpointRuntime& ep, std::string_view tier, int status, std::optional<ErrorCode> error,
                    double seconds) {
  const std::string tier_label(tier);
  requests_.with({ep.config.name, ep.manifest.version, tier_label, std::to_string(status)}).inc();
  if (error) errors_.with({ep.config.name, std::string(error_label(*error))}).inc();
  durations_.with({ep.config.name, tier_label}).observe(seconds);
}

asio::awaitable<http::Reply> Gateway::infer(EndpointRuntime& ep, http::Request& request) {
  const TimePoint started = clock_.now();
  ep.in_flight->inc();
  ++in_flight_total_;
  struct InFlightGuard {
    Gauge* gauge;
    std::size_t* total;
    ~InFlightGuard() {
      gauge->dec();
      --*total;
    }
  } guard{ep.in_flight, &in_flight_total_};

  std::string request_id(request["x-request-id"]);
  if (!is_acceptable_request_id(request_id)) request_id = ids_.next();
  auto deadline = started + ep.config.slo.timeout_ms;
  if (auto header = request["x-tandem-deadline-ms"]; !header.empty()) {
    long long ms = 0;
    auto [ptr, ec] = std::from_chars(header.data(), header.data() + header.size(), ms);
    if (ec == std::errc{} && ptr == header.data() + header.size() && ms > 0)
      deadline = std::min(deadline, started + std::chrono::milliseconds(ms));
  }
  auto elapsed_seconds = [&] { return to_seconds(clock_.now() - started); };

  bool low_priority = false;
  if (auto priority = request["x-tandem-priority"]; !priority.empty()) {
    if (priority == "low") low_priority = true;
    else if (priority != "normal" && priority != "high") {
      Error e{ErrorCode::invalid_request, "x-tandem-priority: expected low, normal or high"};
      count(ep, "none", 400, e.code, elapsed_seconds());
      co_return error_response(e, ep.config.name, request_id);
    }
  }
  if (!request["inference-header-content-length"].empty()) {
    Error e{ErrorCode::invalid_request, "the binary tensor extension is not supported; send JSON tensors"};
    count(ep, "none", 400, e.code, elapsed_seconds());
    co_return error_response(e, ep.config.name, request_id);
  }
  auto decoded = v2::validate_infer_request(request.body(), ep.manifest.schema);
  if (!decoded) {
    count(ep, "none", http_status(decoded.error().code), decoded.error().code, elapsed_seconds());
    co_return error_response(decoded.error(), ep.config.name, request_id);
  }

  const std::string traceparent = traceparent_for(request);
  // The body is forwarded as received; only the head is written anew.
  const std::string& upstream_body = request.body();
  char length[24];
  auto length_end = std::to_chars(length, length + sizeof length, upstream_body.size()).ptr;
  std::string upstream_head;
  upstream_head.reserve(256);
  upstream_head.append("POST ").append(ep.upstream_infer_target).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  upstream_head.append("Content-Type: application/json\r\nx-request-id: ").append(request_id);
  upstream_head.append("\r\ntraceparent: ").append(traceparent).append("\r\nContent-Length: ");
  upstream_head.append(length, length_end).append("\r\n\r\n");

  ep.retry_budget.on_request();
  // The tier the policy prefers; serving elsewhere is a spillover.
  const std::optional<policy::Tier> preferred =
      ep.routing == policy::RoutingPolicy::serverless_first ? std::optional(policy::Tier::serverless)
      : (ep.routing == policy::RoutingPolicy::dedicated_first || ep.routing == policy::RoutingPolicy::cost_optimal)
          ? std::optional(policy::Tier::dedicated)
          : std::nullopt;

  std::string tier_label = "none";
  Duration queue_wait{0};
  std::optional<std::size_t> avoid;
  std::optional<policy::Tier> failed_tier;
  Error last_error{ErrorCode::unavailable, "endpoint " + ep.config.name + " has no pool its routing policy may use"};
  const int attempts = 1 + ep.config.retries;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    const TimePoint now = clock_.now();
    const double remaining_ms = to_ms(deadline - now);
    if (remaining_ms <= 0) {
      last_error = {ErrorCode::timeout, "the request's deadline passed"};
      break;
    }
    policy::RouteInput input;
    input.policy = ep.routing;
    input.deadline_ms = remaining_ms;
    // The first attempt aims at the SLO; a retry only has to beat the deadline.
    const double slo_left_ms = static_cast<double>(ep.config.slo.p95_ms.count()) - to_ms(now - started);
    input.budget_ms = attempt == 0 && ep.config.slo.p95_ms.count() > 0 ? std::min(slo_left_ms, remaining_ms)
                                                                        : remaining_ms;
    input.low_priority = low_priority;
    input.retry_from = failed_tier;
    const double hint_ms = ep.service_hint_ms();
    const double cold_hint_ms = ep.cold_start_hint_ms();
    auto decision = policy::route(input, ep.dedicated.state(hint_ms, cold_hint_ms),
                                  ep.serverless.state(hint_ms, cold_hint_ms));
    if (decision.reject != policy::RejectReason::none) {
      rejected_.with({ep.config.name, std::string(policy::to_string(decision.reject))}).inc();
      if (decision.reject == policy::RejectReason::no_healthy_tier) {
        // On a retry, the worker's own failure is the better answer than "nothing left".
        if (attempt == 0) last_error = {ErrorCode::unavailable, "endpoint " + ep.config.name + " has no healthy worker"};
      } else if (attempt == 0) {
        char wait_text[64];
        std::snprintf(wait_text, sizeof wait_text, "%.0f ms", decision.predicted_wait_ms);
        last_error = {ErrorCode::overloaded,
                      decision.reject == policy::RejectReason::low_priority
                          ? std::string("low-priority request refused: no idle capacity")
                          : "endpoint " + ep.config.name + " is overloaded: predicted wait " + wait_text +
                                " exceeds the request's latency budget"};
        count(ep, "none", 429, ErrorCode::overloaded, elapsed_seconds());
        auto res = error_response(last_error, ep.config.name, request_id);
        res.set("Retry-After", std::to_string(static_cast<int>(decision.retry_after_s)));
        co_return res;
      }
      break;
    }
    std::optional<pool::Lease> lease;
    policy::Tier used = decision.steps[0].tier;
    for (int step_index = 0; step_index < decision.count && !lease; ++step_index) {
      const auto& step = decision.steps[static_cast<std::size_t>(step_index)];
      auto& tier = ep.tier(step.tier);
      auto avoid_here = failed_tier == step.tier ? avoid : std::nullopt;
      used = step.tier;
      if (!step.wait) {
        lease = tier.pool->try_acquire(avoid_here);
        continue;
      }
      const TimePoint wait_started = clock_.now();
      auto waited = co_await tier.pool->acquire(deadline, avoid_here);
      const Duration waited_for = clock_.now() - wait_started;
      queue_wait += waited_for;
      tier.queue_wait->observe(to_seconds(waited_for));
      if (!waited) {
        last_error = waited.error();
        tier_label = std::string(policy::to_string(step.tier));
        if (last_error.code == ErrorCode::overloaded) {
          rejected_.with({ep.config.name, "queue_full"}).inc();
        }
        break;
      }
      lease = std::move(*waited);
    }
    if (!lease) {
      if (low_priority && last_error.code == ErrorCode::unavailable) {
        rejected_.with({ep.config.name, "low_priority"}).inc();
        last_error = {ErrorCode::overloaded, "low-priority request refused: no idle capacity"};
      }
      break;
    }
    tier_label = std::string(policy::to_string(used));

    auto attempt_deadline = deadline;
    if (ep.config.per_try_timeout_ms.count() > 0)
      attempt_deadline = std::min(deadline, clock_.now() + ep.config.per_try_timeout_ms);
    const TimePoint upstream_started = clock_.now();
    auto response = co_await lease->upstream().send(upstream_head, upstream_body, attempt_deadline);
    const TimePoint upstream_done = clock_.now();
    auto& tier = ep.tier(used);
    const double cost = tier.cost->attribute(upstream_done, upstream_done - upstream_started, lease->sharing());
    const bool success = response && response->result_int() < 500;
    lease->report(success);
    if (success) {
      tier.observe_service(to_ms(upstream_done - upstream_started));
      // Counted once per answered request: served elsewhere than the policy prefers.
      if (preferred && used != *preferred && ep.tier(*preferred).pool)
        spillovers_.with({ep.config.name, std::string(policy::to_string(*preferred)), tier_label,
                          failed_tier == *preferred ? "fallback" : "saturated"}).inc();
      int status = static_cast<int>(response->result_int());
      http::Reply out;
      out.status = response->result_int();
      auto content_type = (*response)[field::content_type];
      if (!content_type.empty() && content_type != "application/json")
        out.content_type.assign(content_type.data(), content_type.size());
      out.body = std::move(response->body());
      out.set("x-request-id", request_id);
      out.set("traceparent", traceparent);
      out.set("x-tandem-tier", tier_label);
      out.set("x-tandem-worker", lease->worker_id());
      out.set("x-tandem-model-version", ep.manifest.version);
      out.set("x-tandem-queue-ms", fixed(to_ms(queue_wait), 3));
      if (auto cold = lease->cold_start()) out.set("x-tandem-cold-start-ms", fixed(to_ms(*cold), 3));
      out.set("x-tandem-cost-usd", fixed(cost, 9));
      if (attempt > 0) out.set("x-tandem-attempts", std::to_string(attempt + 1));
      if (status == 200) {
        tier.requests_ok->inc();
        tier.duration->observe(elapsed_seconds());
      } else {
        count(ep, tier_label, status, ErrorCode::invalid_request, elapsed_seconds());
      }
      co_return out;
    }
    std::string reason;
    if (response) {
      last_error = {ErrorCode::upstream_error, "worker " + lease->worker_id() + " answered " +
                                                   std::to_string(response->result_int()) + ": " +
                                                   response->body().substr(0, 512)};
      reason = "worker_status";
    } else {
      last_error = response.error();
      if (last_error.code == ErrorCode::timeout) {
        reason = "timeout";
      } else {
        lease->mark_unreachable();
        reason = "transport";
      }
    }
    avoid = lease->worker_index();
    failed_tier = used;
    spdlog::warn("request {}: attempt {} on worker {} failed: {}", request_id, attempt + 1, lease->worker_id(),
                 last_error.message.substr(0, 200));
    if (attempt + 1 >= attempts || clock_.now() >= deadline) break;
    if (!ep.retry_budget.try_retry()) {
      retries_denied_.with({ep.config.name}).inc();
      break;
    }
    retries_.with({ep.config.name, reason}).inc();
  }
  count(ep, tier_label, http_status(last_error.code), last_error.code, elapsed_seconds());
  auto res = error_response(last_error, ep.config.name, request_id);
  if (last_error.code == ErrorCode::overloaded) res.set("Retry-After", "1");
  if (tier_label != "none") res.set("x-tandem-tier", tier_label);
  res.set("x-tandem-model-version", ep.manifest.version);
  res.set("traceparent", traceparent);
  co_return res;
}

http::Reply Gateway::admin_workers() const {
  std::string body = R"({"workers":[)";
  bool first = true;
  for (const auto& ep : endpoints_) {
   for (const TierRuntime* tier : {&ep->dedicated, &ep->serverless}) {
    if (!tier->pool) continue;
    for (const auto& w : tier->pool->describe()) {
      if (!first) body += ',';
      first = false;
      body += R"({"id":")" + v2::json_escape(w.id) + R"(","endpoint":")" + v2::json_escape(w.endpoint) +
              R"(","tier":")" + w.tier + R"(","state":")" + std::string(pool::to_string(w.state)) +
              R"(","pid":)" + (w.pid > 0 ? std::to_string(w.pid) : "null") + R"(,"address":)" +
              (w.address.empty() ? "null" : "\"" + w.address + "\"") + R"(,"model_version":")" +
              w.model_version + R"(","in_flight":)" + std::to_string(w.in_flight) +
              R"(,"restarts":)" + std::to_string(w.restarts) + R"(,"ejected":)" + (w.ejected ? "true" : "false") +
              "}";
    }
   }
  }
  body += "]}";
  return http::json_response(200, std::move(body));
}

} // namespace tandem::gateway
