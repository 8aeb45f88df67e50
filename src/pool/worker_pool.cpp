#include "pool/worker_pool.hpp"

#include "base/clock.hpp"

#include "policy/router.hpp"
#include "pool/health_probe.hpp"

#include <spdlog/spdlog.h>

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <optional>
#include <string_view>

namespace tandem::pool {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

/// The time, read on first use only: most calls to pick() and snapshot() need none.
steady_clock::time_point read_once(const Clock& clock, std::optional<steady_clock::time_point>& now) {
  if (!now) now = clock.now();
  return *now;
}

/// Whether a worker is ejected, reading the clock only for one that has been ejected at some
/// time: otherwise it was a clock read per request, twice.
bool ejected_now(const Clock& clock, const policy::OutlierState& outlier,
                 std::optional<steady_clock::time_point>& now) {
  return outlier.ejected_until != steady_clock::time_point{} && outlier.ejected(read_once(clock, now));
}

} // namespace

std::string_view to_string(WorkerState state) {
  switch (state) {
  case WorkerState::starting: return "starting";
  case WorkerState::ready: return "ready";
  case WorkerState::draining: return "draining";
  case WorkerState::stopped: return "stopped";
  }
  return "stopped";
}

// ---- Lease ----------------------------------------------------------------------------------

Lease::Lease(WorkerPool* pool, std::size_t index, std::uint64_t generation,
             std::shared_ptr<http::Upstream> upstream, std::string worker_id, const std::string* host)
    : pool_(pool), index_(index), generation_(generation), upstream_(std::move(upstream)),
      worker_id_(std::move(worker_id)), host_(host) {}

Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), index_(other.index_), generation_(other.generation_),
      upstream_(std::move(other.upstream_)), worker_id_(std::move(other.worker_id_)), host_(other.host_),
      cold_start_(other.cold_start_), sharing_(other.sharing_) {}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    index_ = other.index_;
    generation_ = other.generation_;
    upstream_ = std::move(other.upstream_);
    worker_id_ = std::move(other.worker_id_);
    host_ = other.host_;
    cold_start_ = other.cold_start_;
    sharing_ = other.sharing_;
  }
  return *this;
}

Lease::~Lease() { release(); }

void Lease::mark_unreachable() const {
  if (pool_ != nullptr) pool_->mark_unreachable(index_, generation_);
}

void Lease::report(bool success) const {
  if (pool_ != nullptr) pool_->report(index_, generation_, success);
}

void Lease::release() {
  if (pool_ != nullptr) pool_->release(index_, generation_);
  pool_ = nullptr;
}

// ---- WorkerPool -----------------------------------------------------------------------------

WorkerPool::WorkerPool(asio::io_context& io, Timers& timers, std::unique_ptr<Provider> provider,
                       PoolOptions options, MetricsRegistry& metrics)
    : io_(io), timers_(timers), clock_(timers.clock()), provider_(std::move(provider)), options_(std::move(options)),
      rng_(std::hash<std::string>{}(options_.endpoint + options_.tier)),
      restarts_(metrics.counter("tandem_worker_restarts_total",
                                "Workers restarted after they exited or failed to start.",
                                {"endpoint", "tier"})
                    .with({options_.endpoint, options_.tier})),
      queue_rejections_(metrics.counter("tandem_pool_rejections_total",
                                        "Requests refused by a pool: queue full, deadline, shutdown.",
                                        {"endpoint", "tier", "reason"})),
      cold_starts_(metrics.counter("tandem_cold_starts_total",
                                   "Worker starts that reached ready (scale-ups, restarts and the first start).",
                                   {"endpoint", "tier"})
                       .with({options_.endpoint, options_.tier})),
      cold_start_seconds_(metrics.histogram("tandem_cold_start_duration_seconds",
                                            "Worker start to ready: process start plus model load.",
                                            {"endpoint", "tier"}, latency_buckets_seconds())
                              .with({options_.endpoint, options_.tier})),
      scale_events_up_(metrics.counter("tandem_scale_events_total", "Workers started or stopped by the autoscaler.",
                                       {"endpoint", "tier", "direction"})
                           .with({options_.endpoint, options_.tier, "up"})),
      scale_events_down_(metrics.counter("tandem_scale_events_total", "Workers started or stopped by the autoscaler.",
                                         {"endpoint", "tier", "direction"})
                             .with({options_.endpoint, options_.tier, "down"})),
      ejections_(metrics.counter("tandem_ejections_total",
                                 "Workers ejected from load balancing by outlier detection (consecutive failures).",
                                 {"endpoint", "tier"})
                     .with({options_.endpoint, options_.tier})) {
  if (!options_.scalable) options_.max_workers = options_.replicas;
  slots_.resize(static_cast<std::size_t>(std::max(options_.max_workers, 0)));
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    auto& info = slots_[i].info;
    info.id = (options_.worker_id_prefix.empty() ? options_.endpoint : options_.worker_id_prefix) + "-" +
              (options_.worker_infix.empty() ? options_.tier : options_.worker_infix) + "-" + std::to_string(i);
    info.endpoint = options_.endpoint;
    info.tier = options_.kind;
    info.pool = options_.tier;
    info.model_version = options_.model_version;
    info.provider = std::string(provider_->name());
  }
  demand_ = policy::DemandIntegral(clock_.now());
}

