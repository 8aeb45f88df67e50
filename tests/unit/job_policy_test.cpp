// Job decisions in simulated time: ttl, execution deadlines, what an answer means, requeue and
// webhook back-off, result retention.
#include "http/one_shot_client.hpp"
#include "policy/job_policy.hpp"

#include <gtest/gtest.h>

namespace tandem::policy {
namespace {

TEST(JobPolicy, StatusNamesAreRunpods) {
  for (auto s : {JobStatus::in_queue, JobStatus::in_progress, JobStatus::completed, JobStatus::failed,
                 JobStatus::cancelled, JobStatus::timed_out})
    EXPECT_EQ(parse_job_status(to_string(s)), s);
  EXPECT_EQ(to_string(JobStatus::timed_out), "TIMED_OUT");
  EXPECT_FALSE(parse_job_status("DONE"));
  EXPECT_FALSE(is_final(JobStatus::in_queue));
  EXPECT_FALSE(is_final(JobStatus::in_progress));
  EXPECT_TRUE(is_final(JobStatus::cancelled));
  EXPECT_TRUE(may_retry(JobStatus::failed));
  EXPECT_TRUE(may_retry(JobStatus::timed_out));
  EXPECT_FALSE(may_retry(JobStatus::completed));
  EXPECT_FALSE(may_retry(JobStatus::in_queue));
}

TEST(JobPolicy, TtlCountsFromAcceptanceAndBoundsTheExecutionDeadline) {
  const JobClock job{1'000'000, 60'000, 600'000};  // ttl 1 min, execution timeout 10 min
  EXPECT_FALSE(ttl_expired(job, 1'059'999));
  auto expired = ttl_expired(job, 1'060'000);
  ASSERT_TRUE(expired);
  EXPECT_NE(expired->find("60000 ms"), std::string::npos);
  // Started 10 s after acceptance: the ttl (50 s left) comes before the execution timeout.
  EXPECT_EQ(execution_deadline_unix_ms(job, 1'010'000), 1'060'000);
  const JobClock no_ttl{1'000'000, 0, 5'000};
  EXPECT_FALSE(ttl_expired(no_ttl, 9'000'000'000));
  EXPECT_EQ(execution_deadline_unix_ms(no_ttl, 1'010'000), 1'015'000);
}

TEST(JobPolicy, AnswersMapToOutcomes) {
  const std::int64_t deadline = 10'000;
  EXPECT_EQ(classify_execution(200, deadline, 5'000), ExecutionOutcome::completed);
  EXPECT_EQ(classify_execution(429, deadline, 5'000), ExecutionOutcome::requeue);
  EXPECT_EQ(classify_execution(503, deadline, 5'000), ExecutionOutcome::requeue);
  EXPECT_EQ(classify_execution(503, deadline, 10'000), ExecutionOutcome::timed_out);
  EXPECT_EQ(classify_execution(504, deadline, 5'000), ExecutionOutcome::timed_out);
  EXPECT_EQ(classify_execution(400, deadline, 5'000), ExecutionOutcome::failed);
  EXPECT_EQ(classify_execution(502, deadline, 5'000), ExecutionOutcome::failed);
  EXPECT_EQ(classify_execution(502, deadline, 11'000), ExecutionOutcome::timed_out);
}

TEST(JobPolicy, RequeueBackOffDoublesToOneSecond) {
  EXPECT_EQ(requeue_delay_ms(1), 20);
  EXPECT_EQ(requeue_delay_ms(2), 40);
  EXPECT_EQ(requeue_delay_ms(6), 640);
  EXPECT_EQ(requeue_delay_ms(7), 1000);
  EXPECT_EQ(requeue_delay_ms(1000), 1000);
}

TEST(JobPolicy, AWebhookThatNeverAnswersIsGivenUpAfterItsAttemptsWithinBoundedTime) {
  // Simulated: every delivery fails; count attempts and the time they take.
  std::int64_t now = 0;
  int attempts = 0;
  for (;;) {
    ++attempts;  // a delivery, failed
    auto delay = webhook_retry_delay_ms(attempts, 3, 1000);
    if (!delay) break;
    now += *delay;
  }
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(now, 1000 + 2000);
  EXPECT_EQ(webhook_retry_delay_ms(1, 1, 1000), std::nullopt);
  // Bounded even at the largest configurable count.
  EXPECT_EQ(webhook_retry_delay_ms(19, 20, 1000), std::int64_t{1000} << 10);
}

TEST(JobPolicy, ResultsExpireAfterTheRetentionPeriod) {
  EXPECT_FALSE(result_expired(0, 1'800'000, 9'999'999'999));  // unfinished: never
  EXPECT_FALSE(result_expired(1'000, 1'800'000, 1'800'999));
  EXPECT_TRUE(result_expired(1'000, 1'800'000, 1'801'000));
}

TEST(WebhookUrl, OnlyPlainHttpUrlsAreAccepted) {
  auto url = http::parse_http_url("http://hooks.example:8080/a/b?c=d");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->host, "hooks.example");
  EXPECT_EQ(url->port, "8080");
  EXPECT_EQ(url->target, "/a/b?c=d");
  auto bare = http::parse_http_url("http://127.0.0.1");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->port, "80");
  EXPECT_EQ(bare->target, "/");
  for (const char* bad : {"https://x/", "ftp://x", "http://", "http://:80/", "http://x:0/", "http://x:99999/",
                          "http://user@x/", "http://x/a b", "x"})
    EXPECT_FALSE(http::parse_http_url(bad)) << bad;
}

} // namespace
} // namespace tandem::policy
