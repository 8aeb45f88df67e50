#pragma once
// A tier pool: the workers of one endpoint on one tier, started through a provider (pool/
// provider.hpp: local processes today), kept at the configured replica count (restart with
// backoff), and leased to requests one concurrency slot at a time. Requests that find no free
// slot wait in a bounded FIFO with a deadline.
#include "config/config.hpp"
#include "base/status.hpp"
#include "http/types.hpp"
#include "http/upstream.hpp"
#include "base/timers.hpp"
#include "policy/outlier.hpp"
#include "policy/pool_estimators.hpp"
#include "policy/restart_backoff.hpp"
#include "pool/provider.hpp"
#include "telemetry/metrics.hpp"

#include <chrono>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace tandem::pool {

enum class WorkerState { starting, ready, draining, stopped };
std::string_view to_string(WorkerState state);

struct WorkerInfo {
  std::string id;
  std::string endpoint;
  std::string tier;  // the capacity kind: dedicated or serverless
  std::string pool;  // the pool's name (the kind, for the two config keys)
  WorkerState state = WorkerState::stopped;
  std::string provider;  // which kind of provider runs it: local, ...
  std::string instance;  // the provider's own id for it (local: the process id); empty when not running
  std::string address;   // http://HOST:PORT once ready
  std::string model_version;
  int in_flight = 0;
  int restarts = 0;
  bool ejected = false;  // out of load balancing after consecutive failures
};

struct PoolOptions {
  std::string endpoint;
  std::string worker_id_prefix;  // default: the endpoint's name (a rollout's candidate adds its version)
  std::string tier;  // the pool's name: "dedicated" or "serverless" for the two config keys
  std::string worker_infix;  // in worker ids, {prefix}-{infix}-{n}: "ded", "ser"; empty: the name
  std::string kind = "dedicated";  // the capacity kind: dedicated or serverless
  int replicas = 1;         // workers started with the pool (serverless: min)
  int max_workers = 1;      // slots; a dedicated pool has exactly `replicas`
  bool scalable = false;    // serverless: set_desired() moves the count between 0 and max_workers
  int max_concurrency_per_worker = 4;
  int queue_max = 256;
  std::string model_version;
  std::chrono::milliseconds start_timeout_ms{60'000};  // also how long an unreachable worker may take to answer again
  std::size_t max_response_bytes = 256u << 20;
  policy::RestartBackoff restart;
  policy::OutlierSpec outlier;
};

class WorkerPool;

/// What the autoscaler and the router need to know about a pool, right now.
struct PoolSnapshot {
  int live_workers = 0;   // starting + ready (+ draining)
  int ready_workers = 0;  // ready and not ejected
  int ejected_workers = 0;
  int queue_max = 0;
  double cold_start_ms = 0;  // moving average of worker start to ready; 0 until measured
  int starting_workers = 0;
  int in_flight = 0;
  int waiting = 0;
  int free_slots = 0;     // on ready workers
  int max_workers = 0;
  int max_concurrency_per_worker = 1;
};

/// Demand since the previous call of WorkerPool::take_demand().
struct PoolDemand {
  double average_concurrency = 0;  // time-averaged in-flight + waiting
  double instant_demand = 0;       // in-flight + waiting now
  int arrivals = 0;
};

/// One concurrency slot on one worker, held for the duration of an upstream call.
class Lease {
public:
  Lease() = default;
  Lease(WorkerPool* pool, std::size_t index, std::uint64_t generation,
        std::shared_ptr<http::Upstream> upstream, std::string worker_id, const std::string* host);
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  [[nodiscard]] http::Upstream& upstream() const { return *upstream_; }
  [[nodiscard]] const std::string& worker_id() const { return worker_id_; }
  [[nodiscard]] std::size_t worker_index() const { return index_; }
  /// The worker's host as it is addressed: the upstream request's Host header.
  [[nodiscard]] const std::string& host() const { return *host_; }
  /// Set when this request waited for a worker that started after the request arrived.
  [[nodiscard]] std::optional<std::chrono::steady_clock::duration> cold_start() const { return cold_start_; }
  void set_cold_start(std::chrono::steady_clock::duration d) { cold_start_ = d; }
  /// Requests on this worker when the lease was taken, this one included.
  [[nodiscard]] int sharing() const { return sharing_; }
  void set_sharing(int n) { sharing_ = n; }
  /// The worker refused or dropped the connection: take it out of rotation until it answers
  /// its health check again (or its exit is noticed and it is restarted).
  void mark_unreachable() const;
  /// Feeds outlier detection: a failure (5xx, transport error, timeout) or a success.
  void report(bool success) const;

private:
  void release();
  WorkerPool* pool_ = nullptr;
  std::size_t index_ = 0;
  std::uint64_t generation_ = 0;
  std::shared_ptr<http::Upstream> upstream_;
  std::string worker_id_;
  const std::string* host_ = nullptr; // the slot's, which outlives the lease
  std::optional<std::chrono::steady_clock::duration> cold_start_;
  int sharing_ = 1;
};

class WorkerPool {
public:
  /// Lives on the io thread. Workers are started through `provider`; time is read from and
  /// waited on through `timers` (live: the steady clock; the simulator: its own).
  WorkerPool(boost::asio::io_context& io, Timers& timers, std::unique_ptr<Provider> provider, PoolOptions options,
             MetricsRegistry& metrics);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool();

