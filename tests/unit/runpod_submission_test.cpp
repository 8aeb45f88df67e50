// The run/runsync body parser: what RunPod's schema allows, and clear refusals for the rest.
#include "jobs/runpod_api.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tandem::jobs {
namespace {

constexpr std::int64_t kMaxMs = 3'600'000;

Result<JobSubmission> parse(const std::string& body) { return parse_submission(body, "digits", kMaxMs); }

std::string error_of(const std::string& body) {
  auto parsed = parse(body);
  EXPECT_FALSE(parsed.ok()) << body;
  return parsed.ok() ? std::string() : parsed.error().message;
}

TEST(RunpodSubmission, ReadsThePolicyInMilliseconds) {
  auto parsed = parse(R"({"input":{"a":1},"policy":{"executionTimeout":5000,"ttl":60000.0}})");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->execution_timeout_ms, 5000);
  EXPECT_EQ(parsed->ttl_ms, 60000);
}

// Numbers too large for an int64 were converted before they were checked (undefined behaviour,
// and a huge ttl could come out as any value); now each is a range error naming its field.
TEST(RunpodSubmission, HugeOrFractionalTimesAreRefusedNamingTheField) {
  const std::string range = "expected milliseconds between 1 and " + std::to_string(kMaxMs);
  for (const std::string value : {"1e300", "-1e300", "9.3e18", "18446744073709551615", "3600001", "0", "-5", "0.5"}) {
    EXPECT_EQ(error_of(R"({"input":{},"policy":{"ttl":)" + value + "}}"), "policy.ttl: " + range) << value;
    EXPECT_EQ(error_of(R"({"input":{},"policy":{"executionTimeout":)" + value + "}}"),
              "policy.executionTimeout: " + range)
        << value;
  }
  EXPECT_EQ(error_of(R"({"input":{},"policy":{"ttl":1500.5}})"), "policy.ttl: expected milliseconds, an integer");
  EXPECT_EQ(error_of(R"({"input":{},"policy":{"ttl":"60s"}})"), "policy.ttl: expected milliseconds, an integer");
}

} // namespace
} // namespace tandem::jobs