WorkerPool::~WorkerPool() {
  // Nothing of this pool may run after it: its timers hold `this`.
  for (auto& slot : slots_) slot.restart_timer.cancel();
  ejection_timer_.cancel();
}

void WorkerPool::start() {
  for (std::size_t i = 0; i < slots_.size() && static_cast<int>(i) < options_.replicas; ++i) {
    slots_[i].wanted = true;
    launch(i);
  }
}

void WorkerPool::launch(std::size_t index) {
  if (shutting_down_) return;
  auto& slot = slots_[index];
  const std::uint64_t generation = ++slot.generation;
  slot.started_at = clock_.now();  // also the base of the backoff if the start fails below
  slot.outlier = {};                      // a new worker starts with a clean record
  slot.last_error_line.clear();
  WorkerEvents events;
  events.ready = [this, index, generation](const WorkerAddress& address, double service_ms) {
    if (slots_[index].generation != generation) return;
    // The worker's own measure of one request (the reference worker times its warm-up run): the
    // router's prior until the pool has measured its own.
    if (service_ms > 0) service_prior_ms_ = service_ms;
    mark_ready(index, generation, address);
  };
  events.exited = [this, index, generation](const WorkerExit& exit) {
    on_exit(index, generation, exit.kind == WorkerExit::Kind::start_timed_out, exit.how);
  };
  events.error_line = [this, index, generation](const std::string& line) {
    if (slots_[index].generation == generation) slots_[index].last_error_line = line;
  };
  events.output_closed = [this, index, generation](const std::string& line) {
    on_stderr_closed(index, generation, line);
  };
  auto started = provider_->start({slot.info.id, options_.start_timeout_ms}, std::move(events));
  if (!started) {
    spdlog::error("{}", started.error().message);
    note_start_failure(started.error().message, slots_.size(), 0);
    on_exit(index, generation, false, "");
    return;
  }
  slot.worker = std::move(*started);
  slot.worker_generation = generation;
  slot.info.state = WorkerState::starting;
  slot.info.instance = slot.worker->instance();
  slot.info.address.clear();
  slot.info.in_flight = 0;
  slot.started_at = clock_.now();
}

asio::awaitable<void> WorkerPool::reprobe(std::size_t index, std::uint64_t generation) {
  const WorkerAddress address = slots_[index].address;
  // Named, not temporaries of the co_await expression (see health_probe.hpp).
  const std::function<bool()> wanted = [this, index, generation] {
    return slots_[index].generation == generation && !shutting_down_ &&
           slots_[index].info.state == WorkerState::starting;
  };
  const auto deadline = clock_.now() + options_.start_timeout_ms;
  const ProbeOutcome outcome = co_await probe_until_ready(io_, address, deadline, wanted);
  if (outcome == ProbeOutcome::ready) mark_ready(index, generation, address);
  if (outcome == ProbeOutcome::timed_out) {
    spdlog::error("worker {} did not answer its health check within {} ms; stopping it", slots_[index].info.id,
                  options_.start_timeout_ms.count());
    slots_[index].start_timed_out = true;
    if (slots_[index].worker) slots_[index].worker->kill();
  }
}

