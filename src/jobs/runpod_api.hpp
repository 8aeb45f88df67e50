#pragma once
// The RunPod serverless API over tandem's jobs, under /runpod/v2/{endpoint}/: run, runsync,
// status, status-sync, stream, cancel, retry, purge-queue, health (docs/jobs.md). Parses and
// checks requests, encodes RunPod's response shapes; the jobs themselves live in JobManager.
#include "http/types.hpp"
#include "jobs/job_manager.hpp"

#include <string>
#include <string_view>

namespace tandem::jobs {

inline constexpr std::string_view kRunpodPrefix = "/runpod/v2/";

/// The status object of a job, as RunPod answers status, runsync, cancel and webhooks.
std::string status_json(const Job& job, std::int64_t now_unix_ms);

/// A parsed run/runsync body.
Result<JobSubmission> parse_submission(std::string_view body, std::string endpoint, std::int64_t timeout_max_ms);

class RunpodApi {
public:
  RunpodApi(JobManager& jobs, const Clock& clock) : jobs_(jobs), clock_(clock) {}
  /// `path` starts with kRunpodPrefix; `query` is what follows '?' (may be empty).
  boost::asio::awaitable<http::Reply> handle(http::Request& request, std::string_view path, std::string_view query);

private:
  boost::asio::awaitable<http::Reply> submit(http::Request& request, const std::string& endpoint, bool wait,
                                             std::string_view query);
  [[nodiscard]] std::int64_t now_ms() const { return clock_.unix_ns() / 1'000'000; }

  JobManager& jobs_;
  const Clock& clock_;
};

} // namespace tandem::jobs
