#include "gateway/v2_frontend.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tandem::gateway {
namespace {

http::Request infer_post(std::string body) {
  http::Request request{http::bhttp::verb::post, "/v2/models/digits/infer", 11};
  request.body() = std::move(body);
  return request;
}

TEST(V2Frontend, MapsTheHeadersItUnderstandsOntoTheTypedRequest) {
  auto request = infer_post(R"({"inputs":[]})");
  request.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  request.set("x-request-id", "client-7");
  request.set("x-tandem-session", "user-3");
  request.set("x-tandem-deadline-ms", "250");
  request.set("x-tandem-priority", "low");
  engine::InferenceRequest in;
  EXPECT_FALSE(v2_inference_request(request, "digits", in));
  EXPECT_EQ(in.endpoint, "digits");
  EXPECT_EQ(in.body, R"({"inputs":[]})");
  EXPECT_EQ(in.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(in.client_request_id, "client-7");
  EXPECT_EQ(in.session, "user-3");
  EXPECT_EQ(in.timeout_ms.count(), 250);
  EXPECT_EQ(in.priority, engine::Priority::low);
  EXPECT_FALSE(in.deadline) << "only a job's deadline replaces the SLO timeout";
}

TEST(V2Frontend, TheClientRequestIdHeaderWinsOverXRequestId) {
  auto request = infer_post("{}");
  request.set("x-request-id", "plain");
  request.set("x-client-request-id", "preferred");
  engine::InferenceRequest in;
  EXPECT_FALSE(v2_inference_request(request, "digits", in));
  EXPECT_EQ(in.client_request_id, "preferred");
}

TEST(V2Frontend, AMalformedDeadlineIsIgnoredAndAnUnknownPriorityOrTheBinaryExtensionIsRefused) {
  for (const char* deadline : {"soon", "-5", "0", "12x"}) {
    auto request = infer_post("{}");
    request.set("x-tandem-deadline-ms", deadline);
    engine::InferenceRequest in;
    EXPECT_FALSE(v2_inference_request(request, "digits", in));
    EXPECT_EQ(in.timeout_ms.count(), 0) << deadline;
  }
  auto urgent = infer_post("{}");
  urgent.set("x-tandem-priority", "urgent");
  engine::InferenceRequest in;
  auto refused = v2_inference_request(urgent, "digits", in);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, ErrorCode::invalid_request);
  EXPECT_NE(refused->message.find("x-tandem-priority"), std::string::npos);
  auto binary = infer_post("{}");
  binary.set("inference-header-content-length", "10");
  refused = v2_inference_request(binary, "digits", in);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->message.find("binary tensor extension"), std::string::npos);
}

engine::InferenceResult answered_by_worker() {
  engine::InferenceResult r;
  r.worker_status = 200;
  r.body = R"({"outputs":[]})";
  r.request_id = "0193-abc";
  r.client_request_id = "client-7";
  r.traceparent = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
  r.tier = "serverless";
  r.pool = "serverless";
  r.worker = "digits-ser-0";
  r.model_version = "v1";
  r.attempts = 2;
  r.queue_ms = 1.5;
  r.cold_start_ms = 812.25;
  r.cost_usd = 0.003;
  r.attempt_cost_usd = 0.002;
  return r;
}

TEST(V2Frontend, AWorkersAnswerPassesThroughWithTheXTandemHeaders) {
  http::Reply reply = v2_reply(answered_by_worker());
  EXPECT_EQ(reply.status, 200u);
  EXPECT_EQ(reply.body, R"({"outputs":[]})");
  EXPECT_EQ(reply.header("x-request-id"), "0193-abc");
  EXPECT_EQ(reply.header("x-client-request-id"), "client-7");
  EXPECT_EQ(reply.header("x-tandem-tier"), "serverless");
  EXPECT_EQ(reply.header("x-tandem-worker"), "digits-ser-0");
  EXPECT_EQ(reply.header("x-tandem-model-version"), "v1");
  EXPECT_EQ(reply.header("x-tandem-queue-ms"), "1.500");
  EXPECT_EQ(reply.header("x-tandem-cold-start-ms"), "812.250");
  EXPECT_EQ(reply.header("x-tandem-cost-usd"), "0.002000000") << "the attempt that answered";
  EXPECT_EQ(reply.header("x-tandem-attempts"), "2");
  EXPECT_EQ(reply.header("traceparent"), "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01");
  EXPECT_EQ(reply.header("Retry-After"), "");
}

TEST(V2Frontend, AWorkersRefusalKeepsItsStatusAndBody) {
  auto r = answered_by_worker();
  r.worker_status = 422;
  r.body = R"({"error":"bad pixels"})";
  r.error = Error{ErrorCode::worker_rejected_input, {}};
  http::Reply reply = v2_reply(std::move(r));
  EXPECT_EQ(reply.status, 422u);
  EXPECT_EQ(reply.body, R"({"error":"bad pixels"})");
  EXPECT_EQ(reply.header("x-tandem-worker"), "digits-ser-0");
}

TEST(V2Frontend, TandemsOwnAnswerMapsTheCodeAndSaysWhenToRetry) {
  engine::InferenceResult overloaded;
  overloaded.error = Error{ErrorCode::overloaded, "endpoint digits is overloaded"};
  overloaded.retry_after_s = 3.7;
  overloaded.model_version = "v1";
  http::Reply reply = v2_reply(std::move(overloaded));
  EXPECT_EQ(reply.status, 429u);
  EXPECT_EQ(reply.body, R"({"error":"endpoint digits is overloaded"})");
  EXPECT_EQ(reply.header("Retry-After"), "3");
  EXPECT_EQ(reply.header("x-tandem-tier"), "") << "no pool served it";
  EXPECT_EQ(reply.header("x-tandem-model-version"), "v1");

  engine::InferenceResult no_capacity;
  no_capacity.error = Error{ErrorCode::no_capacity, "no healthy worker"};
  no_capacity.tier = "dedicated";
  reply = v2_reply(std::move(no_capacity));
  EXPECT_EQ(reply.status, 503u);
  EXPECT_EQ(reply.header("Retry-After"), "1");
  EXPECT_EQ(reply.header("x-tandem-tier"), "dedicated");

  engine::InferenceResult late;
  late.error = Error{ErrorCode::deadline_exceeded, "the request's deadline passed"};
  reply = v2_reply(std::move(late));
  EXPECT_EQ(reply.status, 504u);
  EXPECT_EQ(reply.header("Retry-After"), "");
}

TEST(V2Frontend, DeferredWorkRunsWithTheBodyTheServerSent) {
  auto r = answered_by_worker();
  std::string seen;
  r.after_answer = [&](std::string_view body) { seen = body; };
  http::Reply reply = v2_reply(std::move(r));
  ASSERT_TRUE(reply.after_sent);
  reply.after_sent(infer_post("the request body"));
  EXPECT_EQ(seen, "the request body");
}

TEST(InferenceResult, TheStatusIsTheWorkersWhenOneAnsweredElseTheCodes) {
  engine::InferenceResult r;
  EXPECT_EQ(r.http_status(), 500) << "no answer at all is a bug";
  r.error = Error{ErrorCode::queue_full, "full"};
  EXPECT_EQ(r.http_status(), 429);
  EXPECT_FALSE(r.ok());
  r.error.reset();
  r.worker_status = 200;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(engine::parse_priority("high"), engine::Priority::high);
  EXPECT_FALSE(engine::parse_priority("HIGH"));
}

} // namespace
} // namespace tandem::gateway