void WorkerPool::mark_ready(std::size_t index, std::uint64_t generation, const WorkerAddress& address) {
  auto& slot = slots_[index];
  if (slot.generation != generation || shutting_down_) return;
  slot.info.state = WorkerState::ready;
  slot.address = address;
  slot.info.address = address.url();
  slot.upstream = provider_->connect(io_, address, static_cast<std::size_t>(options_.max_concurrency_per_worker) + 4,
                                     options_.max_response_bytes);
  slot.ready_at = clock_.now();
  last_ready_at_ = slot.ready_at;
  auto startup = std::chrono::duration<double, std::milli>(slot.ready_at - slot.started_at).count();
  cold_starts_.inc();
  cold_start_seconds_.observe(startup / 1000.0);
  cold_start_.observe(startup);
  spdlog::info("worker {} ready at {} after {:.1f} ms", slot.info.id, slot.info.address, startup);
  notify(static_cast<std::size_t>(options_.max_concurrency_per_worker));
}

void WorkerPool::on_exit(std::size_t index, std::uint64_t generation, bool timed_out, const std::string& how) {
  auto& slot = slots_[index];
  if (slot.worker_generation == generation) {
    slot.worker.reset();
    slot.info.instance.clear();
  }
  if (slot.generation != generation) {
    // Stopped at shutdown (which moved the generation on to cancel restarts and readiness).
    if (shutting_down_ && slot.worker == nullptr && slot.info.state == WorkerState::draining) {
      slot.info.state = WorkerState::stopped;
      spdlog::info("worker {} stopped ({})", slot.info.id, how);
    }
    return;
  }
  if (timed_out) slot.start_timed_out = true;
  const std::string ended = how.empty() ? std::string("not started") : how;
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - slot.started_at);
  if (slot.upstream) {
    slot.upstream->close();
    slot.upstream.reset();
  }
  track_demand();
  // An exit before ready is a failed start (a timeout kills the worker, which ends here too).
  if (slot.info.state == WorkerState::starting && !shutting_down_ && slot.wanted)
    note_start_failure(slot.start_timed_out
                           ? "worker " + slot.info.id + " did not become ready within " +
                                 std::to_string(options_.start_timeout_ms.count()) + " ms (worker.start_timeout)"
                           : "worker " + slot.info.id + " exited (" + ended + ") " +
                                 std::to_string(uptime.count()) + " ms after it was started, before it was ready",
                       index, generation);
  slot.start_timed_out = false;
  slot.info.state = WorkerState::stopped;
  slot.info.in_flight = 0;  // leases of this generation no longer count
  if (!slot.wanted && !shutting_down_) {
    spdlog::info("worker {} stopped after scale-down ({})", slot.info.id, ended);
    return;
  }
  if (shutting_down_) {
    spdlog::info("worker {} stopped ({})", slot.info.id, ended);
    return;
  }
  auto decision = policy::decide_restart(options_.restart, slot.consecutive_failures, uptime);
  slot.consecutive_failures = decision.consecutive_failures;
  spdlog::warn("worker {} exited ({}) after {} ms; restarting in {} ms", slot.info.id, ended, uptime.count(),
               decision.delay_ms.count());
  restarts_.inc();
  ++slot.info.restarts;
  slot.restart_at = clock_.now() + decision.delay_ms;
  slot.restart_timer = timers_.call_at(slot.restart_at, [this, index, generation] {
    if (slots_[index].generation == generation) launch(index);
  });
}

void WorkerPool::release(std::size_t index, std::uint64_t generation) {
  auto& slot = slots_[index];
  if (slot.generation != generation || slot.info.in_flight <= 0) return;
  track_demand();
  --slot.info.in_flight;
  notify(1);
}

void WorkerPool::mark_unreachable(std::size_t index, std::uint64_t generation) {
  auto& slot = slots_[index];
  if (slot.generation != generation || slot.info.state != WorkerState::ready || shutting_down_) return;
  spdlog::warn("worker {} is unreachable; out of rotation until it answers its health check", slot.info.id);
  slot.info.state = WorkerState::starting;
  if (slot.upstream) {
    slot.upstream->close();
    slot.upstream.reset();
  }
  asio::co_spawn(io_, reprobe(index, generation), asio::detached);
}

