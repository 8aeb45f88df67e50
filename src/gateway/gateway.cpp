#include "gateway/gateway.hpp"

#include "base/decimal.hpp"
#include "base/logging.hpp"
#include "base/recycled.hpp"
#include "base/sha256.hpp"
#include "gateway/admin_api.hpp"
#include "gateway/rollout_manager.hpp"
#include "gateway/v2_frontend.hpp"
#include "telemetry/trace_context.hpp"

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

using http::bhttp::verb;

Gateway::Gateway(asio::io_context& io, const Config& config, std::vector<ModelManifest> manifests,
                 pool::ChildReaper& reaper, MetricsRegistry& metrics, const Clock& clock,
                 GatewayOptions options)
    : io_(io), reaper_(reaper), clock_(clock), metrics_(metrics), ids_(options.seed),
      requests_(metrics.counter("tandem_requests_total",
                                "Inference requests answered, by endpoint, model version, tier and HTTP status.",
                                {"endpoint", "model_version", "tier", "code"})),
      errors_(metrics.counter("tandem_request_errors_total",
                              "Inference requests answered with an error, by endpoint and error code.",
                              {"endpoint", "error"})),
      durations_(metrics.histogram("tandem_request_duration_seconds",
                                   "Time from request received to response ready, by endpoint, model version and tier.",
                                   {"endpoint", "model_version", "tier"}, latency_buckets_seconds())),
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
      tick_ms_(config.server.autoscaler_tick_ms),
      spillovers_(metrics.counter("tandem_spillovers_total",
                                  "Requests served by another tier than the policy's preferred one, by reason.",
                                  {"endpoint", "from", "to", "reason"})),
      rejected_(metrics.counter("tandem_rejected_total",
                                "Requests refused at once by admission control, by reason.", {"endpoint", "reason"})),
      retries_denied_(metrics.counter("tandem_retries_denied_total",
                                      "Retries not made because the endpoint's retry budget was spent.",
                                      {"endpoint"})),
      options_(std::move(options)), limits_(config.server.limits) {
  timers_ = options_.timers;
  if (timers_ == nullptr) {
    own_timers_ = std::make_unique<AsioTimers>(io, clock);
    timers_ = own_timers_.get();
  }
  for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
    auto slot = std::make_unique<EndpointSlot>();
    slot->name = config.endpoints[i].name;
    by_name_[slot->name] = slot.get();
    auto runtime = make_runtime(config.endpoints[i], std::move(manifests[i]), config.endpoints[i].name);
    runtime->slot = slot.get();
    slot->stable = runtime.get();
    runtimes_.push_back(std::move(runtime));
    slots_.push_back(std::move(slot));
  }
  metrics.gauge("tandem_build_info", "Always 1; labels carry the version.", {"version"}).with({TANDEM_VERSION}).set(1);
  if (options_.audit) {
    auto& records = metrics.counter("tandem_audit_records_total",
                                    "Audit records by outcome: written to the state store, dropped (backlog full), "
                                    "failed (write error), expired (past retention).",
                                    {"outcome"});
    auto& backlog = metrics.gauge("tandem_audit_backlog", "Audit records waiting to be written.", {}).with({});
    Counter* written = &records.with({"written"});
    Counter* dropped = &records.with({"dropped"});
    Counter* failed = &records.with({"failed"});
    Counter* expired = &records.with({"expired"});
    // The writer keeps atomic totals; the counters mirror them at each scrape.
    metrics.on_collect([audit = options_.audit, &backlog, written, dropped, failed, expired] {
      backlog.set(static_cast<double>(audit->backlog()));
      written->advance_to(static_cast<double>(audit->written()));
      dropped->advance_to(static_cast<double>(audit->dropped()));
      failed->advance_to(static_cast<double>(audit->failed()));
      expired->advance_to(static_cast<double>(audit->expired()));
    });
  }
  if (options_.tracer) {
    auto& spans = metrics.counter("tandem_trace_spans_total",
                                  "Spans by outcome: exported to the collector, dropped (export queue full), "
                                  "failed (the collector refused or was unreachable after retries).",
                                  {"outcome"});
    auto& queue = metrics.gauge("tandem_trace_export_queue", "Spans waiting to be exported.", {}).with({});
    auto& posts = metrics.counter("tandem_trace_export_requests_total",
                                  "OTLP export requests sent, by result.", {"result"});
    Counter* exported = &spans.with({"exported"});
    Counter* dropped = &spans.with({"dropped"});
    Counter* failed = &spans.with({"failed"});
    Counter* posts_ok = &posts.with({"ok"});
    Counter* posts_failed = &posts.with({"error"});
    metrics.on_collect([tracer = options_.tracer, &queue, exported, dropped, failed, posts_ok, posts_failed] {
      queue.set(static_cast<double>(tracer->queue_depth()));
      exported->advance_to(static_cast<double>(tracer->spans_exported()));
      dropped->advance_to(static_cast<double>(tracer->spans_dropped()));
      failed->advance_to(static_cast<double>(tracer->spans_failed()));
      const auto sent = static_cast<double>(tracer->export_requests());
      const auto errors = static_cast<double>(tracer->export_failures());
      posts_failed->advance_to(errors);
      posts_ok->advance_to(sent - errors);
    });
  }
  metrics.on_collect([this] {
    workers_gauge_.clear();
    // Every state of every pool is shown, zero included; a rollout's two versions add up.
    for (const auto& ep : runtimes_)
      for (const PoolRuntime& p : ep->pools)
        for (auto state : {pool::WorkerState::starting, pool::WorkerState::ready, pool::WorkerState::draining,
                           pool::WorkerState::stopped})
          workers_gauge_.with({ep->config.name, p.name, std::string(pool::to_string(state))}).set(0);
    for (const auto& ep : runtimes_) {
      if (ep->stopped) continue;
      for (const PoolRuntime& p : ep->pools)
        for (const auto& w : p.pool->describe())
          workers_gauge_.with({ep->config.name, p.name, std::string(pool::to_string(w.state))}).inc();
    }
  });
}

