// The serverless autoscaler in simulated time: hours of traffic in milliseconds of CPU.
#include "base/clock.hpp"
#include "policy/autoscaler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>

namespace tandem::policy {
namespace {

using namespace std::chrono_literals;

// A pool model: workers the autoscaler asks for become ready after a cold start; workers it
// releases go away at once. Demand is given as concurrent requests over time.
struct SimulatedPool {
  ManualClock clock;
  Autoscaler autoscaler;
  Duration tick;
  Duration cold_start;
  std::deque<TimePoint> starting;  // ready times of workers still starting
  int ready = 0;
  int desired = 0;
  int scale_changes = 0;
  int max_seen = 0;

  SimulatedPool(AutoscalerSpec spec, Duration tick_length = 500ms, Duration cold = 50ms)
      : autoscaler(spec), tick(tick_length), cold_start(cold) {}

  // Runs until `until`, with `demand(now)` concurrent requests.
  void run(Duration length, const std::function<double(TimePoint)>& demand) {
    const TimePoint end = clock.now() + length;
    while (clock.now() < end) {
      clock.advance(tick);
      const TimePoint now = clock.now();
      while (!starting.empty() && starting.front() <= now) {
        starting.pop_front();
        ++ready;
      }
      double d = demand(now);
      AutoscalerObservation o;
      o.now = now;
      o.concurrency = d;
      o.instant_demand = d;
      o.arrivals = d > 0 ? 1 : 0;
      o.ready_workers = ready;
      o.live_workers = ready + static_cast<int>(starting.size());
      auto decision = autoscaler.observe(o);
      if (decision.desired_workers != desired) ++scale_changes;
      desired = decision.desired_workers;
      max_seen = std::max(max_seen, desired);
      int live = ready + static_cast<int>(starting.size());
      for (; live < desired; ++live) starting.push_back(now + cold_start);
      while (live > desired && ready > 0) {
        --ready;
        --live;
      }
    }
  }
};

AutoscalerSpec spec_with(int min, int max) {
  AutoscalerSpec s;
  s.min_workers = min;
  s.max_workers = max;
  s.target_concurrency = 2;
  return s;
}

TEST(AutoscalerSim, StepFromZeroToFortyReachesDesiredWithinThePanicWindow) {
  SimulatedPool pool(spec_with(0, 100));
  pool.run(30s, [](TimePoint) { return 0.0; });
  EXPECT_EQ(pool.desired, 0);
  const TimePoint step = pool.clock.now();
  TimePoint reached{};
  pool.run(20s, [&](TimePoint now) {
    if (reached == TimePoint{} && pool.desired >= 20) reached = now;
    return 40.0;
  });
  ASSERT_NE(reached, TimePoint{}) << "desired never reached 40/2 = 20";
  EXPECT_LE(reached - step, 6s) << "must reach the desired count within the panic window";
  EXPECT_EQ(pool.desired, 20);
  EXPECT_EQ(pool.ready, 20);
}

TEST(AutoscalerSim, FirstRequestToAnEmptyPoolAsksForAWorkerAtOnce) {
  Autoscaler autoscaler(spec_with(0, 4));
  AutoscalerObservation o;
  o.now = TimePoint{} + 1h;
  o.instant_demand = 1;
  o.arrivals = 1;
  auto d = autoscaler.observe(o);
  EXPECT_EQ(d.desired_workers, 1);
  EXPECT_TRUE(d.panic) << "demand with no ready capacity is a panic";
}

TEST(AutoscalerSim, TrafficStoppingReturnsThePoolToMinAfterTheScaledownWindow) {
  for (int min : {0, 1}) {
    auto spec = spec_with(min, 10);
    spec.scaledown_window_ms = 60s;
    SimulatedPool pool(spec);
    pool.run(10min, [](TimePoint) { return 10.0; });
    EXPECT_EQ(pool.desired, 5);
    const TimePoint stopped = pool.clock.now();
    TimePoint reached_min{};
    pool.run(3min, [&](TimePoint now) {
      if (reached_min == TimePoint{} && pool.desired == min) reached_min = now;
      return 0.0;
    });
    ASSERT_NE(reached_min, TimePoint{}) << "min " << min;
    // Scale to zero waits for the whole window without traffic; above zero the count follows
    // the decaying stable-window average down, so it may reach min earlier.
    if (min == 0) {
      EXPECT_GE(reached_min - stopped, 60s - pool.tick) << "not before the window";
    }
    EXPECT_LE(reached_min - stopped, 60s + pool.tick) << "within the window plus one tick (min " << min << ")";
  }
}

TEST(AutoscalerSim, ShortScaledownWindowScalesToZeroQuickly) {
  auto spec = spec_with(0, 4);
  spec.scaledown_window_ms = 2s;
  SimulatedPool pool(spec);
  pool.run(20s, [](TimePoint) { return 8.0; });
  EXPECT_EQ(pool.desired, 4);
  const TimePoint stopped = pool.clock.now();
  TimePoint zero{};
  pool.run(10s, [&](TimePoint now) {
    if (zero == TimePoint{} && pool.desired == 0) zero = now;
    return 0.0;
  });
  ASSERT_NE(zero, TimePoint{});
  EXPECT_LE(zero - stopped, 2s + pool.tick);
}

TEST(AutoscalerSim, OscillatingTrafficDoesNotFlap) {
  SimulatedPool pool(spec_with(0, 50));
  // 30 concurrent for 10 s, then 10 for 10 s, for an hour.
  pool.run(1h, [](TimePoint now) {
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    return (seconds / 10) % 2 == 0 ? 30.0 : 10.0;
  });
  EXPECT_LE(pool.scale_changes, 6) << "the desired count must settle, not follow every swing";
  // The stable window averages the swings (mean demand 20 / target 2 = 10); the scale-down
  // hold keeps the highest count of the window, so an average wobbling around 20 holds at 11.
  EXPECT_GE(pool.desired, 10);
  EXPECT_LE(pool.desired, 11);
}

TEST(AutoscalerSim, MaxIsNeverExceededOverADayOfHeavyRandomTraffic) {
  SimulatedPool pool(spec_with(0, 8));
  std::uint64_t state = 12345;
  pool.run(24h, [&](TimePoint) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>((state >> 33) % 1000);
  });
  EXPECT_LE(pool.max_seen, 8);
  EXPECT_EQ(pool.desired, 8);
}

TEST(AutoscalerSim, BufferKeepsExtraWarmWorkersOnlyWhileThereIsTraffic) {
  auto spec = spec_with(0, 10);
  spec.buffer_workers = 2;
  spec.scaledown_window_ms = 10s;
  SimulatedPool pool(spec);
  pool.run(5min, [](TimePoint) { return 4.0; });
  EXPECT_EQ(pool.desired, 4) << "2 for the demand + 2 buffer";
  pool.run(1min, [](TimePoint) { return 0.0; });
  EXPECT_EQ(pool.desired, 0);
}

TEST(AutoscalerSim, NoScaleDownWhilePanicking) {
  SimulatedPool pool(spec_with(0, 40));
  pool.run(10s, [](TimePoint) { return 60.0; });
  int peak = pool.desired;
  EXPECT_EQ(peak, 30);
  // Demand halves shortly after: still within the stable window of the panic, so hold.
  pool.run(20s, [](TimePoint) { return 30.0; });
  EXPECT_EQ(pool.desired, peak);
}

} // namespace
} // namespace tandem::policy