void WorkerPool::report(std::size_t index, std::uint64_t generation, bool success) {
  auto& slot = slots_[index];
  if (slot.generation != generation) return;
  // Ejection windows are seconds long: a coarse read (a kernel tick behind at most) will do, and
  // this runs once per request.
  const TimePoint now = clock_.coarse_now();
  int ejected_now = 0;
  int running = 0;
  for (const auto& s : slots_) {
    ejected_now += s.outlier.ejected(now) ? 1 : 0;
    running += s.info.state == WorkerState::ready ? 1 : 0;
  }
  if (policy::record_outcome(slot.outlier, options_.outlier, success, now, ejected_now, running)) {
    ejections_.inc();
    spdlog::warn("worker {} ejected for {} ms after {} consecutive failures", slot.info.id,
                 std::chrono::duration_cast<std::chrono::milliseconds>(slot.outlier.ejected_until - now).count(),
                 options_.outlier.consecutive_failures);
    // Requests waiting for a slot are re-checked when it returns (or another frees up).
    schedule_ejection_check(now);
  }
}

void WorkerPool::schedule_ejection_check(TimePoint now) {
  // One timer, at the earliest end of an ejection still running.
  TimePoint next = TimePoint::max();
  for (const auto& s : slots_)
    if (s.outlier.ejected_until > now) next = std::min(next, s.outlier.ejected_until);
  if (next == TimePoint::max() || (ejection_check_at_ != TimePoint{} && ejection_check_at_ <= next)) return;
  ejection_timer_.cancel();
  ejection_check_at_ = next;
  ejection_timer_ = timers_.call_at(next, [this] {
    ejection_check_at_ = {};
    notify(static_cast<std::size_t>(options_.max_concurrency_per_worker));
    schedule_ejection_check(clock_.now());
  });
}

void WorkerPool::notify(std::size_t count) {
  if (count > 0 && !waiters_.empty()) track_demand();
  while (count-- > 0 && !waiters_.empty()) {
    Waiter* w = waiters_.front();
    waiters_.pop_front();
    w->notified = true;
    w->timer.cancel();
  }
}

void WorkerPool::track_demand() {
  // Twice a request: the coarse clock (the integral never runs backwards: take_demand() moves
  // it on with a precise reading).
  int in_flight = 0;
  for (const auto& slot : slots_) in_flight += slot.info.in_flight;
  demand_.advance(clock_.coarse_now(), in_flight + static_cast<int>(waiters_.size()));
}

PoolDemand WorkerPool::take_demand(steady_clock::time_point now) {
  auto snap = snapshot();
  const policy::DemandPeriod period = demand_.take(now, snap.in_flight + snap.waiting);
  PoolDemand demand;
  demand.average_concurrency = period.average_concurrency;
  demand.instant_demand = snap.in_flight + snap.waiting;
  demand.arrivals = period.arrivals;
  return demand;
}

PoolSnapshot WorkerPool::snapshot() const {
  PoolSnapshot s;
  s.max_workers = options_.max_workers;
  s.max_concurrency_per_worker = options_.max_concurrency_per_worker;
  s.waiting = static_cast<int>(waiters_.size());
  s.queue_max = options_.queue_max;
  s.cold_start_ms = cold_start_.mean_ms();
  std::optional<steady_clock::time_point> now;
  for (const auto& slot : slots_) {
    s.in_flight += slot.info.in_flight;
    switch (slot.info.state) {
    case WorkerState::ready:
      ++s.live_workers;
      if (ejected_now(clock_, slot.outlier, now)) {
        ++s.ejected_workers;
        break;
      }
      ++s.ready_workers;
      if (slot.upstream) s.free_slots += std::max(0, options_.max_concurrency_per_worker - slot.info.in_flight);
      break;
    case WorkerState::starting:
      ++s.starting_workers;
      ++s.live_workers;
      break;
    case WorkerState::draining: ++s.live_workers; break;
    case WorkerState::stopped:
      // A worker about to be restarted is on its way; one in a long crash-loop back-off is not,
      // so requests skip the tier instead of waiting for it.
      if (slot.wanted && !shutting_down_ && slot.restart_at - read_once(clock_, now) < std::chrono::seconds(1))
        ++s.starting_workers;
      break;
    }
  }
  return s;
}

