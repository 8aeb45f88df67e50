#include "policy/job_policy.hpp"

#include <algorithm>
#include <array>

namespace tandem::policy {

namespace {
constexpr std::array<std::pair<JobStatus, std::string_view>, 6> kNames{{
    {JobStatus::in_queue, "IN_QUEUE"},
    {JobStatus::in_progress, "IN_PROGRESS"},
    {JobStatus::completed, "COMPLETED"},
    {JobStatus::failed, "FAILED"},
    {JobStatus::cancelled, "CANCELLED"},
    {JobStatus::timed_out, "TIMED_OUT"},
}};
} // namespace

std::string_view to_string(JobStatus status) {
  for (const auto& [s, name] : kNames)
    if (s == status) return name;
  return "UNKNOWN";
}

std::optional<JobStatus> parse_job_status(std::string_view text) {
  for (const auto& [s, name] : kNames)
    if (name == text) return s;
  return std::nullopt;
}

bool is_final(JobStatus status) { return status != JobStatus::in_queue && status != JobStatus::in_progress; }

bool may_retry(JobStatus status) {
  return status == JobStatus::failed || status == JobStatus::timed_out || status == JobStatus::cancelled;
}

std::optional<std::string> ttl_expired(const JobClock& job, std::int64_t now_unix_ms) {
  if (job.ttl_ms <= 0 || now_unix_ms < job.created_unix_ms + job.ttl_ms) return std::nullopt;
  return "the job's ttl of " + std::to_string(job.ttl_ms) + " ms expired before it finished";
}

std::int64_t execution_deadline_unix_ms(const JobClock& job, std::int64_t started_unix_ms) {
  std::int64_t deadline = started_unix_ms + job.execution_timeout_ms;
  if (job.ttl_ms > 0) deadline = std::min(deadline, job.created_unix_ms + job.ttl_ms);
  return deadline;
}

ExecutionOutcome classify_execution(int http_status, std::int64_t deadline_unix_ms, std::int64_t now_unix_ms) {
  if (http_status >= 200 && http_status < 300) return ExecutionOutcome::completed;
  const bool past_deadline = now_unix_ms >= deadline_unix_ms;
  // A refusal is the router saying "not now" (queue full, no idle capacity for low priority,
  // no worker ready yet): the job waits its turn again, unless its time is up.
  if (http_status == 429 || http_status == 503)
    return past_deadline ? ExecutionOutcome::timed_out : ExecutionOutcome::requeue;
  if (http_status == 504 || past_deadline) return ExecutionOutcome::timed_out;
  return ExecutionOutcome::failed;
}

std::int64_t requeue_delay_ms(int consecutive_refusals) {
  const int doublings = std::clamp(consecutive_refusals - 1, 0, 6);
  return std::min<std::int64_t>(20LL << doublings, 1000);
}

std::optional<std::int64_t> webhook_retry_delay_ms(int attempts, int attempts_max, std::int64_t first_delay_ms) {
  if (attempts >= attempts_max) return std::nullopt;
  const int doublings = std::clamp(attempts - 1, 0, 10);
  return first_delay_ms << doublings;
}

bool result_expired(std::int64_t finished_unix_ms, std::int64_t retention_ms, std::int64_t now_unix_ms) {
  return finished_unix_ms > 0 && now_unix_ms >= finished_unix_ms + retention_ms;
}

} // namespace tandem::policy
