#include "jobs/runpod_api.hpp"

#include "http/error_reply.hpp"
#include "http/one_shot_client.hpp"
#include "http/query.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <cmath>

namespace tandem::jobs {

namespace asio = boost::asio;
namespace json = boost::json;
using http::bhttp::verb;

namespace {

constexpr std::int64_t kRunsyncWaitDefaultMs = 90'000;
constexpr std::int64_t kStreamWaitDefaultMs = 10'000;
constexpr std::int64_t kWaitMaxMs = 300'000;

/// A job API error; a refusal for now (429, 503) says when to come back, as RunPod's does.
http::Reply error_reply(const Error& error) {
  auto reply = http::error_reply(error);
  if (http_status(error.code) == 429 || http_status(error.code) == 503) reply.set("Retry-After", "1");
  return reply;
}

/// What run and retry answer: {"id", "status"}.
std::string id_and_status_json(const Job& job) {
  return "{\"id\":" + json::serialize(json::string(job.record.id)) + ",\"status\":\"" + job.record.status + "\"}";
}

Error job_not_found(std::string_view id) {
  return {ErrorCode::not_found,
          "job \"" + std::string(id) + "\" not found (unknown, or its result expired after server.jobs.result_retention)"};
}

/// `wait` from the query string: milliseconds, 0..kWaitMaxMs.
Result<std::int64_t> wait_param(std::string_view query, std::int64_t default_ms) {
  auto pairs = http::parse_query(query);
  if (!pairs) return Error{ErrorCode::invalid_request, "the query string has a malformed percent-escape"};
  const std::string* value = nullptr;
  for (const auto& [key, v] : *pairs)
    if (key == "wait") value = &v;
  if (value == nullptr) return default_ms;
  std::int64_t ms = 0;
  auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), ms);
  if (ec != std::errc{} || end != value->data() + value->size() || ms < 0)
    return Error{ErrorCode::invalid_request, "wait: expected milliseconds, an integer >= 0"};
  return std::min(ms, kWaitMaxMs);
}

Result<std::int64_t> positive_ms(const json::value& v, const char* field, std::int64_t max_ms) {
  std::int64_t ms = 0;
  if (v.is_int64()) ms = v.as_int64();
  else if (v.is_uint64())  // beyond int64 when parsed: out of range, said below
    ms = v.as_uint64() <= static_cast<std::uint64_t>(max_ms) ? static_cast<std::int64_t>(v.as_uint64()) : -1;
  else if (v.is_double()) {
    // Range first: converting a double beyond int64 (or NaN) to an integer is undefined.
    const double d = v.as_double();
    if (!(d >= 1.0 && d <= static_cast<double>(max_ms)))
      return Error{ErrorCode::invalid_request,
                   std::string(field) + ": expected milliseconds between 1 and " + std::to_string(max_ms)};
    if (d != std::floor(d))
      return Error{ErrorCode::invalid_request, std::string(field) + ": expected milliseconds, an integer"};
    ms = static_cast<std::int64_t>(d);
  } else return Error{ErrorCode::invalid_request, std::string(field) + ": expected milliseconds, an integer"};
  if (ms <= 0 || ms > max_ms)
    return Error{ErrorCode::invalid_request,
                 std::string(field) + ": expected milliseconds between 1 and " + std::to_string(max_ms)};
  return ms;
}

void append_number(std::string& out, std::string_view key, std::int64_t value) {
  out.append(",\"").append(key).append("\":").append(std::to_string(value));
}

void append_string(std::string& out, std::string_view key, std::string_view value) {
  out.append(",\"").append(key).append("\":").append(json::serialize(json::string(value)));
}

} // namespace

std::string status_json(const Job& job, std::int64_t now_unix_ms) {
  const auto& r = job.record;
  std::string out;
  out.reserve(128 + r.output_json.size());
  out.append("{\"id\":").append(json::serialize(json::string(r.id)));
  append_string(out, "status", r.status);
  if (r.started_unix_ms > 0) {
    append_number(out, "delayTime", std::max<std::int64_t>(0, r.started_unix_ms - r.queued_unix_ms));
    const std::int64_t until = r.finished_unix_ms > 0 ? r.finished_unix_ms : now_unix_ms;
    append_number(out, "executionTime", std::max<std::int64_t>(0, until - r.started_unix_ms));
  } else if (r.finished_unix_ms == 0) {
    append_number(out, "delayTime", std::max<std::int64_t>(0, now_unix_ms - r.queued_unix_ms));
  }
  if (job.status == policy::JobStatus::completed && !r.output_json.empty())
    out.append(",\"output\":").append(r.output_json);
  if (!r.error.empty()) append_string(out, "error", r.error);
  if (!r.worker.empty()) append_string(out, "workerId", r.worker);
  append_number(out, "retries", r.retries);
  if (r.cost_usd > 0) {
    char cost[32];
    auto end = std::to_chars(cost, cost + sizeof cost, r.cost_usd, std::chars_format::fixed, 9).ptr;
    out.append(",\"cost_usd\":").append(cost, end);
  }
  out.push_back('}');
  return out;
}

