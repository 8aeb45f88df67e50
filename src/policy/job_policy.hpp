#pragma once
// Pure decisions about asynchronous jobs (snapshot and time in, decision out): what an execution's answer
// means for the job, when a job has outlived its ttl, how long to wait before trying a refused
// job or a failed webhook again, and which jobs' results have expired. Times are Unix ms,
// passed in; nothing here reads a clock.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::policy {

enum class JobStatus { in_queue, in_progress, completed, failed, cancelled, timed_out };
std::string_view to_string(JobStatus status);  // RunPod's names: IN_QUEUE, ...
std::optional<JobStatus> parse_job_status(std::string_view text);
/// COMPLETED, FAILED, CANCELLED and TIMED_OUT: nothing more happens to the job.
bool is_final(JobStatus status);
/// `retry` queues a job again only after it failed, timed out or was cancelled.
bool may_retry(JobStatus status);

/// The times a job's limits are measured from.
struct JobClock {
  std::int64_t created_unix_ms = 0;
  std::int64_t ttl_ms = 0;  // lifetime from acceptance to finish, queue included
  std::int64_t execution_timeout_ms = 0;
};

/// Set when the job has lived past its ttl at `now`: the sentence its status reports.
std::optional<std::string> ttl_expired(const JobClock& job, std::int64_t now_unix_ms);
/// The latest moment an execution that starts at `started` may finish: the execution timeout,
/// or the ttl if that comes first.
std::int64_t execution_deadline_unix_ms(const JobClock& job, std::int64_t started_unix_ms);

/// What to do with a job after one execution through the router answered `http_status`.
enum class ExecutionOutcome {
  completed,  // 2xx: the output is the job's
  requeue,    // the router refused for now (429, 503): queue the job again, try later
  timed_out,  // the deadline passed
  failed,     // any other error: the input was refused or the model failed
};
ExecutionOutcome classify_execution(int http_status, std::int64_t deadline_unix_ms, std::int64_t now_unix_ms);

/// Delay before a refused job is offered to the router again: doubling from 20 ms with each
/// consecutive refusal of the endpoint's jobs, at most 1 s.
std::int64_t requeue_delay_ms(int consecutive_refusals);

/// Webhook delivery: after `attempts` failed deliveries, the delay before the next one, or
/// nullopt when `attempts_max` have been made (the delivery is given up and recorded failed).
std::optional<std::int64_t> webhook_retry_delay_ms(int attempts, int attempts_max, std::int64_t first_delay_ms);

/// A finished job's result is kept until `retention_ms` after it finished.
bool result_expired(std::int64_t finished_unix_ms, std::int64_t retention_ms, std::int64_t now_unix_ms);

} // namespace tandem::policy