std::unique_ptr<EndpointRuntime> Gateway::make_runtime(const EndpointConfig& config, ModelManifest manifest,
                                                      const std::string& worker_prefix) {
  auto& in_flight = metrics_.gauge("tandem_requests_in_flight", "Inference requests being served, by endpoint.",
                                  {"endpoint"});
  auto& cost_family = metrics_.counter("tandem_cost_dollars_total",
                                      "Metered cost of each tier pool: serverless per live worker-second (cold "
                                      "start and idle included), dedicated per reserved worker-second.",
                                      {"endpoint", "tier"});
  auto& desired_family = metrics_.gauge("tandem_autoscaler_desired_workers",
                                       "Workers the autoscaler wants in the serverless pool.", {"endpoint", "tier"});
  auto& panic_family = metrics_.gauge("tandem_autoscaler_panic", "1 while the autoscaler is in panic mode.",
                                     {"endpoint", "tier"});
  auto make_pool_options = [&](const EndpointRuntime& rt, const std::string& name) {
    pool::PoolOptions po;
    po.endpoint = rt.config.name;
    po.worker_id_prefix = worker_prefix;
    po.tier = name;
    // Worker ids keep their short form for the two config keys: digits-ded-0, digits-ser-0.
    po.worker_infix = name == "dedicated" ? "ded" : name == "serverless" ? "ser" : name;
    po.model_version = rt.manifest.version;
    po.start_timeout_ms = rt.config.worker.start_timeout_ms;
    po.max_response_bytes = limits_.max_response_bytes;
    po.outlier.consecutive_failures = rt.config.outlier_consecutive_failures;
    po.outlier.base_ejection_ms = rt.config.outlier_base_ejection_ms;
    po.outlier.max_ejected_percent = rt.config.outlier_max_ejected_percent;
    return po;
  };
  auto provider_for = [&](const EndpointRuntime& rt, const PoolConfig& pc) -> std::unique_ptr<pool::Provider> {
    if (options_.provider_for) return options_.provider_for(rt.config, rt.manifest, pc);
    pool::LocalWorkerSpec spec;
    spec.worker = rt.config.worker;
    spec.manifest = rt.manifest;
    spec.self_exe = options_.self_exe;
    spec.worker_log_args = options_.worker_log_args;
    spec.max_request_bytes = limits_.max_body_bytes;
    return std::make_unique<pool::LocalProvider>(io_, reaper_, std::move(spec));
  };
  auto rt = std::make_unique<EndpointRuntime>();
  rt->config = config;
  rt->manifest = std::move(manifest);
  rt->routing = policy::parse_routing_policy(rt->config.routing).value_or(policy::RoutingPolicy::dedicated_first);
  rt->retry_budget = policy::RetryBudget(rt->config.retry_budget_percent / 100.0);
  const std::string served_name = rt->config.worker.model_name.empty() ? rt->manifest.name : rt->config.worker.model_name;
  rt->upstream_infer_target = "/v2/models/" + served_name + "/infer";
  rt->in_flight = &in_flight.with({rt->config.name});
  const std::vector<PoolConfig> pool_configs = rt->config.pools();
  rt->pools.reserve(std::min(pool_configs.size(), policy::kMaxPools));
  for (const PoolConfig& pc : pool_configs) {
    if (rt->pools.size() == policy::kMaxPools) {
      spdlog::error("endpoint {}: more than {} pools; pool {} is not served", rt->config.name, policy::kMaxPools,
                    pc.name);
      continue;
    }
    PoolRuntime& p = rt->pools.emplace_back();
    p.name = pc.name;
    auto po = make_pool_options(*rt, pc.name);
    po.kind = pc.serverless ? "serverless" : "dedicated";
    if (const auto& spec = pc.dedicated) {
      p.kind = policy::Tier::dedicated;
      p.min_ready = spec->replicas;
      po.replicas = spec->replicas;
      po.max_workers = spec->replicas;
      po.max_concurrency_per_worker = spec->max_concurrency_per_worker;
      po.queue_max = spec->queue_max;
      p.cost = std::make_unique<policy::CostMeter>(spec->price_per_hour / 3600.0);
      p.reserved_workers = spec->replicas;
    } else if (const auto& sspec = pc.serverless) {
      p.kind = policy::Tier::serverless;
      p.min_ready = sspec->min;
      p.scales_from_zero = sspec->min == 0;
      po.replicas = sspec->min;
      po.max_workers = sspec->max;
      po.scalable = true;
      po.max_concurrency_per_worker = sspec->max_concurrency_per_worker;
      po.queue_max = sspec->queue_max;
      p.cost = std::make_unique<policy::CostMeter>(sspec->price_per_second);
      p.scaledown_window_s = std::chrono::duration<double>(sspec->scaledown_window_ms).count();
      policy::AutoscalerSpec as;
      as.min_workers = sspec->min;
      as.max_workers = sspec->max;
      as.buffer_workers = sspec->buffer;
      as.target_concurrency = sspec->target_concurrency;
      as.stable_window_ms = sspec->stable_window_ms;
      as.panic_window_ms = sspec->panic_window_ms;
      as.panic_threshold = sspec->panic_threshold;
      as.scaledown_window_ms = sspec->scaledown_window_ms;
      p.autoscaler = std::make_unique<policy::Autoscaler>(as);
      p.desired_workers = &desired_family.with({rt->config.name, pc.name});
      p.panic = &panic_family.with({rt->config.name, pc.name});
      p.desired_workers->set(sspec->min);
    }
    p.pool = std::make_unique<pool::WorkerPool>(io_, *timers_, provider_for(*rt, pc), std::move(po), metrics_);
    p.cost_total = &cost_family.with({rt->config.name, pc.name});
    p.queue_wait = &queue_waits_.with({rt->config.name, pc.name});
    // Requests are counted by the kind of capacity that answered, as x-tandem-tier says.
    const std::string kind(policy::to_string(p.kind));
    p.requests_ok = &requests_.with({rt->config.name, rt->manifest.version, kind, "200"});
    p.duration = &durations_.with({rt->config.name, rt->manifest.version, kind});
  }
  EndpointRuntime* raw = rt.get();
  for (std::size_t i = 0; i < rt->pools.size(); ++i) {
    if (rt->pools[i].kind != policy::Tier::serverless) continue;
    rt->pools[i].pool->on_demand([this, raw, i] {
      // Rate-limited: under a sustained burst every queued request would poke.
      PoolRuntime& p = raw->pools[i];
      const TimePoint now = clock_.now();
      if (!p.activator.should_poke(now, [&p] { return p.pool->snapshot().live_workers > 0; })) return;
      control(p, now);
    });
  }
  return rt;
}

namespace {
// The service time assumed when nothing is known (a worker command that reports no prior, no
// answer measured yet); the router then lets no more requests wait than slots will serve them.
constexpr double kServicePriorFallbackMs = 10.0;
} // namespace

policy::TierState PoolRuntime::state(double service_prior_ms, double cold_start_hint_ms) const {
  policy::TierState s;
  if (!pool) return s;
  auto snap = pool->snapshot();
  s.exists = true;
  s.kind = kind;
  s.ready_workers = snap.ready_workers;
  s.starting_workers = snap.starting_workers;
  s.max_workers = snap.max_workers;
  s.max_concurrency_per_worker = snap.max_concurrency_per_worker;
  s.in_flight = snap.in_flight;
  s.waiting = snap.waiting;
  s.queue_max = snap.queue_max;
  s.service_known = service.measured() || service_prior_ms > 0;
  s.service_ms = service.estimate_ms(service_prior_ms > 0 ? service_prior_ms : kServicePriorFallbackMs);
  s.cold_start_ms = snap.cold_start_ms > 0 ? snap.cold_start_ms : cold_start_hint_ms;
  s.price_per_second = cost->price_per_second();
  s.reserved = reserved_workers > 0;
  s.scaledown_window_s = scaledown_window_s;
  s.scalable = pool->options().scalable;
  return s;
}

