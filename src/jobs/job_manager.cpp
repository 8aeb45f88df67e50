#include "jobs/job_manager.hpp"

#include "config/webhook_target.hpp"
#include "http/one_shot_client.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

namespace tandem::jobs {

namespace asio = boost::asio;
using policy::JobStatus;

namespace {

constexpr std::chrono::milliseconds kSweepInterval{100};
// The store's copy of expired results is deleted this often (the memory copy at every sweep).
constexpr std::int64_t kStoreRetentionEveryMs = 10'000;

/// Why a job's execution failed: the engine's own message, or what the worker said (the
/// "error" of its JSON error body, else its body, bounded).
std::string error_of(const engine::InferenceResult& result) {
  if (result.worker_status == 0) return result.error ? result.error->message : "no answer";
  boost::system::error_code ec;
  auto parsed = boost::json::parse(result.body, ec);
  if (!ec && parsed.is_object())
    if (const auto* e = parsed.as_object().if_contains("error"); e && e->is_string()) return std::string(e->as_string());
  std::string text = result.body.substr(0, 512);
  return text.empty() ? "HTTP " + std::to_string(result.worker_status) : text;
}

IpAddress ip_of(const asio::ip::address& address) {
  IpAddress out;
  if (address.is_v4()) {
    const auto bytes = address.to_v4().to_bytes();
    std::copy(bytes.begin(), bytes.end(), out.bytes.begin());
    out.v4 = true;
  } else {
    out.bytes = address.to_v6().to_bytes();
  }
  return out;
}

} // namespace

JobManager::JobManager(asio::io_context& io, IoInbox& inbox, engine::Engine& engine, JobJournal& journal,
                       MetricsRegistry& metrics, const Clock& clock, JobsConfig config, std::uint64_t seed)
    : io_(io), inbox_(inbox), engine_(engine), journal_(journal), clock_(clock), config_(config), ids_(seed), sweeper_(io),
      accepted_(metrics.counter("tandem_jobs_accepted_total", "Jobs accepted (committed to the state store).",
                                {"endpoint"})),
      rejected_(metrics.counter("tandem_jobs_rejected_total",
                                "Job submissions refused: queue_full, queue_bytes, store_error.",
                                {"endpoint", "reason"})),
      finished_(metrics.counter("tandem_jobs_finished_total", "Jobs that reached a final status.",
                                {"endpoint", "status"})),
      requeued_(metrics.counter("tandem_jobs_requeued_total",
                                "Job executions the router refused for now (queue full, no idle capacity for "
                                "low priority); the job waited in the queue again.",
                                {"endpoint"})),
      webhooks_(metrics.counter("tandem_job_webhooks_total", "Webhook deliveries: delivered, retried, failed.",
                                {"outcome"})),
      webhook_refused_(metrics.counter("tandem_job_webhook_refused_total",
                                       "Webhooks refused for their target: at submission (a literal address) or at "
                                       "delivery (the address connected to): loopback, link_local, private, "
                                       "unspecified, multicast, reserved, self.",
                                       {"reason"})),
      expired_(metrics.counter("tandem_jobs_expired_total",
                               "Finished jobs forgotten: retention (result_retention passed) or retained_max "
                               "(too many finished jobs; the oldest went early).",
                               {"reason"})),
      queued_(metrics.gauge("tandem_jobs_queued", "Jobs waiting in the queue.", {"endpoint"})),
      executing_(metrics.gauge("tandem_jobs_in_progress", "Job executions in flight.", {"endpoint"})),
      recovered_(metrics.counter("tandem_jobs_recovered_total",
                                 "Unfinished jobs of a previous run queued again at start.", {})
                     .with({})),
      held_input_bytes_gauge_(metrics.gauge("tandem_jobs_held_input_bytes",
                                            "Bytes of job inputs held in memory (limit server.jobs.queue_max_bytes).",
                                            {})
                                  .with({})),
      held_output_bytes_gauge_(metrics.gauge("tandem_jobs_held_output_bytes",
                                             "Bytes of finished jobs' outputs held in memory (limit "
                                             "server.jobs.retained_max_bytes).",
                                             {})
                                   .with({})),
      journal_backlog_(
          metrics.gauge("tandem_jobs_journal_backlog", "Job changes waiting to be written to the state store.", {})
              .with({})) {
  auto& commits = metrics.counter("tandem_jobs_journal_commits_total",
                                  "Transactions the job journal committed (each carries every change that "
                                  "arrived while the previous one was written).",
                                  {})
                      .with({});
  auto& changes = metrics.counter("tandem_jobs_journal_changes_total", "Job changes written to the state store.", {})
                      .with({});
  auto& failures = metrics.counter("tandem_jobs_journal_failures_total",
                                   "Journal transactions that failed (their jobs were refused with 503 or their "
                                   "changes lost until the next change of the same job).",
                                   {})
                       .with({});
  metrics.on_collect([&journal, &commits, &changes, &failures, this] {
    commits.advance_to(static_cast<double>(journal.batches()));
    changes.advance_to(static_cast<double>(journal.changes()));
    failures.advance_to(static_cast<double>(journal.failures()));
    // Gauges are read when scraped: what they show is derived from the manager's own state.
    journal_backlog_.set(static_cast<double>(journal.backlog()));
    held_input_bytes_gauge_.set(static_cast<double>(held_input_bytes_));
    held_output_bytes_gauge_.set(static_cast<double>(held_output_bytes_));
    for (const auto& entry : queues_) {
      const EndpointQueue& q = entry.second;
      q.queued_gauge->set(static_cast<double>(q.queued));
      q.executing_gauge->set(q.executing);
    }
  });
}

JobManager::EndpointQueue& JobManager::queue_of(const std::string& endpoint) {
  auto it = queues_.find(endpoint);
  if (it != queues_.end()) return it->second;
  EndpointQueue& q = queues_[endpoint];
  q.concurrency = config_.concurrency > 0 ? config_.concurrency : std::max(1, engine_.capacity(endpoint));
  q.resume = std::make_unique<asio::steady_timer>(io_);
  q.queued_gauge = &queued_.with({endpoint});
  q.executing_gauge = &executing_.with({endpoint});
  return q;
}

Status JobManager::recover(registry::StateStore& store) {
  const std::int64_t now = now_ms();
  auto loaded = store.load_jobs(now - config_.result_retention_ms.count());
  if (!loaded) return loaded.error();
  std::int64_t requeued = 0;
  for (auto& record : *loaded) {
    auto job = std::make_unique<Job>();
    job->record = std::move(record);
    auto status = policy::parse_job_status(job->record.status);
    job->status = status.value_or(JobStatus::failed);
    Job& j = *job;
    jobs_[j.record.id] = std::move(job);
    held_input_bytes_ += j.record.input_json.size();
    held_output_bytes_ += j.record.output_json.size();
    if (policy::is_final(j.status)) {
      finished_order_.emplace_back(j.record.id, j.record.finished_unix_ms);
      if (j.record.webhook_state == "pending") asio::co_spawn(io_, deliver_webhook(j.record.id), asio::detached);
      continue;
    }
    if (!engine_.has_endpoint(j.record.endpoint)) {
      j.status = JobStatus::in_progress;  // not in any queue: finish() must not take it out of one
      finish(j, JobStatus::failed, "endpoint \"" + j.record.endpoint + "\" is no longer served");
      continue;
    }
    // Unfinished when the previous run stopped: it runs again (at least once).
    j.status = JobStatus::in_queue;
    j.record.status = std::string(policy::to_string(JobStatus::in_queue));
    j.record.started_unix_ms = 0;
    j.record.queued_unix_ms = now;
    enqueue(j, false);
    persist(j);
    ++requeued;
  }
  recovered_.inc(static_cast<double>(requeued));
  if (!loaded->empty())
    spdlog::info("jobs: recovered {} job(s) from the state store, {} queued again", loaded->size(), requeued);
  return Ok{};
}

void JobManager::start() {
  asio::co_spawn(io_, sweep_loop(), asio::detached);
  for (auto& [name, queue] : queues_) pump(name);
}

void JobManager::shutdown() {
  stopping_ = true;
  sweeper_.cancel();
  for (auto& [name, queue] : queues_) queue.resume->cancel();
  for (auto& [id, job] : jobs_) notify(*job);
}

asio::awaitable<Result<Job*>> JobManager::submit(JobSubmission s) {
  if (!engine_.has_endpoint(s.endpoint))
    co_return Error{ErrorCode::not_found, "unknown endpoint \"" + s.endpoint + "\""};
  EndpointQueue& queue = queue_of(s.endpoint);
  if (queue.queued >= config_.queue_max) {
    rejected_.with({s.endpoint, "queue_full"}).inc();
    co_return Error{ErrorCode::queue_full, "endpoint \"" + s.endpoint + "\" already has " +
                                               std::to_string(queue.queued) +
                                               " queued jobs (server.jobs.queue_max); retry later"};
  }
  if (held_input_bytes_ + s.input_json.size() > config_.queue_max_bytes) {
    rejected_.with({s.endpoint, "queue_bytes"}).inc();
    co_return Error{ErrorCode::queue_full, "queued job inputs already hold " + std::to_string(held_input_bytes_) +
                                               " bytes (server.jobs.queue_max_bytes " +
                                               std::to_string(config_.queue_max_bytes) + "); retry later"};
  }
  const std::int64_t now = now_ms();
  auto job = std::make_unique<Job>();
  auto& r = job->record;
  r.id = ids_.next_time_ordered(now);
  r.endpoint = std::move(s.endpoint);
  r.status = std::string(policy::to_string(JobStatus::in_queue));
  r.input_json = std::move(s.input_json);
  r.webhook = std::move(s.webhook);
  r.low_priority = s.low_priority;
  r.execution_timeout_ms = s.execution_timeout_ms.value_or(config_.execution_timeout_ms.count());
  r.ttl_ms = s.ttl_ms.value_or(config_.ttl_ms.count());
  r.created_unix_ms = now;
  r.queued_unix_ms = now;
  // Counted before the commit, so that concurrent submissions cannot overshoot the limits.
  held_input_bytes_ += r.input_json.size();
  ++queue.queued;

  // Wait for the commit: the id is answered only once the job survives a crash.
  // Named, not a temporary inside the co_await: g++ 12 destroys such temporaries twice.
  JobJournal::Work save = [snapshot = r](registry::StateStore& store) { return store.save_job(snapshot, true); };
  Status committed = co_await journal_call(std::move(save));
  --queue.queued;
  held_input_bytes_ -= r.input_json.size();
  if (!committed) {
    rejected_.with({r.endpoint, "store_error"}).inc();
    co_return Error{ErrorCode::unavailable,
                    "the job could not be recorded in the state store: " + committed.error().message};
  }
  held_input_bytes_ += r.input_json.size();
  Job& accepted = *job;
  jobs_[r.id] = std::move(job);
  accepted_.with({accepted.record.endpoint}).inc();
  enqueue(accepted, false);
  pump(accepted.record.endpoint);
  co_return &accepted;
}

asio::awaitable<Status> JobManager::journal_call(JobJournal::Work work) {
  struct Call {
    explicit Call(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::optional<Status> result;
  };
  auto call = std::make_shared<Call>(io_);
  call->timer.expires_at(asio::steady_timer::time_point::max());
  journal_.submit(std::move(work), [call](const Status& status) {
    call->result = status;
    call->timer.cancel();
  });
  while (!call->result) {
    auto [ec] = co_await call->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
  }
  co_return *call->result;
}

Job* JobManager::find(std::string_view id) {
  auto it = jobs_.find(std::string(id));
  return it == jobs_.end() ? nullptr : it->second.get();
}

asio::awaitable<Job*> JobManager::wait_final(std::string id, std::chrono::milliseconds wait) {
  Job* job = find(id);
  if (job == nullptr || policy::is_final(job->status) || stopping_) co_return job;
  asio::steady_timer timer(io_);
  timer.expires_after(wait);
  job->waiters.push_back(&timer);
  auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  (void)ec;
  job = find(id);  // it may have been forgotten meanwhile
  if (job != nullptr) std::erase(job->waiters, &timer);
  co_return job;
}

void JobManager::enqueue(Job& job, bool at_front) {
  EndpointQueue& q = queue_of(job.record.endpoint);
  auto& list = job.record.low_priority ? q.low : q.normal;
  if (at_front) list.push_front(job.record.id);
  else list.push_back(job.record.id);
  ++q.queued;
}

void JobManager::leave_queue(Job& job) {
  EndpointQueue& q = queue_of(job.record.endpoint);
  --q.queued;
}

void JobManager::pump(const std::string& endpoint) {
  if (stopping_) return;
  EndpointQueue& q = queue_of(endpoint);
  const std::int64_t now = now_ms();
  while (q.executing < q.concurrency) {
    std::deque<std::string>* list = nullptr;
    if (!q.normal.empty() && now >= q.paused_normal_until_ms) list = &q.normal;
    else if (!q.low.empty() && now >= q.paused_low_until_ms) list = &q.low;
    if (list == nullptr) break;
    std::string id = std::move(list->front());
    list->pop_front();
    Job* job = find(id);
    if (job == nullptr || job->status != JobStatus::in_queue) continue;  // cancelled or purged meanwhile
    begin_execution(*job, q);
  }
  const bool normal_paused = !q.normal.empty() && now < q.paused_normal_until_ms;
  const bool low_paused = !q.low.empty() && now < q.paused_low_until_ms;
  if (q.executing < q.concurrency && (normal_paused || low_paused)) {
    std::int64_t at = std::numeric_limits<std::int64_t>::max();
    if (normal_paused) at = std::min(at, q.paused_normal_until_ms);
    if (low_paused) at = std::min(at, q.paused_low_until_ms);
    arm_resume(q, endpoint, at);
  }
}

void JobManager::arm_resume(EndpointQueue& q, const std::string& endpoint, std::int64_t at_ms) {
  if (q.resume_armed) return;
  q.resume_armed = true;
  q.resume->expires_after(std::chrono::milliseconds(std::max<std::int64_t>(1, at_ms - now_ms())));
  q.resume->async_wait([this, endpoint, &q](const boost::system::error_code& ec) {
    q.resume_armed = false;
    if (!ec) pump(endpoint);
  });
}

void JobManager::begin_execution(Job& job, EndpointQueue& q) {
  leave_queue(job);
  job.status = JobStatus::in_progress;
  job.record.status = std::string(policy::to_string(JobStatus::in_progress));
  job.record.started_unix_ms = now_ms();
  ++job.record.executions;
  ++q.executing;
  // Not written: after a crash an executing job and a queued one are recovered alike (queued
  // again), so the store learns of the execution only from its outcome. One write fewer per job.
  asio::co_spawn(io_, execute(job.record.id, job.generation), asio::detached);
}

asio::awaitable<void> JobManager::execute(std::string id, std::uint64_t generation) {
  Job* job = find(id);
  if (job == nullptr) co_return;
  const std::string endpoint = job->record.endpoint;
  const policy::JobClock limits{job->record.created_unix_ms, job->record.ttl_ms, job->record.execution_timeout_ms};
  const std::int64_t deadline_ms = policy::execution_deadline_unix_ms(limits, job->record.started_unix_ms);
  // The job's own copy: it may be cancelled or purged while the request runs.
  const std::string input = job->record.input_json;
  engine::InferenceRequest request;
  request.endpoint = endpoint;
  request.body = input;
  request.client_request_id = id; // the audit record is found by the job's id
  request.priority = job->record.low_priority ? engine::Priority::low : engine::Priority::normal;
  // The job's execution timeout replaces the endpoint's SLO timeout.
  request.deadline = clock_.now() + std::chrono::milliseconds(std::max<std::int64_t>(0, deadline_ms - now_ms()));

  engine::InferenceResult result = co_await engine_.infer(request);
  // Nobody writes this answer anywhere: what would wait for its writing runs now.
  if (result.after_answer) result.after_answer(input);

  EndpointQueue& q = queue_of(endpoint);
  --q.executing;
  job = find(id);
  if (job != nullptr && job->generation == generation && job->status == JobStatus::in_progress) {
    const std::int64_t now = now_ms();
    const int status = result.http_status();
    switch (policy::classify_execution(status, deadline_ms, now)) {
    case policy::ExecutionOutcome::completed:
      job->record.output_json = std::move(result.body);
      job->record.worker = std::move(result.worker);
      job->record.cost_usd = result.cost_usd;
      (job->record.low_priority ? q.refusals_low : q.refusals_normal) = 0;
      finish(*job, JobStatus::completed, "");
      break;
    case policy::ExecutionOutcome::requeue: {
      // Not an error of the job: the router has no room for it now. It goes back to the head
      // of its queue and the endpoint's queue (of that priority) pauses briefly.
      requeued_.with({endpoint}).inc();
      int& refusals = job->record.low_priority ? q.refusals_low : q.refusals_normal;
      ++refusals;
      (job->record.low_priority ? q.paused_low_until_ms : q.paused_normal_until_ms) =
          now + policy::requeue_delay_ms(refusals);
      job->status = JobStatus::in_queue;
      job->record.status = std::string(policy::to_string(JobStatus::in_queue));
      job->record.started_unix_ms = 0;
      enqueue(*job, true);  // the store still has it queued: nothing to write
      break;
    }
    case policy::ExecutionOutcome::timed_out:
      job->record.worker = std::move(result.worker);
      finish(*job, JobStatus::timed_out,
             status == 504 || now >= deadline_ms
                 ? "execution timed out after " + std::to_string(now - job->record.started_unix_ms) +
                       " ms (executionTimeout " + std::to_string(job->record.execution_timeout_ms) + " ms)"
                 : error_of(result));
      break;
    case policy::ExecutionOutcome::failed:
      job->record.worker = std::move(result.worker);
      finish(*job, JobStatus::failed, error_of(result));
      break;
    }
  }
  pump(endpoint);
}

void JobManager::finish(Job& job, JobStatus status, std::string error) {
  auto& r = job.record;
  if (job.status == JobStatus::in_queue) leave_queue(job);
  job.status = status;
  r.status = std::string(policy::to_string(status));
  r.finished_unix_ms = now_ms();
  r.error = std::move(error);
  if (status != JobStatus::completed) r.output_json.clear();
  held_output_bytes_ += r.output_json.size();
  // The input is in the store; a retry reads it back from there. Memory holds only the inputs
  // of jobs that can still run, which is what server.jobs.queue_max_bytes bounds.
  held_input_bytes_ -= r.input_json.size();
  r.input_json.clear();
  r.input_json.shrink_to_fit();
  if (!r.webhook.empty()) {
    r.webhook_state = "pending";
    r.webhook_attempts = 0;
  }
  finished_.with({r.endpoint, r.status}).inc();
  finished_order_.emplace_back(r.id, r.finished_unix_ms);
  persist(job);
  notify(job);
  if (!r.webhook.empty()) asio::co_spawn(io_, deliver_webhook(r.id), asio::detached);
}

void JobManager::persist(const Job& job) {
  // The input was written with the job's first save and never changes.
  journal_.submit([record = job.record](registry::StateStore& store) { return store.save_job(record, false); });
}

void JobManager::notify(Job& job) {
  for (auto* timer : job.waiters) timer->cancel();
  job.waiters.clear();
}

Job* JobManager::cancel(std::string_view id) {
  Job* job = find(id);
  if (job == nullptr || policy::is_final(job->status)) return job;
  // An execution in flight keeps its worker slot until it answers; its answer is ignored.
  ++job->generation;
  finish(*job, JobStatus::cancelled, "cancelled by request");
  return job;
}

asio::awaitable<Result<Job*>> JobManager::retry(std::string id) {
  auto check = [&]() -> Result<Job*> {
    Job* job = find(id);
    if (job == nullptr) return Error{ErrorCode::not_found, "job \"" + id + "\" not found (or expired)"};
    if (!policy::may_retry(job->status))
      return Error{ErrorCode::conflict, "job \"" + id + "\" is " + job->record.status +
                                            "; only FAILED, TIMED_OUT or CANCELLED jobs can be retried"};
    if (!engine_.has_endpoint(job->record.endpoint))
      return Error{ErrorCode::conflict, "endpoint \"" + job->record.endpoint + "\" is no longer served"};
    return job;
  };
  if (auto checked = check(); !checked) co_return checked.error();
  // A finished job's input is only in the store.
  auto input = std::make_shared<std::string>();
  JobJournal::Work read = [id, input](registry::StateStore& store) -> Status {
    auto found = store.find_job(id);
    if (!found) return found.error();
    if (!found->has_value()) return Error{ErrorCode::not_found, "job \"" + id + "\" is no longer in the state store"};
    *input = std::move((*found)->input_json);
    return Ok{};
  };
  Status loaded = co_await journal_call(std::move(read));
  if (!loaded) co_return Error{ErrorCode::unavailable, "reading the job's input: " + loaded.error().message};
  auto checked = check();  // the job may have changed while its input was read
  if (!checked) co_return checked.error();
  Job* job = *checked;
  if (held_input_bytes_ + input->size() > config_.queue_max_bytes) {
    rejected_.with({job->record.endpoint, "queue_bytes"}).inc();
    co_return Error{ErrorCode::queue_full, "queued job inputs already hold " + std::to_string(held_input_bytes_) +
                                               " bytes (server.jobs.queue_max_bytes); retry later"};
  }
  held_input_bytes_ += input->size();
  job->record.input_json = std::move(*input);
  held_output_bytes_ -= job->record.output_json.size();
  ++job->generation;
  auto& r = job->record;
  ++r.retries;
  job->status = JobStatus::in_queue;
  r.status = std::string(policy::to_string(JobStatus::in_queue));
  r.queued_unix_ms = now_ms();
  // The ttl counts from the retry: a job retried after its ttl would otherwise expire at once.
  r.created_unix_ms = r.queued_unix_ms;
  r.started_unix_ms = 0;
  r.finished_unix_ms = 0;
  r.error.clear();
  r.output_json.clear();
  r.webhook_state.clear();
  r.webhook_attempts = 0;
  enqueue(*job, false);
  persist(*job);
  pump(r.endpoint);
  co_return job;
}

std::int64_t JobManager::purge_queue(std::string_view endpoint) {
  auto it = queues_.find(endpoint);
  if (it == queues_.end()) return 0;
  EndpointQueue& q = it->second;
  std::int64_t removed = 0;
  for (auto* list : {&q.normal, &q.low}) {
    for (const auto& id : *list) {
      Job* job = find(id);
      if (job == nullptr || job->status != JobStatus::in_queue) continue;
      ++job->generation;
      finish(*job, JobStatus::cancelled, "removed from the queue by purge-queue");
      ++removed;
    }
    list->clear();
  }
  return removed;
}

JobCounts JobManager::counts(std::string_view endpoint) const {
  JobCounts c;
  for (const auto& [id, job] : jobs_) {
    if (job->record.endpoint != endpoint) continue;
    switch (job->status) {
    case JobStatus::completed: ++c.completed; break;
    case JobStatus::failed:
    case JobStatus::timed_out: ++c.failed; break;
    case JobStatus::in_progress: ++c.in_progress; break;
    case JobStatus::in_queue: ++c.in_queue; break;
    case JobStatus::cancelled: break;
    }
    c.retried += job->record.retries;
  }
  return c;
}

Status JobManager::check_webhook(std::string_view webhook) {
  auto url = http::parse_http_url(webhook);
  if (!url) return Error{ErrorCode::invalid_request, "webhook: expected an http:// URL such as http://host:port/path"};
  auto address = parse_ip_address(url->host);
  if (!address) return Ok{};  // a name: judged at delivery by the address it resolves to
  auto why = webhook_target_refusal(*address, config_.webhook_allow);
  // This server on a loopback or unspecified address, allow-list or not (any other address of
  // this host is caught at delivery, by the address the connection came from).
  unsigned short port = 0;
  std::from_chars(url->port.data(), url->port.data() + url->port.size(), port);
  if (!why && webhook_target_is_self(*address, port, IpAddress{}, listen_port_)) {
    webhook_refused_.with({"self"}).inc();
    return Error{ErrorCode::invalid_request, "webhook: " + url->host + ":" + url->port +
                                                 " is this server; webhooks may never call it"};
  }
  if (!why) return Ok{};
  webhook_refused_.with({std::string(*why)}).inc();
  return Error{ErrorCode::invalid_request, "webhook: " + url->host + " is a " + std::string(*why) +
                                               " address; webhooks may not reach it unless server.jobs.webhook_allow "
                                               "lists it"};
}

asio::awaitable<void> JobManager::deliver_webhook(std::string id) {
  asio::steady_timer pause(io_);
  for (;;) {
    Job* job = find(id);
    if (job == nullptr || job->record.webhook_state != "pending" || stopping_) co_return;
    auto url = http::parse_http_url(job->record.webhook);
    std::string body = encode_status_ ? encode_status_(*job) : std::string("{}");
    const std::uint64_t generation = job->generation;
    Status delivered = Ok{};
    if (!url) {
      delivered = Error{ErrorCode::invalid_request, "not an http:// URL"};
    } else {
      std::string refusal;
      auto vet = [this, &refusal](const http::tcp::endpoint& remote,
                                  const http::tcp::endpoint& local) -> std::optional<std::string> {
        const auto target = ip_of(remote.address());
        std::optional<std::string_view> why = webhook_target_refusal(target, config_.webhook_allow);
        if (!why && local.port() != 0 && webhook_target_is_self(target, remote.port(), ip_of(local.address()), listen_port_))
          why = "self";
        if (!why) return std::nullopt;
        refusal = std::string(*why);
        return refusal + " address " + remote.address().to_string() + " (allow it in server.jobs.webhook_allow)";
      };
      auto answered = co_await http::post_json(io_.get_executor(), *url, std::move(body), config_.webhook_timeout_ms,
                                               inbox_, vet);
      if (!answered && !refusal.empty()) {
        // Not retried: the target stays forbidden.
        job = find(id);
        if (job == nullptr || job->generation != generation || job->record.webhook_state != "pending") co_return;
        webhook_refused_.with({refusal}).inc();
        webhooks_.with({"failed"}).inc();
        ++job->record.webhook_attempts;
        job->record.webhook_state = "failed";
        spdlog::warn("job {}: webhook {} refused: {}", id, job->record.webhook, answered.error().message);
        persist(*job);
        co_return;
      }
      if (!answered) delivered = answered.error();
      else if (*answered < 200 || *answered >= 300)
        delivered = Error{ErrorCode::upstream_error, "answered HTTP " + std::to_string(*answered)};
    }
    job = find(id);
    if (job == nullptr || job->generation != generation || job->record.webhook_state != "pending") co_return;
    auto& r = job->record;
    ++r.webhook_attempts;
    if (delivered) {
      r.webhook_state = "delivered";
      webhooks_.with({"delivered"}).inc();
      persist(*job);
      co_return;
    }
    auto delay = policy::webhook_retry_delay_ms(r.webhook_attempts, config_.webhook_attempts,
                                                config_.webhook_retry_delay_ms.count());
    if (!delay) {
      r.webhook_state = "failed";
      webhooks_.with({"failed"}).inc();
      spdlog::warn("job {}: webhook {} failed after {} attempt(s): {}", id, r.webhook, r.webhook_attempts,
                   delivered.error().message);
      persist(*job);
      co_return;
    }
    webhooks_.with({"retried"}).inc();
    persist(*job);
    pause.expires_after(std::chrono::milliseconds(*delay));
    auto [ec] = co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
  }
}

asio::awaitable<void> JobManager::sweep_loop() {
  while (!stopping_) {
    sweeper_.expires_after(kSweepInterval);
    auto [ec] = co_await sweeper_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || stopping_) co_return;
    sweep();
  }
}

void JobManager::sweep() {
  const std::int64_t now = now_ms();
  // Queued jobs past their ttl. (An executing job's deadline already includes its ttl.)
  for (auto& [endpoint, q] : queues_) {
    for (auto* list : {&q.normal, &q.low}) {
      for (const auto& id : *list) {
        Job* job = find(id);
        if (job == nullptr || job->status != JobStatus::in_queue) continue;
        policy::JobClock limits{job->record.created_unix_ms, job->record.ttl_ms, job->record.execution_timeout_ms};
        if (auto expired = policy::ttl_expired(limits, now)) finish(*job, JobStatus::timed_out, *expired);
      }
      // Drop the ids of jobs that left the queue, so that a long queue of cancelled jobs
      // costs nothing to pump.
      std::erase_if(*list, [this](const std::string& id) {
        Job* job = find(id);
        return job == nullptr || job->status != JobStatus::in_queue;
      });
    }
  }
  // Finished jobs whose results expired, or the oldest beyond retained_max.
  while (!finished_order_.empty()) {
    const auto& [id, finished_ms] = finished_order_.front();
    Job* job = find(id);
    if (job == nullptr || job->record.finished_unix_ms != finished_ms || !policy::is_final(job->status)) {
      finished_order_.pop_front();  // retried since, or already forgotten
      continue;
    }
    const bool expired = policy::result_expired(finished_ms, config_.result_retention_ms.count(), now);
    const bool over_count = finished_order_.size() > static_cast<std::size_t>(config_.retained_max);
    const bool over_bytes = held_output_bytes_ > config_.retained_max_bytes;
    const bool over = over_count || over_bytes;
    if (!expired && !over) break;
    if (job->record.webhook_state == "pending" && !over) break;  // still being delivered
    expired_.with({expired ? "retention" : over_count ? "retained_max" : "retained_max_bytes"}).inc();
    if (!expired) journal_.submit([id = id](registry::StateStore& store) { return store.delete_job(id); });
    forget(id);
    finished_order_.pop_front();
  }
  if (now - last_store_retention_ms_ >= kStoreRetentionEveryMs) {
    last_store_retention_ms_ = now;
    const std::int64_t cutoff = now - config_.result_retention_ms.count();
    journal_.submit([cutoff](registry::StateStore& store) -> Status {
      auto deleted = store.delete_jobs_finished_before(cutoff);
      if (!deleted) return deleted.error();
      return Ok{};
    });
  }
  for (auto& [endpoint, q] : queues_) pump(endpoint);
}

void JobManager::forget(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  notify(*it->second);
  held_input_bytes_ -= it->second->record.input_json.size();
  held_output_bytes_ -= it->second->record.output_json.size();
  jobs_.erase(it);
}

} // namespace tandem::jobs
