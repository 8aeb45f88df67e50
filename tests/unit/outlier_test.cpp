#include "policy/outlier.hpp"

#include <gtest/gtest.h>

namespace tandem::policy {
namespace {

using namespace std::chrono_literals;

TEST(Outlier, ConsecutiveFailuresEjectForAGrowingPeriod) {
  OutlierSpec spec;
  spec.consecutive_failures = 3;
  spec.base_ejection_ms = 10s;
  OutlierState state;
  TimePoint t{};
  EXPECT_FALSE(record_outcome(state, spec, false, t, 0, 4));
  EXPECT_FALSE(record_outcome(state, spec, false, t, 0, 4));
  EXPECT_TRUE(record_outcome(state, spec, false, t, 0, 4));
  EXPECT_TRUE(state.ejected(t + 9s));
  EXPECT_FALSE(state.ejected(t + 10s));
  // Second ejection lasts twice as long.
  TimePoint later = t + 20s;
  for (int i = 0; i < 2; ++i) record_outcome(state, spec, false, later, 0, 4);
  EXPECT_TRUE(record_outcome(state, spec, false, later, 0, 4));
  EXPECT_TRUE(state.ejected(later + 19s));
  EXPECT_FALSE(state.ejected(later + 20s));
}

TEST(Outlier, ASuccessResetsTheCount) {
  OutlierSpec spec;
  spec.consecutive_failures = 2;
  OutlierState state;
  TimePoint t{};
  record_outcome(state, spec, false, t, 0, 2);
  record_outcome(state, spec, true, t, 0, 2);
  EXPECT_FALSE(record_outcome(state, spec, false, t, 0, 2));
  EXPECT_FALSE(state.ejected(t));
}

TEST(Outlier, NeverEjectsMoreThanTheAllowedShareButAlwaysOne) {
  OutlierSpec spec;
  spec.consecutive_failures = 1;
  spec.max_ejected_percent = 50;
  EXPECT_EQ(max_ejected(spec, 1), 1);
  EXPECT_EQ(max_ejected(spec, 4), 2);
  OutlierState state;
  EXPECT_FALSE(record_outcome(state, spec, false, TimePoint{}, 2, 4)) << "two of four are out already";
  EXPECT_TRUE(record_outcome(state, spec, false, TimePoint{}, 1, 4));
  spec.max_ejected_percent = 0;
  OutlierState off;
  EXPECT_FALSE(record_outcome(off, spec, false, TimePoint{}, 0, 4)) << "0 % turns ejection off";
}

TEST(RetryBudget, ZeroRatioMeansNoRetries) {
  RetryBudget budget(0.0, 10, 100);
  budget.on_request();
  EXPECT_FALSE(budget.try_retry());
}

TEST(RetryBudget, RetriesAreBoundedByTheRatioOfRequests) {
  RetryBudget budget(0.2, 10, 100);
  int retries = 0;
  for (int i = 0; i < 1000; ++i) {
    budget.on_request();
    if (budget.try_retry()) ++retries;  // every request fails and wants a retry
  }
  EXPECT_LE(retries, 10 + 200);
  EXPECT_GE(retries, 200);
}

} // namespace
} // namespace tandem::policy
