#include "policy/cost_meter.hpp"

#include <gtest/gtest.h>

namespace tandem::policy {
namespace {

using namespace std::chrono_literals;

TEST(CostMeter, AccruesPerWorkerSecond) {
  CostMeter meter(0.001097); // H100 serverless list price
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
  CostMeter meter(1.0, 10s); // $1 per worker-second for round numbers
  // Window 1: one worker for 10 s, 10 requests of 100 ms each alone on the worker.
  meter.accrue(5s, 1);
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(meter.attribute(100ms, 1), 0.1, 1e-12);
  meter.accrue(5s, 1);
  meter.accrue(5s, 1); // window 2's first half, metered before its requests are answered
  // Window 2: the 9 idle seconds of window 1 are spread over as many requests as it had.
  EXPECT_NEAR(meter.attribute(100ms, 1), 0.1 + 0.9, 1e-12);
  // Sharing a worker divides the busy share.
  EXPECT_NEAR(meter.attribute(100ms, 4), 0.025 + 0.9, 1e-12);
  for (int i = 0; i < 8; ++i) meter.attribute(100ms, 1);
  // The 9 idle dollars are handed out; the 11th request of the window pays its busy share only.
  EXPECT_NEAR(meter.overhead_left(), 0.0, 1e-12);
  EXPECT_NEAR(meter.attribute(100ms, 1), 0.1, 1e-12);
}

// The quickstart's pool (2 dedicated H100 workers) on the gateway's 500 ms tick: 11 s idle, one
// request, 11 s idle, then a burst of 1000 requests. Each request of the burst used to be
// charged the whole 22 s of idle cost.
TEST(CostMeter, ALullThenABurstSharesTheLullInsteadOfChargingItToEveryRequest) {
  const double price_per_second = 2.69 / 3600.0;
  const double workers = 2;
  CostMeter meter(price_per_second, 10s);
  double metered = 0;
  auto idle = [&](int ticks) {
    for (int i = 0; i < ticks; ++i) metered += meter.accrue(500ms, workers);
  };
  const double window_cost = workers * price_per_second * 10;
  double attributed = 0;
  double most = 0;
  auto request = [&](Duration busy, int sharing) {
    const double cost = meter.attribute(busy, sharing);
    attributed += cost;
    most = std::max(most, cost);
  };
  idle(22);
  request(500us, 1);
  idle(22);
  for (int i = 0; i < 1000; ++i) {
    request(300us, 1 + i % 4);
    if (i % 500 == 499) idle(1);
  }
  EXPECT_LE(attributed, metered) << "requests were charged more than the pool cost";
  EXPECT_LE(most, window_cost) << "a request was charged more than a window of the pool";
  EXPECT_NEAR(meter.attributed_dollars(), attributed, 1e-12);
}

TEST(CostMeter, ARequestBeforeItsTimeIsMeteredPaysNoMoreThanIsMetered) {
  CostMeter meter(1.0, 10s);
  EXPECT_EQ(meter.attribute(100ms, 1), 0.0);
  meter.accrue(50ms, 1);
  EXPECT_NEAR(meter.attribute(100ms, 1), 0.05, 1e-12);
  EXPECT_LE(meter.attributed_dollars(), meter.total_dollars());
  // What it was not charged is unattributed cost of the window: idle cost for the next one.
  meter.accrue(9950ms, 1);
  EXPECT_NEAR(meter.overhead_per_request(), (10.0 - 0.05) / 2, 1e-9);
}

TEST(CostMeter, AnIdleShareIsAtMostOneWindowOfThePool) {
  // An hour with no request, in one call or in windows, leaves one window of idle cost to hand out.
  CostMeter at_once(1.0, 10s);
  CostMeter by_window(1.0, 10s);
  at_once.accrue(1h + 3s, 2);
  for (int i = 0; i < 360; ++i) by_window.accrue(10s, 2);
  by_window.accrue(3s, 2);
  EXPECT_NEAR(at_once.total_dollars(), by_window.total_dollars(), 1e-6);
  EXPECT_NEAR(at_once.overhead_per_request(), 20.0, 1e-9);
  EXPECT_NEAR(by_window.overhead_per_request(), 20.0, 1e-9);
  EXPECT_NEAR(at_once.attribute(100ms, 1), 20.0, 1e-9) << "busy share plus idle share, capped at the window";
  EXPECT_NEAR(at_once.attribute(100ms, 1), 0.1 + 0.1, 1e-9) << "the rest of the window's idle cost";
  EXPECT_NEAR(at_once.attribute(100ms, 1), 0.1, 1e-9) << "the window's idle cost is handed out";
}

TEST(CostMeter, AttributedCostTracksTheBillOverTime) {
  CostMeter meter(0.5, 10s);
  // Steady traffic: 1 s ticks, 20 requests of 30 ms per tick on 2 workers.
  for (int second = 0; second < 600; ++second) {
    meter.accrue(1s, 2);
    for (int r = 0; r < 20; ++r) meter.attribute(30ms, 1);
  }
  EXPECT_LE(meter.attributed_dollars(), meter.total_dollars());
  EXPECT_NEAR(meter.attributed_dollars() / meter.total_dollars(), 1.0, 0.03)
      << "requests must pay for the idle capacity too, within a window's lag";
}

} // namespace
} // namespace tandem::policy