  void start();
  /// Waits (bounded queue, until the deadline) for a free slot on a ready worker. The worker
  /// at `avoid_index` (if any) is used only when no other has room. A scalable pool with no
  /// free slot calls the demand hook first, so a scale-up (from zero too) starts at once.
  boost::asio::awaitable<Result<Lease>> acquire(std::chrono::steady_clock::time_point deadline,
                                                std::optional<std::size_t> avoid_index);
  /// A slot now, or nothing: never waits, never triggers a scale-up.
  std::optional<Lease> try_acquire(std::optional<std::size_t> avoid_index);
  /// Scalable pools: start or stop workers towards `desired` (clamped to [0, max_workers]).
  /// Only idle workers are stopped; busy ones are left for a later call.
  void set_desired(int desired);
  /// Called when a request finds no free slot in a scalable pool (the activator's poke).
  void on_demand(std::function<void()> hook) { demand_hook_ = std::move(hook); }
  [[nodiscard]] PoolSnapshot snapshot() const;
  /// Moving average of worker start to ready, in ms; 0 until a worker has started.
  [[nodiscard]] double cold_start_ms() const { return cold_start_.mean_ms(); }
  /// The service time per request the latest ready worker reported of itself when it started
  /// (its ready line's `service_ms=`), in ms; 0 when none did.
  [[nodiscard]] double service_prior_ms() const { return service_prior_ms_; }
  /// Demand since the last call (time-averaged), then starts a new measurement period.
  PoolDemand take_demand(std::chrono::steady_clock::time_point now);
  /// Workers that cost money now: every started worker not yet known gone.
  [[nodiscard]] int billable_workers() const;
  /// Stops restarting and stops every worker gracefully.
  void shutdown();
  /// Stops at once whatever is still running (after a grace period).
  void kill_remaining();

