#include "gateway/v2_frontend.hpp"

#include "base/decimal.hpp"
#include "protocol/v2_codec.hpp"

#include <charconv>

namespace tandem::gateway {

std::optional<Error> v2_inference_request(const http::Request& request, std::string_view endpoint,
                                          engine::InferenceRequest& out) {
  out.endpoint = endpoint;
  out.body = request.body();
  out.traceparent = request["traceparent"];
  out.session = request["x-tandem-session"];
  std::string_view client_id = request["x-client-request-id"];
  if (client_id.empty()) client_id = request["x-request-id"];
  out.client_request_id = client_id;
  if (auto header = request["x-tandem-deadline-ms"]; !header.empty()) {
    long long ms = 0;
    auto [ptr, ec] = std::from_chars(header.data(), header.data() + header.size(), ms);
    if (ec == std::errc{} && ptr == header.data() + header.size() && ms > 0)
      out.timeout_ms = std::chrono::milliseconds(ms);
  }
  if (auto priority = request["x-tandem-priority"]; !priority.empty()) {
    auto parsed = engine::parse_priority(priority);
    if (!parsed) return Error{ErrorCode::invalid_request, "x-tandem-priority: expected low, normal or high"};
    out.priority = *parsed;
  }
  if (!request["inference-header-content-length"].empty())
    return Error{ErrorCode::invalid_request, "the binary tensor extension is not supported; send JSON tensors"};
  return std::nullopt;
}

http::Reply v2_reply(engine::InferenceResult&& r) {
  http::Reply out;
  const bool worker_answered = r.worker_status > 0;
  if (worker_answered) {
    out.status = static_cast<unsigned>(r.worker_status);
    out.content_type = std::move(r.content_type);
    out.body = std::move(r.body);
  } else {
    const Error& e = r.error ? *r.error : Error{ErrorCode::internal, "no answer"};
    out.status = static_cast<unsigned>(http_status(e.code));
    out.body = v2::encode_error(e.message);
  }
  out.set("x-request-id", r.request_id);
  if (!r.client_request_id.empty()) out.set("x-client-request-id", r.client_request_id);
  if (worker_answered) {
    out.set("x-tandem-tier", r.tier);
    out.set("x-tandem-worker", r.worker);
    out.set("x-tandem-model-version", r.model_version);
    out.set("x-tandem-queue-ms", fixed_decimal(r.queue_ms, 3));
    if (r.cold_start_ms) out.set("x-tandem-cold-start-ms", fixed_decimal(*r.cold_start_ms, 3));
    out.set("x-tandem-cost-usd", fixed_decimal(r.attempt_cost_usd, 9));
    if (r.attempts > 1) out.set("x-tandem-attempts", std::to_string(r.attempts));
  } else {
    if (out.status == 429 || out.status == 503)
      out.set("Retry-After", std::to_string(r.retry_after_s > 0 ? static_cast<int>(r.retry_after_s) : 1));
    if (r.tier != "none") out.set("x-tandem-tier", r.tier);
    if (!r.model_version.empty()) out.set("x-tandem-model-version", r.model_version);
  }
  if (!r.traceparent.empty()) out.set("traceparent", r.traceparent);
  if (r.after_answer)
    out.after_sent = [work = std::move(r.after_answer)](const http::Request& sent) { work(sent.body()); };
  return out;
}

} // namespace tandem::gateway