int WorkerPool::billable_workers() const {
  int n = 0;
  for (const auto& slot : slots_) n += slot.worker && slot.worker->running() ? 1 : 0;
  return n;
}

void WorkerPool::set_desired(int desired) {
  if (!options_.scalable || shutting_down_) return;
  desired = std::clamp(desired, 0, static_cast<int>(slots_.size()));
  int wanted = 0;
  for (const auto& slot : slots_) wanted += slot.wanted ? 1 : 0;
  // Up: take stopped slots first (lowest index, so worker ids stay small and stable).
  for (std::size_t i = 0; i < slots_.size() && wanted < desired; ++i) {
    auto& slot = slots_[i];
    if (slot.wanted || slot.info.state != WorkerState::stopped) continue;
    slot.wanted = true;
    slot.consecutive_failures = 0;
    ++wanted;
    scale_events_up_.inc();
    launch(i);
  }
  // Down: only idle ready workers, highest index first. Busy ones wait for a later tick.
  for (std::size_t i = slots_.size(); i-- > 0 && wanted > desired;) {
    auto& slot = slots_[i];
    if (!slot.wanted || slot.info.state != WorkerState::ready || slot.info.in_flight > 0) continue;
    slot.wanted = false;
    --wanted;
    scale_events_down_.inc();
    slot.info.state = WorkerState::draining;
    if (slot.upstream) {
      slot.upstream->close();
      slot.upstream.reset();
    }
    spdlog::info("worker {} idle: scaling down", slot.info.id);
    if (slot.worker) slot.worker->stop();
  }
}

std::optional<Lease> WorkerPool::pick(std::optional<std::size_t> avoid_index) {
  // Only as many entries as workers are made: a zeroed array of 64 was a memset per request.
  boost::container::small_vector<policy::WorkerLoad, 16> loads(slots_.size());
  std::optional<steady_clock::time_point> now;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const auto& s = slots_[i];
    loads[i] = {s.info.state == WorkerState::ready && s.upstream != nullptr && !ejected_now(clock_, s.outlier, now),
                avoid_index && *avoid_index == i, s.info.in_flight, options_.max_concurrency_per_worker};
  }
  auto picked = policy::pick_worker(loads, rng_());
  if (!picked) return std::nullopt;
  track_demand();
  auto& slot = slots_[*picked];
  ++slot.info.in_flight;
  Lease lease(this, *picked, slot.generation, slot.upstream, slot.info.id, &slot.address.host);
  lease.set_sharing(slot.info.in_flight);
  return lease;
}

std::optional<Lease> WorkerPool::try_acquire(std::optional<std::size_t> avoid_index) {
  if (shutting_down_ || !waiters_.empty()) return std::nullopt;  // FIFO: do not overtake the queue
  auto lease = pick(avoid_index);
  if (lease) demand_.arrival();
  return lease;
}

