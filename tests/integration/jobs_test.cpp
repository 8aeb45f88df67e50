// The RunPod-compatible job API with the real binary, real workers and the real state store:
// run/status, runsync, stream, cancel, purge-queue, health, ttl, retry, webhooks, bad input,
// and a job that survives a kill -9 of the gateway.
#include "base/sha256.hpp"
#include "harness.hpp"
#include "support/otlp_receiver.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <csignal>

namespace tandem::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kBase = "/runpod/v2/digits/";

json::object parse(const HttpResult& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

std::string str(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

/// A job body for held-out row `row`.
std::string job_body(const std::vector<DigitRow>& rows, std::size_t row, const std::string& extra = "") {
  return "{\"input\": " + infer_body(rows, row, 1) + extra + "}";
}

std::int64_t label_of(const json::object& status) {
  const auto* output = status.if_contains("output");
  if (output == nullptr || !output->is_object()) return -1;
  for (const auto& out : output->as_object().at("outputs").as_array())
    if (out.as_object().at("name").as_string() == "label") return out.as_object().at("data").as_array()[0].to_number<std::int64_t>();
  return -1;
}

/// Polls status until a final status or the deadline.
json::object poll_final(HttpClient& client, const std::string& id, std::chrono::milliseconds timeout = 15s) {
  json::object last;
  wait_until(
      [&] {
        last = parse(client.get(std::string(kBase) + "status/" + id));
        const auto s = str(last, "status");
        return s == "COMPLETED" || s == "FAILED" || s == "CANCELLED" || s == "TIMED_OUT";
      },
      timeout);
  return last;
}

/// One worker, slow on purpose, and one job at a time: a second job stays queued long enough
/// to be cancelled, purged or expired deterministically.
std::string slow_endpoint(int delay_ms) {
  return "  digits:\n    model: " + (source_dir() / "models/digits").string() +
         "\n    slo: {timeout_ms: 5000}\n    worker: {args: [\"--fault-delay-ms\", \"" + std::to_string(delay_ms) +
         "\"]}\n    dedicated: {replicas: 1, max_concurrency_per_worker: 1}\n";
}
constexpr const char* kOneAtATime = "  jobs: {concurrency: 1}\n";

TEST(JobsTest, RunThenStatusUntilCompletedWithTheModelsAnswer) {
  ServerProcess server(digits_endpoint(1));
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  for (std::size_t row : {0u, 5u, 17u}) {
    auto sync = parse(client.post("/v2/models/digits/infer", infer_body(rows, row, 1)));
    auto run = client.post(std::string(kBase) + "run", job_body(rows, row), {{"authorization", "Bearer any-key"}});
    ASSERT_EQ(run.status, 200) << run.body;
    const auto accepted = parse(run);
    const std::string id = str(accepted, "id");
    ASSERT_FALSE(id.empty()) << run.body;
    EXPECT_TRUE(str(accepted, "status") == "IN_QUEUE" || str(accepted, "status") == "IN_PROGRESS") << run.body;
    auto done = poll_final(client, id);
    ASSERT_EQ(str(done, "status"), "COMPLETED") << json::serialize(done);
    EXPECT_EQ(label_of(done), sync.at("outputs").as_array()[1].as_object().at("data").as_array()[0].to_number<std::int64_t>());
    EXPECT_TRUE(done.contains("delayTime") && done.contains("executionTime")) << json::serialize(done);
    EXPECT_EQ(str(done, "workerId").rfind("digits-", 0), 0u) << json::serialize(done);
  }
  // The job went through the request path: it has an audit record under its id.
  auto run = parse(client.post(std::string(kBase) + "run", job_body(rows, 3)));
  const std::string id = str(run, "id");
  ASSERT_EQ(str(poll_final(client, id), "status"), "COMPLETED");
  EXPECT_TRUE(wait_until([&] { return client.get("/admin/v1/requests/" + id).status == 200; }, 5s));

  // A job's input of 4 KiB or more: no server writes its reply, so the digest deferred until
  // after the write is taken when the job's request finishes; the record must carry it.
  const std::string big_input = infer_body(rows, 0, 40);
  ASSERT_GE(big_input.size(), 4096u);
  auto big = parse(client.post(std::string(kBase) + "run", "{\"input\": " + big_input + "}"));
  const std::string big_id = str(big, "id");
  ASSERT_EQ(str(poll_final(client, big_id), "status"), "COMPLETED");
  HttpResult record;
  ASSERT_TRUE(wait_until(
      [&] {
        record = client.get("/admin/v1/requests/" + big_id);
        return record.status == 200;
      },
      5s));
  // The job keeps its input as Boost.JSON writes it, and that text is the request's body.
  EXPECT_EQ(str(parse(record), "input_sha256"), sha256_hex(json::serialize(json::parse(big_input))))
      << record.body;
}

TEST(JobsTest, RunsyncAnswersTheFinishedJobAndStreamGivesItsOutput) {
  ServerProcess server(digits_endpoint(1));
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  auto res = client.post(std::string(kBase) + "runsync?wait=10000", job_body(rows, 2));
  ASSERT_EQ(res.status, 200) << res.body;
  auto done = parse(res);
  ASSERT_EQ(str(done, "status"), "COMPLETED") << res.body;
  EXPECT_EQ(label_of(done), rows[2].label);
  const std::string id = str(done, "id");

  auto stream = parse(client.get(std::string(kBase) + "stream/" + id));
  EXPECT_EQ(str(stream, "status"), "COMPLETED");
  ASSERT_EQ(stream.at("stream").as_array().size(), 1u);
  json::object chunk_status;
  chunk_status["output"] = stream.at("stream").as_array()[0].as_object().at("output");
  EXPECT_EQ(label_of(chunk_status), rows[2].label);
}

TEST(JobsTest, RunsyncThatOutwaitsItsWaitAnswersInProgressAndStatusSyncFinishesIt) {
  ServerProcess server(slow_endpoint(800), kOneAtATime);
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  auto res = parse(client.post(std::string(kBase) + "runsync?wait=50", job_body(rows, 1)));
  const std::string status = str(res, "status");
  EXPECT_TRUE(status == "IN_QUEUE" || status == "IN_PROGRESS") << json::serialize(res);
  auto done = parse(client.get(std::string(kBase) + "status-sync/" + str(res, "id") + "?wait=10000"));
  EXPECT_EQ(str(done, "status"), "COMPLETED") << json::serialize(done);
}

TEST(JobsTest, CancelPurgeAndHealthCountQueuedJobs) {
  ServerProcess server(slow_endpoint(600), kOneAtATime);
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < 5; ++i) ids.push_back(str(parse(client.post(std::string(kBase) + "run", job_body(rows, i))), "id"));
  // One executes, four wait.
  auto health = parse(client.get(std::string(kBase) + "health"));
  EXPECT_EQ(health.at("jobs").at("inProgress").as_int64(), 1) << json::serialize(health);
  EXPECT_EQ(health.at("jobs").at("inQueue").as_int64(), 4) << json::serialize(health);
  EXPECT_EQ(health.at("workers").at("ready").as_int64(), 1);
  EXPECT_EQ(health.at("workers").at("running").as_int64() + health.at("workers").at("idle").as_int64(), 1);

  auto cancelled = parse(client.post(std::string(kBase) + "cancel/" + ids[1], "{}"));
  EXPECT_EQ(str(cancelled, "status"), "CANCELLED") << json::serialize(cancelled);
  EXPECT_EQ(str(parse(client.get(std::string(kBase) + "status/" + ids[1])), "status"), "CANCELLED");

  auto purged = parse(client.post(std::string(kBase) + "purge-queue", "{}"));
  EXPECT_EQ(purged.at("removed").as_int64(), 3) << json::serialize(purged);
  EXPECT_EQ(str(purged, "status"), "completed");
  for (std::size_t i = 2; i < 5; ++i)
    EXPECT_EQ(str(parse(client.get(std::string(kBase) + "status/" + ids[i])), "status"), "CANCELLED");

  EXPECT_EQ(str(poll_final(client, ids[0]), "status"), "COMPLETED");
  health = parse(client.get(std::string(kBase) + "health"));
  EXPECT_EQ(health.at("jobs").at("completed").as_int64(), 1) << json::serialize(health);
  EXPECT_EQ(health.at("jobs").at("inQueue").as_int64(), 0);
  EXPECT_EQ(health.at("jobs").at("inProgress").as_int64(), 0);

  // A cancelled job can be retried; it then completes.
  auto retried = client.post(std::string(kBase) + "retry/" + ids[1], "{}");
  ASSERT_EQ(retried.status, 200) << retried.body;
  auto done = poll_final(client, ids[1]);
  EXPECT_EQ(str(done, "status"), "COMPLETED");
  EXPECT_EQ(done.at("retries").as_int64(), 1);
  health = parse(client.get(std::string(kBase) + "health"));
  EXPECT_EQ(health.at("jobs").at("retried").as_int64(), 1);
  // A completed job is not retried.
  EXPECT_EQ(client.post(std::string(kBase) + "retry/" + ids[0], "{}").status, 409);
}

TEST(JobsTest, TtlExpiryAndExecutionTimeoutAreReportedAsTimedOut) {
  ServerProcess server(slow_endpoint(700), kOneAtATime);
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  const std::string first = str(parse(client.post(std::string(kBase) + "run", job_body(rows, 0))), "id");
  // Queued behind the first job for ~700 ms, with a 150 ms ttl.
  const std::string expiring =
      str(parse(client.post(std::string(kBase) + "run", job_body(rows, 1, R"(, "policy": {"ttl": 150})"))), "id");
  auto expired = poll_final(client, expiring);
  EXPECT_EQ(str(expired, "status"), "TIMED_OUT") << json::serialize(expired);
  EXPECT_NE(str(expired, "error").find("ttl"), std::string::npos) << json::serialize(expired);
  EXPECT_EQ(str(poll_final(client, first), "status"), "COMPLETED");

  // Runs, but longer than its execution timeout allows.
  const std::string slow =
      str(parse(client.post(std::string(kBase) + "run", job_body(rows, 2, R"(, "policy": {"executionTimeout": 200})"))),
          "id");
  auto timed_out = poll_final(client, slow);
  EXPECT_EQ(str(timed_out, "status"), "TIMED_OUT") << json::serialize(timed_out);
  EXPECT_NE(str(timed_out, "error").find("executionTimeout"), std::string::npos) << json::serialize(timed_out);
}

TEST(JobsTest, ALowPriorityJobWaitsForIdleCapacityInsteadOfFailing) {
  ServerProcess server(slow_endpoint(300), "  jobs: {concurrency: 2}\n");
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  const std::string normal = str(parse(client.post(std::string(kBase) + "run", job_body(rows, 0))), "id");
  const std::string low =
      str(parse(client.post(std::string(kBase) + "run", job_body(rows, 1, R"(, "policy": {"lowPriority": true})"))),
          "id");
  // The router refuses the low-priority execution while the only slot is busy; the job goes
  // back to its queue and runs once the slot is idle.
  auto done = poll_final(client, low);
  EXPECT_EQ(str(done, "status"), "COMPLETED") << json::serialize(done);
  EXPECT_EQ(str(poll_final(client, normal), "status"), "COMPLETED");
  EXPECT_GE(done.at("delayTime").as_int64(), 200) << json::serialize(done);
  auto metrics = client.get("/metrics").body;
  EXPECT_GE(metric_value(metrics, "tandem_jobs_requeued_total{endpoint=\"digits\"}").value_or(0), 1);
  EXPECT_GE(metric_value(metrics, "tandem_rejected_total{endpoint=\"digits\",reason=\"low_priority\"}").value_or(0), 1);
}

TEST(JobsTest, AFinishedJobsResultIsKeptForTheRetentionPeriodThenStatusIs404) {
  ServerProcess server(digits_endpoint(1), "  jobs: {result_retention: 1s}\n");
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  auto done = parse(client.post(std::string(kBase) + "runsync", job_body(rows, 0)));
  ASSERT_EQ(str(done, "status"), "COMPLETED");
  const auto finished = std::chrono::steady_clock::now();
  const std::string id = str(done, "id");
  EXPECT_EQ(client.get(std::string(kBase) + "status/" + id).status, 200);
  ASSERT_TRUE(wait_until([&] { return client.get(std::string(kBase) + "status/" + id).status == 404; }, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - finished, 900ms);
  auto metrics = client.get("/metrics").body;
  EXPECT_EQ(metric_value(metrics, "tandem_jobs_expired_total{reason=\"retention\"}"), 1);
}

TEST(JobsTest, BadRequestsGetClearErrors) {
  ServerProcess server(digits_endpoint(1));
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  struct Case {
    std::string body;
    std::string mentions;
  };
  for (const auto& c : std::vector<Case>{{"{not json", "not valid JSON"},
                                         {"[1,2]", "JSON object"},
                                         {"{}", "input: required"},
                                         {R"({"input": 7})", "input"},
                                         {R"({"input": {"inputs": []}})", "inputs"},
                                         {R"({"input": {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}})", "shape"},
                                         {"{\"input\": " + infer_body(rows, 0, 1) + R"(, "policy": {"ttl": "soon"}})", "policy.ttl"},
                                         {"{\"input\": " + infer_body(rows, 0, 1) + R"(, "policy": {"lowPriority": 1}})", "policy.lowPriority"},
                                         {"{\"input\": " + infer_body(rows, 0, 1) + R"(, "webhook": "ftp://x"})", "webhook"},
                                         {"{\"input\": " + infer_body(rows, 0, 1) + R"(, "extra": 1})", "extra"}}) {
    auto res = client.post(std::string(kBase) + "run", c.body);
    EXPECT_EQ(res.status, 400) << c.body << " -> " << res.body;
    EXPECT_NE(str(parse(res), "error").find(c.mentions), std::string::npos) << c.body << " -> " << res.body;
  }
  auto unknown = client.get(std::string(kBase) + "status/0123456789abcdef");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(str(parse(unknown), "error").find("not found"), std::string::npos) << unknown.body;
  EXPECT_EQ(client.post(std::string(kBase) + "cancel/0123456789abcdef", "{}").status, 404);
  EXPECT_EQ(client.post("/runpod/v2/nosuch/run", job_body(rows, 0)).status, 404);
  EXPECT_EQ(client.get(std::string(kBase) + "run").status, 405);
}

TEST(JobsTest, QueueLimitAnswers429) {
  ServerProcess server(slow_endpoint(500), "  jobs: {concurrency: 1, queue_max: 2}\n");
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  int accepted = 0;
  HttpResult refused;
  for (int i = 0; i < 5; ++i) {
    auto res = client.post(std::string(kBase) + "run", job_body(rows, 0));
    if (res.status == 200) ++accepted;
    else refused = res;
  }
  EXPECT_EQ(accepted, 3);  // one executing, two queued
  EXPECT_EQ(refused.status, 429);
  EXPECT_NE(str(parse(refused), "error").find("queue_max"), std::string::npos) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());
}

TEST(JobsTest, WebhookReceivesTheFinishedJobAndFailedDeliveriesAreRetried) {
  OtlpReceiver receiver;  // records any POST; used here as a webhook receiver
  receiver.fail_next(1, 503);
  ServerProcess server(digits_endpoint(1), "  jobs: {webhook_retry_delay: 50ms, webhook_allow: [\"127.0.0.1/32\"]}\n");
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  const std::string hook = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hooks/job";
  const std::string id =
      str(parse(client.post(std::string(kBase) + "run", job_body(rows, 4, ", \"webhook\": \"" + hook + "\""))), "id");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(wait_until([&] { return receiver.requests().size() >= 2; }, 10s))
      << receiver.requests().size() << " deliveries; job: " << client.get(std::string(kBase) + "status/" + id).body
      << "\n" << server.logs();
  auto requests = receiver.requests();
  EXPECT_EQ(requests[0].status, 503);
  EXPECT_EQ(requests[1].status, 200);
  EXPECT_EQ(requests[1].target, "/hooks/job");
  auto delivered = json::parse(requests[1].body).as_object();
  EXPECT_EQ(str(delivered, "id"), id);
  EXPECT_EQ(str(delivered, "status"), "COMPLETED");
  EXPECT_EQ(label_of(delivered), rows[4].label);
  // The receiver has the delivery before the gateway has read its answer and counted it.
  std::string metrics;
  EXPECT_TRUE(wait_until(
      [&] {
        metrics = client.get("/metrics").body;
        return metric_value(metrics, "tandem_job_webhooks_total{outcome=\"delivered\"}") == 1;
      },
      10s))
      << metrics;
  EXPECT_EQ(metric_value(metrics, "tandem_job_webhooks_total{outcome=\"retried\"}"), 1);
}

// A webhook is a request the server makes for a client: by default it may not reach loopback
// (or private, link-local) addresses, and never the server itself, allow-list or not. Before
// this, a webhook to the admin API aborted a rollout.
TEST(JobsTest, AWebhookToLoopbackOrToTheServerItselfIsRefusedAndCounted) {
  OtlpReceiver receiver;
  auto rows = load_heldout();
  const std::string hook = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hooks/job";
  {
    ServerProcess server(digits_endpoint(1));
    auto client = server.client();
    auto refused = client.post(std::string(kBase) + "run", job_body(rows, 1, ", \"webhook\": \"" + hook + "\""));
    EXPECT_EQ(refused.status, 400) << refused.body;
    EXPECT_NE(refused.body.find("loopback"), std::string::npos) << refused.body;
    EXPECT_NE(refused.body.find("webhook_allow"), std::string::npos) << refused.body;
    EXPECT_EQ(metric_value(client.get("/metrics").body, "tandem_job_webhook_refused_total{reason=\"loopback\"}"), 1);
  }
  ServerProcess server(digits_endpoint(1), "  jobs: {webhook_allow: [\"127.0.0.0/8\"]}\n");
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  const std::string self = "http://127.0.0.1:" + std::to_string(server.port()) + "/admin/v1/rollouts/digits/abort";
  auto refused = client.post(std::string(kBase) + "run", job_body(rows, 2, ", \"webhook\": \"" + self + "\""));
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("this server"), std::string::npos) << refused.body;
  EXPECT_EQ(metric_value(client.get("/metrics").body, "tandem_job_webhook_refused_total{reason=\"self\"}"), 1);
  // The allow-list lets the receiver through.
  auto accepted = client.post(std::string(kBase) + "run", job_body(rows, 3, ", \"webhook\": \"" + hook + "\""));
  EXPECT_EQ(accepted.status, 200) << accepted.body;
  EXPECT_TRUE(wait_until([&] { return !receiver.requests().empty(); }, 10s)) << server.logs();
}

TEST(JobsTest, AnAcceptedJobSurvivesAKillNineOfTheGatewayAndCompletesAfterRestart) {
  const auto dir = make_temp_dir();
  auto rows = load_heldout();
  std::vector<std::string> ids;
  {
    ServerProcess first(slow_endpoint(400), kOneAtATime, dir);
    ASSERT_TRUE(first.wait_ready(1));
    auto client = first.client();
    for (std::size_t i = 0; i < 4; ++i) {
      auto res = client.post(std::string(kBase) + "run", job_body(rows, 10 + i));
      ASSERT_EQ(res.status, 200) << res.body;
      ids.push_back(str(parse(res), "id"));
    }
    // At most one has finished: the rest are queued or executing when the gateway dies.
    first.stop(SIGKILL);
  }
  ServerProcess second(slow_endpoint(50), kOneAtATime, dir);
  ASSERT_TRUE(second.wait_ready(1));
  auto client = second.client();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto done = poll_final(client, ids[i], 20s);
    EXPECT_EQ(str(done, "status"), "COMPLETED") << ids[i] << " " << json::serialize(done);
    auto sync = parse(client.post("/v2/models/digits/infer", infer_body(rows, 10 + i, 1)));
    EXPECT_EQ(label_of(done),
              sync.at("outputs").as_array()[1].as_object().at("data").as_array()[0].to_number<std::int64_t>());
  }
  auto metrics = client.get("/metrics").body;
  EXPECT_GE(metric_value(metrics, "tandem_jobs_recovered_total").value_or(0), 3);
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace tandem::testing