Result<JobSubmission> parse_submission(std::string_view body, std::string endpoint, std::int64_t timeout_max_ms) {
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec) return Error{ErrorCode::malformed_json, "body: not valid JSON: " + ec.message()};
  if (!parsed.is_object())
    return Error{ErrorCode::invalid_request, "body: expected a JSON object such as {\"input\": {...}}"};
  const auto& o = parsed.as_object();
  JobSubmission s;
  s.endpoint = std::move(endpoint);
  for (const auto& [key, value] : o) {
    if (key == "input") {
      if (!value.is_object())
        return Error{ErrorCode::invalid_request,
                     "input: expected a v2 inference request object such as {\"inputs\": [...]}"};
      s.input_json = json::serialize(value);
    } else if (key == "webhook") {
      if (value.is_null()) continue;
      if (!value.is_string() || !http::parse_http_url(value.as_string()))
        return Error{ErrorCode::invalid_request, "webhook: expected an http:// URL such as http://host:port/path"};
      s.webhook = std::string(value.as_string());
    } else if (key == "policy") {
      if (value.is_null()) continue;
      if (!value.is_object()) return Error{ErrorCode::invalid_request, "policy: expected an object"};
      for (const auto& [pkey, pvalue] : value.as_object()) {
        if (pkey == "executionTimeout") {
          auto ms = positive_ms(pvalue, "policy.executionTimeout", timeout_max_ms);
          if (!ms) return ms.error();
          s.execution_timeout_ms = *ms;
        } else if (pkey == "ttl") {
          auto ms = positive_ms(pvalue, "policy.ttl", timeout_max_ms);
          if (!ms) return ms.error();
          s.ttl_ms = *ms;
        } else if (pkey == "lowPriority") {
          if (!pvalue.is_bool()) return Error{ErrorCode::invalid_request, "policy.lowPriority: expected true or false"};
          s.low_priority = pvalue.as_bool();
        } else {
          return Error{ErrorCode::invalid_request, "policy." + std::string(pkey) +
                                                       ": unknown field (expected executionTimeout, ttl, lowPriority)"};
        }
      }
    } else if (key == "s3Config" || key == "webhookV2") {
      return Error{ErrorCode::invalid_request, std::string(key) + ": not supported by tandem"};
    } else {
      return Error{ErrorCode::invalid_request,
                   std::string(key) + ": unknown field (expected input, webhook, policy)"};
    }
  }
  if (s.input_json.empty()) return Error{ErrorCode::invalid_request, "input: required"};
  return s;
}

