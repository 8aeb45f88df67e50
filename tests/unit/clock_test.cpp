// coarse_steady_now(): the cheap clock for second-scale timeouts must stay on steady_clock's
// timeline (deadlines made from one are compared with the other) and never run ahead of it.
#include "base/clock.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace tandem {
namespace {

TEST(CoarseClock, FollowsTheSteadyClockWithinATickAndNeverAheadOfIt) {
  using std::chrono::steady_clock;
  timespec resolution{};
  ASSERT_EQ(clock_getres(CLOCK_MONOTONIC_COARSE, &resolution), 0);
  const auto tick = std::chrono::seconds(resolution.tv_sec) + std::chrono::nanoseconds(resolution.tv_nsec);
  auto previous = coarse_steady_now();
  for (int i = 0; i < 1000; ++i) {
    const auto coarse = coarse_steady_now();
    const auto precise = steady_clock::now();
    EXPECT_LE(coarse, precise);
    // A tick behind at most (plus scheduling between the two reads: generous, not timed).
    EXPECT_LT(precise - coarse, tick + std::chrono::milliseconds(50));
    EXPECT_GE(coarse, previous); // monotonic
    previous = coarse;
  }
}

} // namespace
} // namespace tandem