const PoolRuntime* EndpointRuntime::first_of(policy::Tier kind) const {
  for (const PoolRuntime& p : pools)
    if (p.kind == kind) return &p;
  return nullptr;
}

double EndpointRuntime::service_prior_ms(std::size_t index) const {
  const PoolRuntime& own = pools[index];
  if (own.pool->service_prior_ms() > 0) return own.pool->service_prior_ms();
  // The same model in another pool is the next best guess: what its workers reported, else
  // what it measured.
  for (const PoolRuntime& other : pools)
    if (&other != &own && other.pool->service_prior_ms() > 0) return other.pool->service_prior_ms();
  for (const PoolRuntime& other : pools)
    if (&other != &own && other.service.measured()) return other.service.mean_ms();
  // Last, what the model declares of itself (service_ms: in its manifest).
  return manifest.declared_service_ms;
}

double EndpointRuntime::cold_start_hint_ms() const {
  for (const PoolRuntime& p : pools)
    if (double measured = p.pool->cold_start_ms(); measured > 0) return measured;
  return 10.0;
}

bool EndpointRuntime::any_ready() const {
  // A serverless pool that scales from zero is ready to take requests when it can cold-start
  // one: not while its starts are failing (each inference would wait, then get 503).
  for (const PoolRuntime& p : pools) {
    if (p.pool->any_ready()) return true;
    if (p.scales_from_zero && !p.pool->start_failing(p.pool->clock().now())) return true;
  }
  return false;
}

std::string EndpointRuntime::last_start_failure() const {
  for (const PoolRuntime& p : pools)
    if (!p.pool->last_start_failure().empty()) return p.pool->last_start_failure();
  return {};
}

void Gateway::start() {
  for (auto& ep : runtimes_)
    for (PoolRuntime& p : ep->pools) p.pool->start();
  last_tick_ = clock_.now();
  ticker_ = timers_->call_after(tick_ms_, [this] { tick(); });
}

void Gateway::tick() {
  if (stopping_) return;
  const TimePoint now = clock_.now();
  const Duration elapsed = now - last_tick_;
  last_tick_ = now;
  for (auto& ep : runtimes_) {
    if (ep->stopped) continue;
    if (ep->retiring && ep->active == 0) {
      // Released by a rollout and drained: its workers stop now.
      ep->stopped = true;
      for (PoolRuntime& p : ep->pools) p.pool->shutdown();
      spdlog::info("endpoint {}: version {} released", ep->config.name, ep->manifest.version);
      continue;
    }
    // Metering: dedicated reservations accrue while the server runs; serverless workers
    // accrue while they run (cold start and idle included).
    for (PoolRuntime& p : ep->pools) {
      if (p.kind == policy::Tier::dedicated) {
        p.cost_total->inc(p.cost->accrue(elapsed, p.reserved_workers));
      } else {
        p.cost_total->inc(p.cost->accrue(elapsed, p.pool->billable_workers()));
        control(p, now);
      }
    }
  }
  if (rollouts_) rollouts_->tick(now);
  ticker_ = timers_->call_after(tick_ms_, [this] { tick(); });
}

void Gateway::control(PoolRuntime& p, TimePoint now) {
  if (!p.autoscaler || stopping_) return;
  auto& pool = *p.pool;
  auto demand = pool.take_demand(now);
  auto snapshot = pool.snapshot();
  policy::AutoscalerObservation observation;
  observation.now = now;
  observation.concurrency = demand.average_concurrency;
  observation.instant_demand = demand.instant_demand;
  observation.arrivals = demand.arrivals;
  observation.ready_workers = snapshot.ready_workers;
  observation.live_workers = snapshot.live_workers;
  auto decision = p.autoscaler->observe(observation);
  p.desired_workers->set(decision.desired_workers);
  p.panic->set(decision.panic ? 1 : 0);
  pool.set_desired(decision.desired_workers);
}

Gateway::~Gateway() { ticker_.cancel(); }

void Gateway::shutdown() {
  stopping_ = true;
  ticker_.cancel();
  for (auto& ep : runtimes_)
    for (PoolRuntime& p : ep->pools) p.pool->shutdown();
}

void Gateway::kill_remaining() {
  for (auto& ep : runtimes_)
    for (PoolRuntime& p : ep->pools) p.pool->kill_remaining();
}

bool Gateway::all_endpoints_ready() const {
  for (const auto& slot : slots_)
    if (!slot->stable->any_ready()) return false;
  return true;
}