asio::awaitable<http::Reply> RunpodApi::handle(http::Request& request, std::string_view path, std::string_view query) {
  std::string_view rest = path.substr(kRunpodPrefix.size());
  const auto slash = rest.find('/');
  const std::string endpoint(rest.substr(0, slash));
  std::string_view action = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  std::string_view id;
  if (const auto s = action.find('/'); s != std::string_view::npos) {
    id = action.substr(s + 1);
    action = action.substr(0, s);
  }
  if (endpoint.empty() || !jobs_.has_endpoint(endpoint))
    co_return error_reply({ErrorCode::not_found, "unknown endpoint \"" + endpoint + "\""});
  const bool is_post = request.method() == verb::post;
  const bool is_get = request.method() == verb::get || request.method() == verb::head;
  const bool takes_id = action == "status" || action == "status-sync" || action == "stream" || action == "cancel" ||
                        action == "retry";
  if (takes_id && (id.empty() || id.find('/') != std::string_view::npos))
    co_return error_reply({ErrorCode::not_found, "no route for " + std::string(path) + ": expected " +
                                                     std::string(kRunpodPrefix) + endpoint + "/" + std::string(action) +
                                                     "/{job id}"});
  if (!takes_id && !id.empty())
    co_return error_reply({ErrorCode::not_found, "no route for " + std::string(path)});

  // A job is known under its own endpoint only.
  auto find_here = [&]() -> Job* {
    Job* job = jobs_.find(id);
    return job != nullptr && job->record.endpoint == endpoint ? job : nullptr;
  };
  if (action == "run" || action == "runsync") {
    if (!is_post) co_return http::method_not_allowed(request, path, "POST");
    co_return co_await submit(request, endpoint, action == "runsync", query);
  }
  if (action == "status" || action == "status-sync" || action == "stream") {
    if (!is_get) co_return http::method_not_allowed(request, path, "GET");
    Job* job = find_here();
    if (job == nullptr) co_return error_reply(job_not_found(id));
    if (action != "status") {
      auto wait = wait_param(query, action == "stream" ? kStreamWaitDefaultMs : kRunsyncWaitDefaultMs);
      if (!wait) co_return error_reply(wait.error());
      job = co_await jobs_.wait_final(std::string(id), std::chrono::milliseconds(*wait));
      if (job == nullptr) co_return error_reply(job_not_found(id));
    }
    if (action != "stream") co_return http::json_response(200, status_json(*job, now_ms()));
    std::string body = "{\"id\":" + json::serialize(json::string(job->record.id)) +
                       ",\"status\":" + json::serialize(json::string(job->record.status)) + ",\"stream\":[";
    // A tandem model answers once: its whole output is the stream's one chunk.
    if (job->status == policy::JobStatus::completed) body.append("{\"output\":").append(job->record.output_json).append("}");
    body.append("]");
    if (!job->record.error.empty()) body.append(",\"error\":").append(json::serialize(json::string(job->record.error)));
    body.append("}");
    co_return http::json_response(200, std::move(body));
  }
  if (action == "cancel") {
    if (!is_post) co_return http::method_not_allowed(request, path, "POST");
    Job* job = find_here();
    if (job == nullptr) co_return error_reply(job_not_found(id));
    job = jobs_.cancel(id);
    co_return http::json_response(200, status_json(*job, now_ms()));
  }
  if (action == "retry") {
    if (!is_post) co_return http::method_not_allowed(request, path, "POST");
    Job* job = find_here();
    if (job == nullptr) co_return error_reply(job_not_found(id));
    auto retried = co_await jobs_.retry(std::string(id));
    if (!retried) co_return error_reply(retried.error());
    co_return http::json_response(200, id_and_status_json(**retried));
  }
  if (action == "purge-queue") {
    if (!is_post) co_return http::method_not_allowed(request, path, "POST");
    const std::int64_t removed = jobs_.purge_queue(endpoint);
    co_return http::json_response(200, "{\"removed\":" + std::to_string(removed) + ",\"status\":\"completed\"}");
  }
  if (action == "health") {
    if (!is_get) co_return http::method_not_allowed(request, path, "GET");
    const JobCounts j = jobs_.counts(endpoint);
    const engine::WorkerCounts w = jobs_.worker_counts(endpoint);
    json::object body;
    body["jobs"] = {{"completed", j.completed},
                    {"failed", j.failed},
                    {"inProgress", j.in_progress},
                    {"inQueue", j.in_queue},
                    {"retried", j.retried}};
    body["workers"] = {{"idle", w.idle},
                       {"initializing", w.initializing},
                       {"ready", w.ready},
                       {"running", w.running},
                       {"throttled", w.throttled}};
    co_return http::json_response(200, json::serialize(body));
  }
  co_return error_reply({ErrorCode::not_found,
                         "no route for " + std::string(request.method_string()) + " " + std::string(path) +
                             " (expected run, runsync, status/{id}, status-sync/{id}, stream/{id}, cancel/{id}, "
                             "retry/{id}, purge-queue or health)"});
}

asio::awaitable<http::Reply> RunpodApi::submit(http::Request& request, const std::string& endpoint, bool wait,
                                               std::string_view query) {
  std::int64_t wait_ms = 0;
  if (wait) {
    auto parsed = wait_param(query, kRunsyncWaitDefaultMs);
    if (!parsed) co_return error_reply(parsed.error());
    wait_ms = *parsed;
  }
  constexpr std::int64_t kPolicyMaxMs = 7LL * 24 * 3600 * 1000;  // a week: RunPod's own ceiling for ttl
  auto submission = parse_submission(request.body(), endpoint, kPolicyMaxMs);
  if (!submission) co_return error_reply(submission.error());
  if (!submission->webhook.empty())
    if (auto allowed = jobs_.check_webhook(submission->webhook); !allowed) co_return error_reply(allowed.error());
  if (auto valid = jobs_.validate(endpoint, submission->input_json); !valid) {
    Error e = valid.error();
    e.message = "input: " + e.message;
    co_return error_reply(e);
  }
  auto accepted = co_await jobs_.submit(std::move(*submission));
  if (!accepted) co_return error_reply(accepted.error());
  Job* job = *accepted;
  if (!wait) {
    co_return http::json_response(200, id_and_status_json(*job));
  }
  const std::string id = job->record.id;
  job = co_await jobs_.wait_final(id, std::chrono::milliseconds(wait_ms));
  if (job == nullptr) co_return error_reply(job_not_found(id));
  co_return http::json_response(200, status_json(*job, now_ms()));
}

} // namespace tandem::jobs
