#pragma once
// Asynchronous jobs: accepts them durably, queues them per endpoint (normal before low
// priority), executes them through the request path with bounded concurrency, enforces ttl and
// execution timeouts, keeps results for the retention period, delivers webhooks, and recovers
// every unfinished job after a restart (at-least-once execution).
//
// Threading: everything runs on the io thread; the database is touched only by the journal's
// thread. Time: Unix ms from the Clock for job times (they are persisted and shown), the
// monotonic clock for deadlines and timers.
#include "base/clock.hpp"
#include "config/config.hpp"
#include "base/ids.hpp"
#include "engine/inference.hpp"
#include "jobs/job_journal.hpp"
#include "policy/job_policy.hpp"
#include "state/state_store.hpp"
#include "telemetry/metrics.hpp"

#include <boost/asio.hpp>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace tandem::jobs {

/// A job in memory: its record plus what only the running process needs.
struct Job {
  registry::JobRecord record;
  policy::JobStatus status = policy::JobStatus::in_queue;
  // Bumped when the job is cancelled or queued again: the answer of an execution started
  // under an older generation is ignored.
  std::uint64_t generation = 0;
  std::vector<boost::asio::steady_timer*> waiters;  // woken when the job finishes
};

/// A job to accept: what `run` / `runsync` carry.
struct JobSubmission {
  std::string endpoint;
  std::string input_json;
  std::string webhook;
  bool low_priority = false;
  std::optional<std::int64_t> execution_timeout_ms;
  std::optional<std::int64_t> ttl_ms;
};

struct JobCounts {
  std::int64_t completed = 0;
  std::int64_t failed = 0;  // FAILED and TIMED_OUT
  std::int64_t in_progress = 0;
  std::int64_t in_queue = 0;
  std::int64_t retried = 0;
};

/// Turns a finished job into the body its webhook receives (the API's status object).
using StatusEncoder = std::function<std::string(const Job&)>;

class JobManager {
public:
  JobManager(boost::asio::io_context& io, IoInbox& inbox, engine::Engine& engine, JobJournal& journal,
             MetricsRegistry& metrics, const Clock& clock, JobsConfig config, std::uint64_t seed);
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  /// Loads the jobs of a previous run: unfinished ones are queued again, finished ones within
  /// the retention period answer status, pending webhooks are delivered. Blocking: call at
  /// start, before serving.
  Status recover(registry::StateStore& store);
  /// Starts dispatching queued jobs and the sweeps (ttl, retention).
  void start();
  /// Stops dispatching and wakes every waiter. Executions in flight finish on their own.
  void shutdown();
  void set_status_encoder(StatusEncoder encoder) { encode_status_ = std::move(encoder); }
  /// The port this server listens on: a webhook to it on this host is refused.
  void set_listen_port(unsigned short port) { listen_port_ = port; }
  /// Checks a submitted webhook whose host is a literal address against server.jobs.webhook_allow
  /// (a name is checked at delivery, once resolved). Errors: invalid_request naming `webhook`.
  [[nodiscard]] Status check_webhook(std::string_view url);