EndpointSlot* Gateway::slot(std::string_view name) {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<EndpointSlot*> Gateway::slots() {
  std::vector<EndpointSlot*> out;
  for (auto& s : slots_) out.push_back(s.get());
  return out;
}

EndpointRuntime* Gateway::add_runtime(const EndpointConfig& config, ModelManifest manifest,
                                      const std::string& worker_prefix) {
  auto runtime = make_runtime(config, std::move(manifest), worker_prefix);
  runtime->slot = slot(config.name);
  for (PoolRuntime& p : runtime->pools) p.pool->start();
  runtimes_.push_back(std::move(runtime));
  return runtimes_.back().get();
}

void Gateway::retire(EndpointRuntime* runtime) { runtime->retiring = true; }

EndpointRuntime& Gateway::pick(EndpointSlot& slot, std::string_view session, std::string_view version) {
  EndpointRuntime* candidate = slot.candidate;
  if (candidate == nullptr) return *slot.stable;
  // A request that names a version gets that version.
  if (!version.empty()) {
    if (version == candidate->manifest.version || version == candidate->manifest.digest) return *candidate;
    return *slot.stable;
  }
  if (slot.candidate_percent <= 0) return *slot.stable;
  if (slot.candidate_percent >= 100) return *candidate;
  // Sticky per session: the same x-tandem-session always lands on the same side of the split
  // (FNV-1a of the header), so a user sees one version through a step.
  std::uint64_t bucket = 0;
  if (!session.empty()) {
    std::uint64_t h = 1469598103934665603ULL;
    for (char c : session) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    bucket = h % 100;
  } else {
    // splitmix64: an even split without a shared random engine.
    std::uint64_t z = (split_state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    bucket = (z ^ (z >> 31)) % 100;
  }
  return bucket < static_cast<std::uint64_t>(slot.candidate_percent) ? *candidate : *slot.stable;
}

http::Reply Gateway::error_response(const Error& error, const std::string& endpoint) {
  int status = http_status(error.code);
  auto res = http::json_response(static_cast<unsigned>(status), v2::encode_error(error.message));
  if (status == 503) res.set("Retry-After", "1");
  if (endpoint.empty()) unrouted_.with({std::to_string(status)}).inc();
  return res;
}

namespace {

/// An awaitable that is ready with `reply`.
asio::awaitable<http::Reply> reply_now(http::Reply reply) { co_return reply; }

} // namespace

asio::awaitable<http::Reply> Gateway::handle(http::Request& request) {
  // Not a coroutine itself: an inference request, the hot path, goes straight to infer()
  // without a coroutine frame of its own (this one is large enough that Asio cannot recycle
  // it, so it cost a malloc and a free per request). Everything else is route()'s.
  if (request.method() == verb::post) {
    if (auto path = v2::parse_model_path(v2::strip_query(request.target()));
        path && path->action == v2::ModelAction::infer) {
      if (auto it = by_name_.find(path->name); it != by_name_.end()) {
        EndpointRuntime& ep = pick(*it->second, request["x-tandem-session"], path->version);
        if (!path->version.empty() && path->version != ep.manifest.version && path->version != ep.manifest.digest)
          return reply_now(no_such_version(ep, path->version));
        return serve_v2(ep, request);
      }
    }
  }
  return route(request);
}

namespace {

Error no_such_version_error(const EndpointRuntime& ep, std::string_view version) {
  return {ErrorCode::not_found, "model \"" + ep.config.name + "\" has no version " + v2::quote_value(version) +
                                    " (serving " + ep.manifest.version + ")"};
}

} // namespace

http::Reply Gateway::no_such_version(const EndpointRuntime& ep, std::string_view version) {
  return error_response(no_such_version_error(ep, version), "");
}

asio::awaitable<http::Reply> Gateway::route(http::Request& request) {
  std::string_view target = v2::strip_query(request.target());
  auto only_get = [&]() -> std::optional<http::Reply> {
    if (request.method() == verb::get || request.method() == verb::head) return std::nullopt;
    auto res = error_response({ErrorCode::method_not_allowed,
                               std::string(request.method_string()) + " is not allowed on " + std::string(target)}, "");
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
  // What follows '?' in the request target, for the APIs that take query parameters.
  auto query_string = [&]() -> std::string_view {
    const std::string_view full = request.target();
    return full.size() > target.size() ? full.substr(target.size() + 1) : std::string_view();
  };
  if (target.substr(0, 10) == "/admin/v1/") {
    const std::string_view query = query_string();
    if (rollouts_ && target.substr(0, 18) == "/admin/v1/rollouts") co_return rollouts_->handle(request, target, query);
    if (options_.admin)
      if (auto reply = options_.admin->handle(request, target, query)) co_return std::move(*reply);
  }
  if (job_api_ && target.substr(0, 11) == "/runpod/v2/") co_return co_await job_api_(request, target, query_string());
  if (auto path = v2::parse_model_path(target)) {
    auto it = by_name_.find(path->name);
    if (it == by_name_.end())
      co_return error_response({ErrorCode::not_found, "unknown model " + v2::quote_value(path->name)}, "");
    EndpointRuntime& ep = pick(*it->second, request["x-tandem-session"], path->version);
    if (!path->version.empty() && path->version != ep.manifest.version && path->version != ep.manifest.digest)
      co_return no_such_version(ep, path->version);
    if (path->action == v2::ModelAction::infer) {
      if (request.method() != verb::post) {
        auto res = error_response({ErrorCode::method_not_allowed,
                                   std::string(request.method_string()) + " is not allowed on " +
                                       std::string(target) + "; use POST"}, "");
        res.set("Allow", "POST");
        co_return res;
      }
      co_return co_await serve_v2(ep, request);
    }
    if (auto r = only_get()) co_return *r;
    co_return model_route(ep, path->action == v2::ModelAction::ready);
  }
  co_return error_response({ErrorCode::not_found, "no route for " + std::string(request.method_string()) + " " +
                                                      std::string(target)}, "");
}

http::Reply Gateway::model_route(const EndpointRuntime& ep, bool ready_only) {
  if (ready_only) {
    bool ready = ep.any_ready();
    std::string body = R"({"name":")" + v2::json_escape(ep.config.name) + R"(","ready":)" + (ready ? "true" : "false");
    // Not ready: say why when a worker start failed (the worker's own last error line included).
    if (const std::string why = ready ? std::string() : ep.last_start_failure(); !why.empty())
      body += R"(,"reason":")" + v2::json_escape(why) + "\"";
    return http::json_response(ready ? 200 : 503, body + "}");
  }
  return http::json_response(200, v2::encode_model_metadata(ep.config.name, ep.manifest.version, "onnx",
                                                            ep.manifest.schema));
}

http::Reply Gateway::metrics_response() {
  auto res = http::json_response(200, metrics_.render());
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return res;
}

void Gateway::count(const EndpointRuntime& ep, std::string_view tier, int status, std::optional<ErrorCode> error,
                    double seconds) {
  const std::string tier_label(tier);
  requests_.with({ep.config.name, ep.manifest.version, tier_label, std::to_string(status)}).inc();
  if (error) errors_.with({ep.config.name, std::string(error_label(*error))}).inc();
  durations_.with({ep.config.name, ep.manifest.version, tier_label}).observe(seconds);
}

void Gateway::start_trace(std::string_view traceparent, InferTrace& t) {
  // W3C trace context: keep the caller's trace id and sampling decision; else start a trace,
  // sampled at the configured ratio.
  ids_.fill_hex(t.span_id.digits.data(), t.span_id.digits.size());
  if (auto incoming = telemetry::parse_traceparent(traceparent)) {
    t.trace_id = std::move(incoming->trace_id);
    t.parent_span_id = std::move(incoming->span_id);
    t.sampled = incoming->sampled;
  } else {
    t.trace_id.resize(32);
    ids_.fill_hex(t.trace_id.data(), 32);
    const double ratio = options_.trace_sample_ratio;
    // The decision is a function of the trace id, so every hop that samples by ratio agrees.
    t.sampled = ratio >= 1.0;
    if (!t.sampled && ratio > 0.0) {
      std::uint64_t low = 0;
      std::from_chars(t.trace_id.data() + 16, t.trace_id.data() + 32, low, 16);
      t.sampled = static_cast<double>(low >> 11) < ratio * static_cast<double>(1ULL << 53);
    }
  }
}

namespace {

// The Host of a local worker, nearly every worker today: the head is written with it once.
constexpr std::string_view kLoopbackHost = "127.0.0.1";

// Request bodies from this size on are hashed for the audit record after their reply is written.
constexpr std::size_t kDeferredDigestMinBytes = 4096;

std::int64_t unix_ns_at(const InferTrace& t, TimePoint at) {
  return t.started_unix_ns + std::chrono::duration_cast<std::chrono::nanoseconds>(at - t.started).count();
}

} // namespace

void Gateway::finish_trace(const EndpointRuntime& ep, std::string_view body, InferTrace& t,
                           engine::InferenceResult& result) {
  const int status = result.http_status();
  if (options_.tracer && t.sampled) export_spans(ep, t, status);
  if (outcomes_.observed(ep.config.name)) {
    Outcome o;
    o.runtime = &ep;
    o.endpoint = ep.config.name;
    o.model_version = ep.manifest.version;
    o.tier = result.tier;
    o.pool = result.pool;
    o.worker = result.worker;
    o.status = status;
    o.error = t.error;
    o.attempts = result.attempts;
    o.queue_ms = result.queue_ms;
    o.cold_start_ms = to_ms(t.cold_start);
    o.upstream_ms = result.upstream_ms;
    o.total_ms = result.total_ms;
    o.cost_usd = result.cost_usd;
    o.body = result.body;
    outcomes_.publish(o);
  }
  if (spdlog::should_log(spdlog::level::debug)) {
    LogContext context(t.request_id, t.trace_id);
    spdlog::debug("{} -> {} tier={} worker={} attempts={} total_ms={:.3f}", ep.config.name, status, t.tier,
                  t.worker, result.attempts, result.total_ms);
  }
  // Last, because the record takes the trace's strings instead of copying them.
  if (options_.audit) {
    registry::AuditRecord r;
    r.request_id = std::move(t.request_id);
    r.client_request_id = std::move(t.client_request_id);
    r.trace_id = std::move(t.trace_id);
    r.time_unix_ms = t.started_unix_ns / 1'000'000;
    r.endpoint = ep.config.name;
    r.model_version = ep.manifest.version;
    r.tier = std::move(t.tier);
    r.worker = std::move(t.worker);
    r.status = status;
    r.error_code = std::move(t.error_code);
    r.attempts = result.attempts;
    r.queue_ms = result.queue_ms;
    r.cold_start_ms = to_ms(t.cold_start);
    r.upstream_ms = result.upstream_ms;
    r.total_ms = result.total_ms;
    r.cost_usd = result.cost_usd;
    if (options_.audit_input_sha256) {
      // SHA-256 runs at ~1.7 GB/s: 0.8 ms for a 1.3 MB tensor, which the client waited for. A
      // body of a few KiB or more is hashed once its reply is written; a small one at once,
      // cheaper than the deferral's closure.
      if (body.size() >= kDeferredDigestMinBytes) {
        result.after_answer = [audit = options_.audit, record = std::move(r)](std::string_view sent) mutable {
          record.input_sha256 = sha256_hex(sent);
          audit->submit(std::move(record));
        };
        return;
      }
      r.input_sha256 = sha256_hex(body);
    }
    options_.audit->submit(std::move(r));
  }
}

void Gateway::export_spans(const EndpointRuntime& ep, const InferTrace& t, int status) {
  using telemetry::Span;
  using telemetry::SpanKind;
  auto make = [&](std::string name, SpanKind kind, TimePoint from, TimePoint to, std::string_view parent) {
    Span span;
    span.trace_id = t.trace_id;
    span.span_id.resize(16);
    ids_.fill_hex(span.span_id.data(), 16);
    span.parent_span_id = std::string(parent);
    span.name = std::move(name);
    span.kind = kind;
    span.start_unix_ns = unix_ns_at(t, from);
    span.end_unix_ns = unix_ns_at(t, std::max(from, to));
    return span;
  };
  const TimePoint finished = clock_.now();
  Span root = make("POST /v2/models/" + ep.config.name + "/infer", SpanKind::server, t.started, finished,
                   t.parent_span_id);
  root.span_id = std::string(t.span_id.view());
  root.attributes = {{"http.request.method", std::string("POST")},
                     {"http.response.status_code", static_cast<std::int64_t>(status)},
                     {"tandem.request_id", t.request_id},
                     {"tandem.client_request_id", t.client_request_id},
                     {"tandem.endpoint", ep.config.name},
                     {"tandem.model_version", ep.manifest.version},
                     {"tandem.tier", t.tier},
                     {"tandem.attempts", static_cast<std::int64_t>(t.attempts.size())},
                     {"tandem.cost_usd", t.cost_usd}};
  if (!t.worker.empty()) root.attributes.emplace_back("tandem.worker", t.worker);
  if (status >= 500 || !t.error_code.empty()) {
    root.error = status >= 500;
    root.attributes.emplace_back("error.type", t.error_code.empty() ? std::to_string(status) : t.error_code);
    if (root.error) root.status_message = t.error_code;
  }
  const TimePoint validated = t.validated == TimePoint{} ? finished : t.validated;
  options_.tracer->submit(make("validate", SpanKind::internal, t.started, validated, t.span_id.view()));
  if (t.routed != TimePoint{}) {
    Span route = make("route", SpanKind::internal, validated, t.routed, t.span_id.view());
    route.attributes = {{"tandem.route.tier", t.route_tier},
                        {"tandem.route.reason", t.route_reason},
                        {"tandem.route.candidates", t.route_candidates}};
    options_.tracer->submit(std::move(route));
  }
  if (t.queue_wait) {
    options_.tracer->submit(
        make("queue_wait", SpanKind::internal, t.queue_wait->first, t.queue_wait->second, t.span_id.view()));
    if (t.cold_start.count() > 0) {
      // The request waited while a worker started: the cold start ends where the wait ends.
      const TimePoint end = t.queue_wait->second;
      Span cold = make("cold_start", SpanKind::internal, end - t.cold_start, end, t.span_id.view());
      cold.attributes = {{"tandem.worker", t.worker}};
      options_.tracer->submit(std::move(cold));
    }
  }
  for (const auto& a : t.attempts) {
    Span call = make("upstream " + ep.upstream_infer_target, SpanKind::client, a.started, a.finished,
                     t.span_id.view());
    call.span_id = std::string(a.span_id.view());
    call.attributes = {{"tandem.worker", a.worker}};
    if (a.status > 0) call.attributes.emplace_back("http.response.status_code", static_cast<std::int64_t>(a.status));
    if (a.status == 0 || a.status >= 500) {
      call.error = true;
      call.status_message = a.error;
    }
    options_.tracer->submit(std::move(call));
  }
  options_.tracer->submit(std::move(root));
}

bool Gateway::has_endpoint(std::string_view endpoint) const { return by_name_.contains(endpoint); }

int Gateway::capacity(std::string_view endpoint) const {
  auto it = by_name_.find(endpoint);
  if (it == by_name_.end()) return 0;
  int total = 0;
  for (const PoolRuntime& p : it->second->stable->pools) {
    const auto& o = p.pool->options();
    total += o.max_workers * o.max_concurrency_per_worker;
  }
  return total;
}

Status Gateway::validate(std::string_view endpoint, std::string_view input_json) const {
  auto it = by_name_.find(endpoint);
  if (it == by_name_.end()) return Error{ErrorCode::not_found, "unknown endpoint \"" + std::string(endpoint) + "\""};
  auto decoded = v2::validate_infer_request(input_json, it->second->stable->manifest.schema);
  if (!decoded) return decoded.error();
  return Ok{};
}

engine::WorkerCounts Gateway::worker_counts(std::string_view endpoint) const {
  engine::WorkerCounts counts;
  auto it = by_name_.find(endpoint);
  if (it == by_name_.end()) return counts;
  for (const EndpointRuntime* ep : {it->second->stable, it->second->candidate}) {
    if (ep == nullptr) continue;
    for (const PoolRuntime& p : ep->pools) {
      for (const auto& w : p.pool->describe()) {
        if (w.state == pool::WorkerState::starting) ++counts.initializing;
        if (w.state != pool::WorkerState::ready) continue;
        if (w.ejected) {
          ++counts.throttled;
          continue;
        }
        ++counts.ready;
        ++(w.in_flight > 0 ? counts.running : counts.idle);
      }
    }
  }
  return counts;
}

asio::awaitable<engine::InferenceResult> Gateway::infer(const engine::InferenceRequest& request) {
  auto it = by_name_.find(request.endpoint);
  if (it == by_name_.end()) {
    engine::InferenceResult unknown;
    unknown.error = Error{ErrorCode::not_found, "unknown model " + v2::quote_value(request.endpoint)};
    co_return unknown;
  }
  EndpointRuntime& ep = pick(*it->second, request.session, request.version);
  if (!request.version.empty() && request.version != ep.manifest.version && request.version != ep.manifest.digest) {
    engine::InferenceResult unknown;
    unknown.error = no_such_version_error(ep, request.version);
    co_return unknown;
  }
  co_return co_await run(ep, request);
}

asio::awaitable<http::Reply> Gateway::serve_v2(EndpointRuntime& ep, http::Request& request) {
  engine::InferenceRequest in;
  // A malformed header is still an inference request: answered, counted and audited by the
  // engine like any other refusal.
  const std::optional<Error> refused = v2_inference_request(request, ep.config.name, in);
  engine::InferenceResult result = co_await run(ep, in, refused ? &*refused : nullptr);
  co_return v2_reply(std::move(result));
}

/// One inference request's state, allocated once per request. infer() keeps only a pointer to
/// it: Asio recycles a coroutine frame only below 1 KiB, and GCC gives every local of a
/// coroutine its own place in the frame. With this state on the heap and the work between
/// suspensions in the plain functions below, the frame fits. Before, infer() and
/// infer_attempts() were two coroutines, the second 2.1 KiB: every request paid aligned
/// allocations for it and for the smaller frames it evicted from Asio's cache. Its block is
/// kept for the next request on the thread (Recycled).
struct Gateway::Attempts final : Recycled<Gateway::Attempts> {
  Attempts(EndpointRuntime& endpoint, const engine::InferenceRequest& req) : ep(endpoint), request(req) {}
  EndpointRuntime& ep;
  const engine::InferenceRequest& request;
  InferTrace t;
  TimePoint deadline{};
  bool low_priority = false;
  std::optional<policy::Tier> preferred; // the tier the policy prefers; serving elsewhere is a spillover
  // The body is forwarded as received; only the head is written anew. The traceparent's span
  // id (the upstream call's span) is rewritten in place for each attempt.
  std::string upstream_head;
  std::size_t upstream_span_offset = 0;
  std::size_t host_offset = 0; // of the Host value in upstream_head
  std::size_t host_length = 0;
  int attempts = 1;
  int attempt = 0;
  // The message is written only if it is needed: building it on every request was two allocations.
  Error last_error{ErrorCode::unavailable, {}};
  std::optional<std::size_t> avoid; // the worker that just failed
  std::optional<std::size_t> failed_pool; // the pool of the attempt that just failed
  // The current attempt.
  decltype(policy::RouteDecision::steps) steps{}; // where to look for a worker slot, in order
  int step_count = 0;
  std::optional<pool::Lease> lease;
  std::size_t used = 0; // the pool of the current attempt
  bool wait_failed = false; // the queue wait ended without a slot (a.last_error says why)
  TimePoint since{};        // when the queue wait, then the upstream call, started
  TimePoint attempt_deadline{};
  engine::InferenceResult result;
  bool answered = false; // result holds the answer
};

void Gateway::fail(Attempts& a, const Error& e, std::string_view tier) {
  a.t.error_code = std::string(error_label(e.code));
  a.t.error = e.code;
  count(a.ep, tier, http_status(e.code), e.code, to_seconds(clock_.now() - a.t.started));
  a.result.error = e;
  a.answered = true;
}

bool Gateway::admit(Attempts& a, const Error* refused) {
  EndpointRuntime& ep = a.ep;
  const engine::InferenceRequest& request = a.request;
  InferTrace& t = a.t;
  if (refused != nullptr) {
    fail(a, *refused, "none");
    return false;
  }
  a.deadline = request.deadline ? *request.deadline : t.started + ep.config.slo.timeout_ms;
  if (request.timeout_ms.count() > 0) a.deadline = std::min(a.deadline, t.started + request.timeout_ms);
  a.low_priority = request.priority == engine::Priority::low;
  auto decoded = v2::validate_infer_request(request.body, ep.manifest.schema);
  const bool traced = t.sampled && options_.tracer != nullptr;
  if (traced) t.validated = clock_.now(); // for the validate span only: a clock read saved
  if (!decoded) {
    fail(a, decoded.error(), "none");
    return false;
  }

  char length[24];
  auto length_end = std::to_chars(length, length + sizeof length, request.body.size()).ptr;
  std::string& head = a.upstream_head;
  head.reserve(256);
  // The Host line is the chosen worker's (start_upstream() rewrites it when that differs).
  head.append("POST ").append(ep.upstream_infer_target).append(" HTTP/1.1\r\nHost: ");
  a.host_offset = head.size();
  a.host_length = kLoopbackHost.size();
  head.append(kLoopbackHost).append("\r\n");
  head.append("Content-Type: application/json\r\nx-request-id: ").append(t.request_id);
  head.append("\r\ntraceparent: ");
  a.upstream_span_offset = head.size() + 36;
  head.append(telemetry::TraceparentText(t.trace_id, t.span_id.view(), t.sampled).view());
  head.append("\r\nContent-Length: ").append(length, length_end).append("\r\n\r\n");

  ep.retry_budget.on_request();
  a.preferred = ep.routing == policy::RoutingPolicy::serverless_first
                    ? std::optional(policy::Tier::serverless)
                : (ep.routing == policy::RoutingPolicy::dedicated_first ||
                   ep.routing == policy::RoutingPolicy::cost_optimal)
                    ? std::optional(policy::Tier::dedicated)
                    : std::nullopt;
  a.attempts = 1 + ep.config.retries;
  return true;
}

bool Gateway::plan_attempt(Attempts& a) {
  EndpointRuntime& ep = a.ep;
  InferTrace& t = a.t;
  a.lease.reset();
  a.wait_failed = false;
  const TimePoint now = clock_.now();
  const double remaining_ms = to_ms(a.deadline - now);
  if (remaining_ms <= 0) {
    a.last_error = {ErrorCode::deadline_exceeded, "the request's deadline passed"};
    return false;
  }
  policy::RouteInput input;
  input.policy = ep.routing;
  input.deadline_ms = remaining_ms;
  // The first attempt aims at the SLO; a retry only has to beat the deadline.
  const double slo_left_ms = static_cast<double>(ep.config.slo.p95_ms.count()) - to_ms(now - t.started);
  input.budget_ms =
      a.attempt == 0 && ep.config.slo.p95_ms.count() > 0 ? std::min(slo_left_ms, remaining_ms) : remaining_ms;
  input.low_priority = a.low_priority;
  input.retry_pool = a.failed_pool;
  const double cold_hint_ms = ep.cold_start_hint_ms();
  // As many states as pools (nearly always one or two): no heap, nothing built for pools not there.
  boost::container::small_vector<policy::TierState, 2> states;
  const std::size_t pool_count = ep.pools.size();
  for (std::size_t i = 0; i < pool_count; ++i) states.push_back(ep.pools[i].state(ep.service_prior_ms(i), cold_hint_ms));
  const policy::RouteDecision decision = policy::route(input, std::span(states.data(), states.size()));
  a.steps = decision.steps;
  a.step_count = decision.count;
  if (a.attempt == 0) {
    if (t.sampled && options_.tracer) {
      t.routed = clock_.now();
      t.route_tier = decision.count > 0 ? ep.pools[decision.steps[0].pool].name : "none";
      t.route_reason = decision.reject != policy::RejectReason::none
                           ? "rejected: " + std::string(policy::to_string(decision.reject))
                           : std::string(decision.reason);
      for (std::size_t i = 0; i < pool_count; ++i) {
        const policy::TierState& state = states[i];
        auto wait = policy::predicted_wait_ms(state, !a.low_priority);
        if (!t.route_candidates.empty()) t.route_candidates += "; ";
        t.route_candidates += ep.pools[i].name + " ready=" + std::to_string(state.ready_workers) +
                              " free=" + std::to_string(state.free_slots()) + " predicted_wait_ms=" +
                              (wait ? fixed_decimal(*wait, 1) : std::string("unavailable"));
      }
    }
  }
  if (decision.reject == policy::RejectReason::none) return true;
  rejected_.with({ep.config.name, std::string(policy::to_string(decision.reject))}).inc();
  if (decision.reject == policy::RejectReason::no_healthy_tier) {
    // On a retry, the worker's own failure is the better answer than "nothing left".
    if (a.attempt == 0)
      a.last_error = {ErrorCode::no_capacity, "endpoint " + ep.config.name + " has no healthy worker"};
  } else if (a.attempt == 0) {
    char wait_text[64];
    std::snprintf(wait_text, sizeof wait_text, "%.0f ms", decision.predicted_wait_ms);
    fail(a,
         {ErrorCode::overloaded, decision.reject == policy::RejectReason::low_priority
                                     ? std::string("low-priority request refused: no idle capacity")
                                     : "endpoint " + ep.config.name + " is overloaded: predicted wait " + wait_text +
                                           " exceeds the request's latency budget"},
         "none");
    a.result.retry_after_s = decision.retry_after_s;
  }
  return false;
}

bool Gateway::end_wait(Attempts& a, std::size_t pool_waited, bool queued) {
  PoolRuntime& tier = a.ep.pools[pool_waited];
  InferTrace& t = a.t;
  // A slot taken at once was a wait of zero: no second clock read for it.
  const TimePoint wait_ended = queued ? clock_.now() : a.since;
  const Duration waited_for = wait_ended - a.since;
  t.queue += waited_for;
  if (!t.queue_wait)
    t.queue_wait.emplace(a.since, wait_ended);
  else
    t.queue_wait->second = wait_ended;
  tier.queue_wait->observe(to_seconds(waited_for));
  if (!a.wait_failed) return true;
  t.tier = std::string(policy::to_string(tier.kind));
  if (a.last_error.code == ErrorCode::queue_full) rejected_.with({a.ep.config.name, "queue_full"}).inc();
  return false;
}

void Gateway::no_lease(Attempts& a) {
  if (a.low_priority && a.last_error.code == ErrorCode::unavailable) {
    rejected_.with({a.ep.config.name, "low_priority"}).inc();
    a.last_error = {ErrorCode::overloaded, "low-priority request refused: no idle capacity"};
  }
}

void Gateway::start_upstream(Attempts& a) {
  InferTrace& t = a.t;
  const pool::Lease& lease = *a.lease;
  t.tier = std::string(policy::to_string(a.ep.pools[a.used].kind));
  t.worker = lease.worker_id();
  if (auto cold = lease.cold_start()) t.cold_start += std::chrono::duration_cast<Duration>(*cold);
  if (const std::string& host = lease.host();
      host.size() != a.host_length || a.upstream_head.compare(a.host_offset, a.host_length, host) != 0) {
    a.upstream_head.replace(a.host_offset, a.host_length, host);
    a.upstream_span_offset = a.upstream_span_offset - a.host_length + host.size();
    a.host_length = host.size();
  }
  auto& record = t.attempts.emplace_back();
  ids_.fill_hex(record.span_id.digits.data(), record.span_id.digits.size());
  std::copy(record.span_id.digits.begin(), record.span_id.digits.end(),
            a.upstream_head.begin() + static_cast<long>(a.upstream_span_offset));
  record.worker = lease.worker_id();
  a.since = clock_.now();
  record.started = a.since;
  a.attempt_deadline = a.deadline;
  if (a.ep.config.per_try_timeout_ms.count() > 0)
    a.attempt_deadline = std::min(a.deadline, a.since + a.ep.config.per_try_timeout_ms);
}

bool Gateway::finish_upstream(Attempts& a, Result<http::UpstreamResponse>& response) {
  EndpointRuntime& ep = a.ep;
  InferTrace& t = a.t;
  const pool::Lease& lease = *a.lease;
  const TimePoint upstream_done = clock_.now();
  auto& record = t.attempts.back();
  record.finished = upstream_done;
  t.upstream += upstream_done - a.since;
  if (response) record.status = static_cast<int>(response->status);
  auto& tier = ep.pools[a.used];
  const double cost = tier.cost->attribute(upstream_done - a.since, lease.sharing());
  t.cost_usd += cost;
  const bool success = response && response->status < 500;
  lease.report(success);
  if (success) {
    tier.service.observe(to_ms(upstream_done - a.since));
    // Counted once per answered request: served elsewhere than the policy prefers.
    if (a.preferred && tier.kind != *a.preferred && ep.first_of(*a.preferred) != nullptr)
      spillovers_
          .with({ep.config.name, std::string(policy::to_string(*a.preferred)), t.tier,
                 a.failed_pool && ep.pools[*a.failed_pool].kind == *a.preferred ? "fallback" : "saturated"})
          .inc();
    const int status = static_cast<int>(response->status);
    engine::InferenceResult& out = a.result;
    a.answered = true;
    out.worker_status = status;
    if (response->content_type != "application/json") out.content_type = std::move(response->content_type);
    out.body = std::move(response->body);
    if (auto cold = lease.cold_start()) out.cold_start_ms = to_ms(*cold);
    out.attempt_cost_usd = cost;
    const double elapsed_seconds = to_seconds(upstream_done - t.started);
    if (status == 200) {
      tier.requests_ok->inc();
      tier.duration->observe(elapsed_seconds);
    } else {
      t.error_code = "worker_" + std::to_string(status);
      t.error = ErrorCode::worker_rejected_input;
      out.error = Error{ErrorCode::worker_rejected_input, {}};
      count(ep, t.tier, status, ErrorCode::worker_rejected_input, elapsed_seconds);
    }
    return false;
  }
  std::string reason;
  if (response) {
    a.last_error = {ErrorCode::upstream_error, "worker " + lease.worker_id() + " answered " +
                                                   std::to_string(response->status) + ": " +
                                                   response->body.substr(0, 512)};
    reason = "worker_status";
  } else {
    a.last_error = response.error();
    if (a.last_error.code == ErrorCode::deadline_exceeded) {
      reason = "timeout";
    } else {
      lease.mark_unreachable();
      reason = "transport";
    }
  }
  record.error = a.last_error.message.substr(0, 200);
  a.avoid = lease.worker_index();
  a.failed_pool = a.used;
  {
    LogContext context(t.request_id, t.trace_id);
    spdlog::warn("attempt {} on worker {} failed: {}", a.attempt + 1, lease.worker_id(), record.error);
  }
  if (a.attempt + 1 >= a.attempts || clock_.now() >= a.deadline) return false;
  if (!ep.retry_budget.try_retry()) {
    retries_denied_.with({ep.config.name}).inc();
    return false;
  }
  retries_.with({ep.config.name, reason}).inc();
  return true;
}

void Gateway::give_up(Attempts& a) {
  if (a.last_error.message.empty())
    a.last_error.message = "endpoint " + a.ep.config.name + " has no pool its routing policy may use";
  fail(a, a.last_error, a.t.tier);
}

void Gateway::seal(Attempts& a) {
  const InferTrace& t = a.t;
  engine::InferenceResult& out = a.result;
  out.request_id = t.request_id;
  out.client_request_id = t.client_request_id;
  out.traceparent = telemetry::TraceparentText(t.trace_id, t.span_id.view(), t.sampled).view();
  out.tier = t.tier;
  out.pool = t.tier == "none" ? std::string() : a.ep.pools[a.used].name;
  out.worker = t.worker;
  out.model_version = a.ep.manifest.version;
  out.attempts = static_cast<int>(t.attempts.size());
  out.queue_ms = to_ms(t.queue);
  out.upstream_ms = to_ms(t.upstream);
  out.total_ms = to_ms(clock_.now() - t.started);
  out.cost_usd = t.cost_usd;
}

asio::awaitable<engine::InferenceResult> Gateway::run(EndpointRuntime& ep, const engine::InferenceRequest& request,
                                                      const Error* refused) {
  const auto state = std::make_unique<Attempts>(ep, request);
  Attempts& a = *state;
  InferTrace& t = a.t;
  t.started = clock_.now();
  t.started_unix_ns = clock_.unix_ns();
  ep.in_flight->inc();
  ++in_flight_total_;
  ++ep.active;
  struct InFlightGuard {
    Gauge* gauge;
    std::size_t* total;
    int* active;
    ~InFlightGuard() {
      gauge->dec();
      --*total;
      --*active;
    }
  } guard{ep.in_flight, &in_flight_total_, &ep.active};
  // The record's id is always made here, so that no client can make another's record unreachable
  // by sending its id; the client's own id is kept beside it, echoed and searchable.
  if (is_acceptable_request_id(request.client_request_id)) t.client_request_id = std::string(request.client_request_id);
  t.request_id = ids_.next_time_ordered(t.started_unix_ns / 1'000'000);
  start_trace(request.traceparent, t);

  // Every way out of the attempts leaves the answer in a.result or the reason in a.last_error.
  if (admit(a, refused)) {
    for (a.attempt = 0; a.attempt < a.attempts; ++a.attempt) {
      if (!plan_attempt(a)) break;
      for (int step_index = 0; step_index < a.step_count && !a.lease; ++step_index) {
        const policy::RouteStep step = a.steps[static_cast<std::size_t>(step_index)];
        pool::WorkerPool& pool = *ep.pools[step.pool].pool;
        const auto avoid_here = a.failed_pool == step.pool ? a.avoid : std::nullopt;
        a.used = step.pool;
        if (!step.wait) {
          a.lease = pool.try_acquire(avoid_here);
          continue;
        }
        a.since = clock_.now();
        // A free slot is taken at once: acquire() is a coroutine of its own (a frame and a
        // resumption per request), there for waiting.
        a.lease = pool.try_acquire(avoid_here);
        const bool queued = !a.lease;
        if (queued) {
          auto waited = co_await pool.acquire(a.deadline, avoid_here);
          if (waited) {
            a.lease = std::move(*waited);
          } else {
            a.last_error = waited.error();
            a.wait_failed = true;
          }
        }
        if (!end_wait(a, step.pool, queued)) break;
      }
      if (!a.lease) {
        no_lease(a);
        break;
      }
      start_upstream(a);
      auto response = co_await a.lease->upstream().send(a.upstream_head, request.body, a.attempt_deadline);
      if (!finish_upstream(a, response)) break;
    }
  }
  a.lease.reset(); // the slot is free before the answer goes out, as on every other path
  if (!a.answered) give_up(a);
  seal(a);
  finish_trace(ep, request.body, t, a.result);
  co_return std::move(a.result);
}

http::Reply Gateway::admin_workers() const {
  std::string body = R"({"workers":[)";
  bool first = true;
  for (const auto& ep : runtimes_) {
   if (ep->stopped) continue;  // a released version
   for (const PoolRuntime& p : ep->pools) {
    for (const auto& w : p.pool->describe()) {
      if (!first) body += ',';
      first = false;
      body += R"({"id":")" + v2::json_escape(w.id) + R"(","endpoint":")" + v2::json_escape(w.endpoint) +
              R"(","tier":")" + w.tier + R"(","pool":")" + v2::json_escape(w.pool) + R"(","state":")" +
              std::string(pool::to_string(w.state)) +
              R"(","provider":")" + w.provider + R"(","instance":)" +
              (w.instance.empty() ? "null" : "\"" + v2::json_escape(w.instance) + "\"") +
              // A local worker's instance is its process id, also given as a number.
              R"(,"pid":)" + (w.provider == "local" && !w.instance.empty() ? w.instance : "null") + R"(,"address":)" +
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