  [[nodiscard]] bool any_ready() const;
  /// Whether starting workers is failing: the pool's latest start attempt failed (the worker
  /// exited or timed out before it was ready, or could not be spawned), no worker has become
  /// ready since, and that failure is at most `memory` old (so a pool scaled to zero after
  /// failures tries again once it is past).
  [[nodiscard]] bool start_failing(std::chrono::steady_clock::time_point now,
                                   std::chrono::milliseconds memory = std::chrono::seconds(60)) const;
  /// The latest start failure, e.g. "worker digits-s0 exited (exit code 2) 40 ms after it was
  /// started, before it was ready: artifact: cannot load ...", with the last error line of its
  /// stderr when it wrote one; empty when there was none.
  [[nodiscard]] const std::string& last_start_failure() const { return last_start_failure_; }
  [[nodiscard]] std::vector<WorkerInfo> describe() const;
  [[nodiscard]] const PoolOptions& options() const { return options_; }
  /// The time this pool runs on.
  [[nodiscard]] const Clock& clock() const { return clock_; }

private:
  friend class Lease;
  struct Slot {
    WorkerInfo info;
    bool start_timed_out = false;  // killed for not becoming ready in time: the reason to report
    std::string last_error_line;   // the latest error its stderr showed (this generation)
    std::uint64_t generation = 0;
    std::shared_ptr<http::Upstream> upstream;
    std::chrono::steady_clock::time_point started_at{};
    std::chrono::steady_clock::time_point ready_at{};
    int consecutive_failures = 0;
    bool wanted = false;  // the pool wants this slot running (restart it if it exits)
    policy::OutlierState outlier;
    std::chrono::steady_clock::time_point restart_at{};  // when a pending restart fires
    TimerHandle restart_timer;
    WorkerAddress address;
    std::unique_ptr<ProviderWorker> worker;  // the started worker, until its exit
    std::uint64_t worker_generation = 0;     // the generation it was started as
  };
  struct Waiter {
    boost::asio::steady_timer timer;
    bool notified = false;
  };

  void launch(std::size_t index);
  boost::asio::awaitable<void> reprobe(std::size_t index, std::uint64_t generation);
  void mark_ready(std::size_t index, std::uint64_t generation, const WorkerAddress& address);
  /// `how`: how it ended; `timed_out`: it was stopped for not being ready in time.
  void on_exit(std::size_t index, std::uint64_t generation, bool timed_out, const std::string& how);
  void release(std::size_t index, std::uint64_t generation);
  void mark_unreachable(std::size_t index, std::uint64_t generation);
  void report(std::size_t index, std::uint64_t generation, bool success);
  void notify(std::size_t count);
  std::optional<Lease> pick(std::optional<std::size_t> avoid_index);
  void track_demand();

  boost::asio::io_context& io_;
  Timers& timers_;
  const Clock& clock_;
  // Requests waiting for a slot are re-checked when an ejection ends (the earliest pending).
  TimerHandle ejection_timer_;
  TimePoint ejection_check_at_{};  // when it fires; the epoch when none is pending
  void schedule_ejection_check(TimePoint now);
  std::unique_ptr<Provider> provider_;
  PoolOptions options_;
  std::vector<Slot> slots_;
  std::list<Waiter*> waiters_;
  std::mt19937_64 rng_;
  bool shutting_down_ = false;
  std::function<void()> demand_hook_;
  // Demand accounting: integral of (in flight + waiting) over time since the last take.
  policy::DemandIntegral demand_;
  Counter& restarts_;
  Family<Counter>& queue_rejections_;
  Counter& cold_starts_;
  Histogram& cold_start_seconds_;
  Counter& scale_events_up_;
  Counter& scale_events_down_;
  Counter& ejections_;
  policy::ColdStartEstimate cold_start_;
  double service_prior_ms_ = 0;
  std::string last_start_failure_;
  std::chrono::steady_clock::time_point last_start_failure_at_{};
  std::chrono::steady_clock::time_point last_ready_at_{};
  std::string start_failure_base_;
  std::size_t start_failure_index_ = 0;
  std::uint64_t start_failure_generation_ = 0;
  // `index` and `generation`: the process that failed, whose stderr may still add its reason.
  void note_start_failure(std::string what, std::size_t index, std::uint64_t generation);
  void on_stderr_closed(std::size_t index, std::uint64_t generation, const std::string& last_error);
};

} // namespace tandem::pool