asio::awaitable<Result<Lease>> WorkerPool::acquire(steady_clock::time_point deadline,
                                                   std::optional<std::size_t> avoid_index) {
  const auto arrived = clock_.now();
  demand_.arrival();
  bool was_queued = false;
  bool poked = false;
  for (;;) {
    if (shutting_down_) {
      queue_rejections_.with({options_.endpoint, options_.tier, "shutdown"}).inc();
      co_return make_error(ErrorCode::unavailable, "the server is shutting down");
    }
    if (slots_.empty()) {
      queue_rejections_.with({options_.endpoint, options_.tier, "no_workers"}).inc();
      co_return make_error(ErrorCode::no_capacity, "endpoint " + options_.endpoint + " has no " +
                                                       options_.tier + " workers configured");
    }
    // FIFO: a new arrival does not overtake requests already waiting.
    if (waiters_.empty() || was_queued) {
      if (auto lease = pick(avoid_index)) {
        const auto& slot = slots_[lease->worker_index()];
        if (was_queued && slot.ready_at >= arrived) lease->set_cold_start(clock_.now() - arrived);
        co_return std::move(*lease);
      }
    }
    // The activator: tell the autoscaler now instead of at its next tick (scale from zero).
    if (options_.scalable && demand_hook_ && !poked) {
      poked = true;
      demand_hook_();
      if (auto lease = pick(avoid_index)) co_return std::move(*lease);
    }
    if (!was_queued && waiters_.size() >= static_cast<std::size_t>(options_.queue_max)) {
      queue_rejections_.with({options_.endpoint, options_.tier, "queue_full"}).inc();
      co_return make_error(ErrorCode::queue_full,
                           "all " + options_.tier + " workers of endpoint " + options_.endpoint +
                               " are busy and its queue is full (" + options_.tier + ".queue_max " +
                               std::to_string(options_.queue_max) + ")");
    }
    if (clock_.now() >= deadline) break;
    track_demand();
    // The wait ends when notify() or the deadline cancels the timer, which itself never expires:
    // the deadline is one of the pool's timers, so that it runs on simulated time too.
    Waiter waiter{asio::steady_timer(io_, steady_clock::time_point::max()), false};
    TimerHandle deadline_timer = timers_.call_at(deadline, [&waiter] { waiter.timer.cancel(); });
    auto it = was_queued ? waiters_.insert(waiters_.begin(), &waiter) : waiters_.insert(waiters_.end(), &waiter);
    co_await waiter.timer.async_wait(asio::as_tuple(asio::use_awaitable));
    deadline_timer.cancel();
    track_demand();
    if (!waiter.notified) {
      waiters_.erase(it);
      break;
    }
    was_queued = true;
  }
  queue_rejections_.with({options_.endpoint, options_.tier, "deadline"}).inc();
  co_return make_error(ErrorCode::no_capacity, "no " + options_.tier + " worker of endpoint " +
                                                   options_.endpoint +
                                                   " had a free slot before the request's deadline");
}

void WorkerPool::shutdown() {
  shutting_down_ = true;
  for (auto& slot : slots_) {
    ++slot.generation;  // cancels pending restarts and readiness waits
    if (slot.upstream) {
      slot.upstream->close();
      slot.upstream.reset();
    }
    if (slot.worker && slot.worker->running()) {
      slot.worker->stop();
      slot.info.state = WorkerState::draining;  // stopped when its exit arrives (on_exit)
    }
  }
  notify(waiters_.size());
}

void WorkerPool::kill_remaining() {
  for (auto& slot : slots_)
    if (slot.worker && slot.worker->running()) slot.worker->kill();
}

void WorkerPool::note_start_failure(std::string what, std::size_t index, std::uint64_t generation) {
  start_failure_base_ = std::move(what);
  start_failure_index_ = index;
  start_failure_generation_ = generation;
  const std::string& said = index < slots_.size() ? slots_[index].last_error_line : std::string();
  last_start_failure_ = said.empty() ? start_failure_base_ : start_failure_base_ + ": " + said;
  last_start_failure_at_ = clock_.now();
}

void WorkerPool::on_stderr_closed(std::size_t index, std::uint64_t generation, const std::string& last_error) {
  // The exit may have been handled before the worker's last lines were read: add its reason.
  if (last_error.empty() || start_failure_index_ != index || start_failure_generation_ != generation) return;
  last_start_failure_ = start_failure_base_ + ": " + last_error;
}

bool WorkerPool::start_failing(steady_clock::time_point now, std::chrono::milliseconds memory) const {
  return !last_start_failure_.empty() && last_start_failure_at_ > last_ready_at_ &&
         now - last_start_failure_at_ <= memory;
}

bool WorkerPool::any_ready() const {
  const TimePoint now = clock_.now();
  for (const auto& s : slots_)
    if (s.info.state == WorkerState::ready && !s.outlier.ejected(now)) return true;
  return false;
}

std::vector<WorkerInfo> WorkerPool::describe() const {
  const TimePoint now = clock_.now();
  std::vector<WorkerInfo> out;
  out.reserve(slots_.size());
  for (const auto& s : slots_) {
    out.push_back(s.info);
    out.back().ejected = s.outlier.ejected(now);
  }
  return out;
}

} // namespace tandem::pool
