#include "policy/cost_meter.hpp"

#include <gtest/gtest.h>

namespace tandem::policy {
namespace {

using namespace std::chrono_literals;

TEST(CostMeter, AccruesPerWorkerSecond) {
  CostMeter meter(0.001097);  // H100 serverless list price
  EXPECT_NEAR(meter.accrue(10s, 2), 0.02194, 1e-12);
  EXPECT_NEAR(meter.total_dollars(), 0.02194, 1e-12);
  EXPECT_EQ(meter.accrue(0s, 2), 0.0);
  EXPECT_EQ(meter.accrue(1s, 0), 0.0);
}

TEST(CostMeter, DedicatedIsProratedPerSecondOfTheHourlyPrice) {
  CostMeter meter(2.69 / 3600.0);
  meter.accrue(1h, 2);
  EXPECT_NEAR(meter.total_dollars(), 5.38, 1e-9);
}

TEST(CostMeter, RequestsPayTheirBusyShareThenTheIdleShareOfTheLastWindow) {
  CostMeter meter(1.0, 10s);  // $1 per worker-second for round numbers
  TimePoint t{};
  // Window 1: one worker for 10 s, 10 requests of 100 ms each alone on the worker.
  meter.accrue(10s, 1);
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(meter.attribute(t + 1s * i, 100ms, 1), 0.1, 1e-12);
  // Window 2 starts: the 9 idle seconds of window 1 are spread over its 10 requests.
  EXPECT_NEAR(meter.attribute(t + 10s, 100ms, 1), 0.1 + 0.9, 1e-12);
  // Sharing a worker divides the busy share.
  EXPECT_NEAR(meter.attribute(t + 11s, 100ms, 4), 0.025 + 0.9, 1e-12);
}

TEST(CostMeter, AttributedCostTracksTheBillOverTime) {
  CostMeter meter(0.5, 10s);
  TimePoint t{};
  // Steady traffic: 1 s ticks, 20 requests of 30 ms per tick on 2 workers.
  for (int second = 0; second < 600; ++second) {
    meter.accrue(1s, 2);
    for (int r = 0; r < 20; ++r) meter.attribute(t + 1s * second + 10ms * r, 30ms, 1);
  }
  EXPECT_NEAR(meter.attributed_dollars() / meter.total_dollars(), 1.0, 0.03)
      << "requests must pay for the idle capacity too, within a window's lag";
}

} // namespace
} // namespace tandem::policy
