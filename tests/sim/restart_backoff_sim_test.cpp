// decide_restart in isolation, then driven over a simulated day by a ManualClock: the same
// policy code the worker pool runs, with no real time passing.
#include "base/clock.hpp"
#include "policy/restart_backoff.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace tandem::policy {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

const RestartBackoff kPolicy{}; // the defaults: 0 ms, then 100 ms doubling to 10 s; stable after 10 s

TEST(DecideRestart, DefaultsMatchTheDocumentedPolicy) {
  EXPECT_EQ(kPolicy.first_delay_ms, milliseconds(0));
  EXPECT_EQ(kPolicy.base_delay_ms, milliseconds(100));
  EXPECT_EQ(kPolicy.max_delay_ms, milliseconds(10'000));
  EXPECT_EQ(kPolicy.stable_after_ms, milliseconds(10'000));
}

TEST(DecideRestart, OneOffCrashRestartsAtOnce) {
  auto d = decide_restart(kPolicy, 0, milliseconds(5));
  EXPECT_EQ(d.delay_ms, milliseconds(0));
  EXPECT_EQ(d.consecutive_failures, 1);
}

TEST(DecideRestart, CrashLoopBacksOffExponentiallyToTheCap) {
  const std::vector<milliseconds> expected = {milliseconds(0),      milliseconds(100),   milliseconds(200),
                                              milliseconds(400),    milliseconds(800),   milliseconds(1600),
                                              milliseconds(3200),   milliseconds(6400),  milliseconds(10'000),
                                              milliseconds(10'000), milliseconds(10'000)};
  int failures = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    auto d = decide_restart(kPolicy, failures, milliseconds(50));
    EXPECT_EQ(d.delay_ms, expected[i]) << "restart " << i;
    EXPECT_EQ(d.consecutive_failures, failures + 1);
    failures = d.consecutive_failures;
  }
}

TEST(DecideRestart, DelayStaysCappedForVeryLongLoops) {
  for (int failures : {20, 31, 32, 63, 64, 1000, 1'000'000}) {
    auto d = decide_restart(kPolicy, failures, milliseconds(0));
    EXPECT_EQ(d.delay_ms, milliseconds(10'000)) << failures << " failures";
  }
}

TEST(DecideRestart, StableRunResetsTheCount) {
  auto d = decide_restart(kPolicy, 12, milliseconds(10'000));
  EXPECT_EQ(d.delay_ms, milliseconds(0)) << "a run of exactly stable_after counts as stable";
  EXPECT_EQ(d.consecutive_failures, 1);

  auto just_short = decide_restart(kPolicy, 12, milliseconds(9'999));
  EXPECT_EQ(just_short.delay_ms, milliseconds(10'000));
  EXPECT_EQ(just_short.consecutive_failures, 13);
}

TEST(DecideRestart, HonoursACustomPolicy) {
  RestartBackoff policy{.first_delay_ms = milliseconds(5),
                        .base_delay_ms = milliseconds(30),
                        .max_delay_ms = milliseconds(100),
                        .stable_after_ms = milliseconds(1000)};
  EXPECT_EQ(decide_restart(policy, 0, milliseconds(1)).delay_ms, milliseconds(5));
  EXPECT_EQ(decide_restart(policy, 1, milliseconds(1)).delay_ms, milliseconds(30));
  EXPECT_EQ(decide_restart(policy, 2, milliseconds(1)).delay_ms, milliseconds(60));
  EXPECT_EQ(decide_restart(policy, 3, milliseconds(1)).delay_ms, milliseconds(100));
  EXPECT_EQ(decide_restart(policy, 3, milliseconds(1000)).delay_ms, milliseconds(5));
}

// A supervisor loop on a ManualClock: the worker runs for `uptime` after each start, exits, and
// is restarted after the delay the policy returns.
struct Supervisor {
  ManualClock& clock;
  RestartBackoff policy;
  int failures = 0;
  long restarts = 0;
  milliseconds last_delay{0};

  void run_once(milliseconds uptime) {
    clock.advance(uptime);
    auto decision = decide_restart(policy, failures, uptime);
    failures = decision.consecutive_failures;
    last_delay = decision.delay_ms;
    clock.advance(decision.delay_ms);
    ++restarts;
  }
};

TEST(RestartBackoffSim, CrashLoopOverADayIsBoundedThenRecovers) {
  ManualClock clock;
  const TimePoint start = clock.now();
  Supervisor supervisor{.clock = clock, .policy = kPolicy};

  // A worker that dies 20 ms after every start, for 24 simulated hours.
  const milliseconds crash_uptime(20);
  while (clock.now() - start < hours(24)) supervisor.run_once(crash_uptime);

  // Once capped, each cycle takes 10 s + 20 ms, so about 24h / 10s restarts, plus the handful
  // of quick ones during the ramp-up.
  const long cap_cycles = hours(24) / (milliseconds(10'000) + crash_uptime);
  EXPECT_GE(supervisor.restarts, cap_cycles);
  EXPECT_LE(supervisor.restarts, cap_cycles + 20);
  EXPECT_LT(supervisor.restarts, 8'700) << "about 24h / 10s = 8640";
  EXPECT_EQ(supervisor.last_delay, milliseconds(10'000));
  EXPECT_LT(clock.now() - start, hours(24) + seconds(11));

  // The fix is deployed: the next run stays up past stable_after, then crashes once.
  supervisor.run_once(seconds(30));
  EXPECT_EQ(supervisor.last_delay, milliseconds(0)) << "back to an immediate restart";
  EXPECT_EQ(supervisor.failures, 1);
  // A second crash right after is treated as the start of a new loop, not the old one.
  supervisor.run_once(crash_uptime);
  EXPECT_EQ(supervisor.last_delay, milliseconds(100));
}

TEST(RestartBackoffSim, FlappingJustUnderStableAfterStaysBackedOff) {
  // Runs of 9.9 s never count as stable, so the delay climbs to and stays at the cap.
  ManualClock clock;
  const TimePoint start = clock.now();
  Supervisor supervisor{.clock = clock, .policy = kPolicy};
  while (clock.now() - start < hours(1)) supervisor.run_once(milliseconds(9'900));
  EXPECT_EQ(supervisor.last_delay, milliseconds(10'000));
  const long capped_cycles = hours(1) / milliseconds(9'900 + 10'000);
  EXPECT_GE(supervisor.restarts, capped_cycles);
  EXPECT_LE(supervisor.restarts, capped_cycles + 10) << "only the ramp-up cycles are shorter";
}

TEST(RestartBackoffSim, OccasionalCrashesOfAStableWorkerAlwaysRestartAtOnce) {
  ManualClock clock;
  Supervisor supervisor{.clock = clock, .policy = kPolicy};
  for (int day = 0; day < 30; ++day) {
    supervisor.run_once(hours(24));
    ASSERT_EQ(supervisor.last_delay, milliseconds(0)) << "day " << day;
    ASSERT_EQ(supervisor.failures, 1);
  }
  EXPECT_EQ(supervisor.restarts, 30);
}

} // namespace
} // namespace tandem::policy