  [[nodiscard]] bool has_endpoint(std::string_view endpoint) const { return engine_.has_endpoint(endpoint); }
  [[nodiscard]] Status validate(std::string_view endpoint, std::string_view input_json) const {
    return engine_.validate(endpoint, input_json);
  }
  /// Accepts a job once it is committed to the store. Errors: not_found (endpoint),
  /// overloaded (queue full), unavailable (the store failed).
  boost::asio::awaitable<Result<Job*>> submit(JobSubmission submission);
  /// The job, while it is known (unfinished, or finished within the retention period).
  [[nodiscard]] Job* find(std::string_view id);
  /// Waits until the job is final or `wait` passes; returns the job if still known.
  boost::asio::awaitable<Job*> wait_final(std::string id, std::chrono::milliseconds wait);
  /// Cancels a queued or executing job; a final job is left as it is.
  Job* cancel(std::string_view id);
  /// Queues a FAILED, TIMED_OUT or CANCELLED job again under its id, its input read back from
  /// the store. Errors: not_found, conflict (the job has not failed), overloaded
  /// (queue_max_bytes), unavailable (the store).
  boost::asio::awaitable<Result<Job*>> retry(std::string id);
  /// Cancels every queued job of the endpoint; returns how many.
  std::int64_t purge_queue(std::string_view endpoint);
  [[nodiscard]] JobCounts counts(std::string_view endpoint) const;
  [[nodiscard]] engine::WorkerCounts worker_counts(std::string_view endpoint) const {
    return engine_.worker_counts(endpoint);
  }

private:
  struct EndpointQueue {
    std::deque<std::string> normal;  // job ids; an id whose job is no longer queued is skipped
    std::deque<std::string> low;
    std::int64_t queued = 0;   // jobs IN_QUEUE
    int executing = 0;         // executions holding a slot (a cancelled one until it answers)
    int concurrency = 1;
    int refusals_normal = 0;   // consecutive router refusals
    int refusals_low = 0;
    std::int64_t paused_normal_until_ms = 0;
    std::int64_t paused_low_until_ms = 0;
    std::unique_ptr<boost::asio::steady_timer> resume;
    bool resume_armed = false;
    Gauge* queued_gauge = nullptr;
    Gauge* executing_gauge = nullptr;
  };

  [[nodiscard]] std::int64_t now_ms() const { return clock_.unix_ns() / 1'000'000; }
  EndpointQueue& queue_of(const std::string& endpoint);
  void enqueue(Job& job, bool at_front);
  void pump(const std::string& endpoint);
  void arm_resume(EndpointQueue& queue, const std::string& endpoint, std::int64_t at_ms);
  void begin_execution(Job& job, EndpointQueue& queue);
  boost::asio::awaitable<void> execute(std::string id, std::uint64_t generation);
  void finish(Job& job, policy::JobStatus status, std::string error);
  void leave_queue(Job& job);
  void persist(const Job& job);
  /// Runs `work` on the journal's thread and waits for its commit.
  boost::asio::awaitable<Status> journal_call(JobJournal::Work work);
  void notify(Job& job);
  boost::asio::awaitable<void> deliver_webhook(std::string id);
  boost::asio::awaitable<void> sweep_loop();
  void sweep();
  void forget(const std::string& id);

  boost::asio::io_context& io_;
  IoInbox& inbox_;
  engine::Engine& engine_;
  JobJournal& journal_;
  const Clock& clock_;
  JobsConfig config_;
  IdGenerator ids_;
  StatusEncoder encode_status_;
  std::unordered_map<std::string, std::unique_ptr<Job>> jobs_;
  std::map<std::string, EndpointQueue, std::less<>> queues_;
  std::deque<std::pair<std::string, std::int64_t>> finished_order_;  // (id, finished ms), oldest first
  std::size_t held_input_bytes_ = 0;   // inputs kept in memory (queued and executing jobs)
  std::size_t held_output_bytes_ = 0;  // outputs of finished jobs kept in memory
  std::int64_t last_store_retention_ms_ = 0;
  bool stopping_ = false;
  boost::asio::steady_timer sweeper_;
  Family<Counter>& accepted_;
  Family<Counter>& rejected_;
  Family<Counter>& finished_;
  Family<Counter>& requeued_;
  Family<Counter>& webhooks_;
  Family<Counter>& webhook_refused_;
  unsigned short listen_port_ = 0;
  Family<Counter>& expired_;
  Family<Gauge>& queued_;
  Family<Gauge>& executing_;
  Counter& recovered_;
  Gauge& held_input_bytes_gauge_;
  Gauge& held_output_bytes_gauge_;
  Gauge& journal_backlog_;
};

} // namespace tandem::jobs
