#include "policy/pool_estimators.hpp"

#include <gtest/gtest.h>

namespace tandem::policy {
namespace {

using std::chrono::milliseconds;

PoolClockPoint at_ms(int ms) { return PoolClockPoint{} + milliseconds(ms); }

TEST(ColdStartEstimate, TheFirstStartIsTheEstimateThenEachNewStartWeighsThreeTenths) {
  ColdStartEstimate e;
  EXPECT_FALSE(e.measured());
  EXPECT_EQ(e.mean_ms(), 0.0);
  e.observe(100);
  EXPECT_DOUBLE_EQ(e.mean_ms(), 100);
  e.observe(200);
  EXPECT_DOUBLE_EQ(e.mean_ms(), 130);
  for (int i = 0; i < 20; ++i) e.observe(1000);
  EXPECT_NEAR(e.mean_ms(), 1000, 1) << "a model that now loads slowly shows within a few starts";
}

TEST(DemandIntegral, AverageConcurrencyIsTheTimeWeightedLevelOverThePeriod) {
  DemandIntegral d(at_ms(0));
  d.advance(at_ms(0), 0);
  d.advance(at_ms(250), 0);   // idle for 250 ms
  d.advance(at_ms(750), 4);   // 4 requests for 500 ms
  d.arrival();
  d.arrival();
  const DemandPeriod p = d.take(at_ms(1000), 2); // 2 for the last 250 ms
  EXPECT_DOUBLE_EQ(p.average_concurrency, (0.25 * 0 + 0.5 * 4 + 0.25 * 2) / 1.0);
  EXPECT_EQ(p.arrivals, 2);
  const DemandPeriod next = d.take(at_ms(1500), 1);
  EXPECT_DOUBLE_EQ(next.average_concurrency, 1.0) << "a new period starts at each take";
  EXPECT_EQ(next.arrivals, 0);
}

TEST(DemandIntegral, ATimeBeforeTheLastChangeCountsAsNoTime) {
  DemandIntegral d(at_ms(0));
  d.advance(at_ms(100), 3);
  d.advance(at_ms(90), 50); // a coarse reading behind the precise one
  const DemandPeriod p = d.take(at_ms(200), 1);
  EXPECT_DOUBLE_EQ(p.average_concurrency, (0.1 * 3 + 0.1 * 1) / 0.2);
}

TEST(ActivatorLimit, PokesAtOnceFromZeroAndAtMostOncePerIntervalOtherwise) {
  ActivatorLimit limit(milliseconds(10));
  int asked = 0;
  auto live = [&] {
    ++asked;
    return true;
  };
  EXPECT_TRUE(limit.should_poke(at_ms(0), live));
  EXPECT_EQ(asked, 0) << "the first poke needs no look at the pool";
  EXPECT_FALSE(limit.should_poke(at_ms(5), live));
  EXPECT_EQ(asked, 1);
  EXPECT_TRUE(limit.should_poke(at_ms(5), [] { return false; })) << "no live worker: scale from zero now";
  EXPECT_FALSE(limit.should_poke(at_ms(14), live));
  EXPECT_TRUE(limit.should_poke(at_ms(15), live));
}

} // namespace
} // namespace tandem::policy
