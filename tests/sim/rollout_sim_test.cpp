// Rollouts in simulated time: Poisson traffic split between a baseline and a candidate version
// by the machine's weight, each request taking a sampled latency and possibly failing, the
// machine ticked every 250 ms. Hours of rollout run in milliseconds of CPU.
#include "policy/rollout.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace tandem::policy {
namespace {

using namespace std::chrono_literals;

struct VersionModel {
  double error_rate = 0.0;
  double median_ms = 10.0;
  std::vector<double> label_weights{1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
};

struct SimResult {
  RolloutPhase phase = RolloutPhase::running;
  std::vector<int> percents;  // every weight the machine set, in order
  std::string reason;
  int failed_step = -1;
  std::int64_t arrivals = 0;
  std::int64_t completions = 0;
  std::int64_t served_by_candidate_after_rollback = 0;
  std::int64_t in_flight_at_switch = 0;
  Duration elapsed{0};
};

/// Runs a rollout to its end (or `limit`). `on_tick` may act like an operator.
SimResult simulate(const RolloutSpec& spec, const VersionModel& baseline, const VersionModel& candidate,
                   Duration limit = 2h, double rate_per_s = 200,
                   const std::function<void(RolloutMachine&, TimePoint)>& on_tick = {}) {
  std::mt19937_64 rng(20261128);
  ManualClock clock(TimePoint{} + 1h);
  RolloutMachine machine(spec, clock.now());
  ArmStats base_stats;
  ArmStats canary_stats;
  SimResult result;
  std::exponential_distribution<double> gap_s(rate_per_s);
  std::uniform_real_distribution<double> unit(0, 1);
  const TimePoint start = clock.now();
  TimePoint next_arrival = start;
  TimePoint next_tick = start + 250ms;
  // In flight: completion time and arm, so a switch can be checked not to drop any.
  std::multimap<TimePoint, bool> in_flight;
  bool rolled_back = false;
  auto sample = [&](const VersionModel& m, bool& error, std::string& label) {
    error = unit(rng) < m.error_rate;
    std::lognormal_distribution<double> latency(std::log(m.median_ms), 0.25);
    std::discrete_distribution<int> labels(m.label_weights.begin(), m.label_weights.end());
    label = std::to_string(labels(rng));
    return latency(rng);
  };
  const int candidate_ready_after_ticks = 4;  // the candidate's workers take a second to warm
  int ticks = 0;
  while (clock.now() - start < limit && !machine.finished()) {
    const TimePoint now = std::min(next_arrival, next_tick);
    // Completions up to now.
    while (!in_flight.empty() && in_flight.begin()->first <= now) {
      ++result.completions;
      in_flight.erase(in_flight.begin());
    }
    clock.set(now);
    if (now == next_tick) {
      next_tick += 250ms;
      const int before = machine.canary_percent();
      if (on_tick) on_tick(machine, now);
      auto decision = machine.tick(now, ++ticks > candidate_ready_after_ticks, base_stats, canary_stats);
      if (decision.action == RolloutDecision::Action::start_step) {
        base_stats = {};
        canary_stats = {};
      }
      if (decision.action == RolloutDecision::Action::rollback && decision.analysis)
        result.failed_step = machine.step_index();
      if (machine.canary_percent() != before || decision.action == RolloutDecision::Action::start_step) {
        result.percents.push_back(machine.canary_percent());
        if (before == 0 && machine.canary_percent() == 100) result.in_flight_at_switch = static_cast<std::int64_t>(in_flight.size());
      }
      if (machine.phase() == RolloutPhase::rolled_back) rolled_back = true;
      continue;
    }
    next_arrival = now + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(gap_s(rng)));
    ++result.arrivals;
    const bool to_candidate = unit(rng) * 100 < machine.canary_percent();
    if (to_candidate && rolled_back) ++result.served_by_candidate_after_rollback;
    bool error = false;
    std::string label;
    const double ms = sample(to_candidate ? candidate : baseline, error, label);
    auto& stats = to_candidate ? canary_stats : base_stats;
    stats.add(error, ms);
    if (!error) stats.add_output(label);
    in_flight.emplace(now + std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(ms)),
                      to_candidate);
  }
  // Drain: every request that started finishes on the arm it started on.
  result.completions += static_cast<std::int64_t>(in_flight.size());
  result.phase = machine.phase();
  result.reason = machine.last_reason();
  result.elapsed = clock.now() - start;
  return result;
}

RolloutSpec canary_spec() {
  RolloutSpec spec;
  spec.steps_percent = {5, 25, 50, 100};
  spec.step_duration = 60s;
  spec.min_requests = 200;
  return spec;
}

TEST(RolloutSim, HealthyCanaryWalksEveryStepAndPromotes) {
  auto result = simulate(canary_spec(), {}, {});
  EXPECT_EQ(result.phase, RolloutPhase::promoted) << result.reason;
  EXPECT_EQ(result.percents, (std::vector<int>{5, 25, 50, 100}));
  EXPECT_GE(result.elapsed, 4 * 60s);
  EXPECT_LE(result.elapsed, 4 * 60s + 10s);
  EXPECT_EQ(result.arrivals, result.completions);
}

TEST(RolloutSim, CanaryWithFivePercentErrorsIsRolledBackAtTheFirstStep) {
  VersionModel broken;
  broken.error_rate = 0.05;
  auto result = simulate(canary_spec(), {}, broken);
  EXPECT_EQ(result.phase, RolloutPhase::rolled_back);
  EXPECT_EQ(result.failed_step, 0);
  EXPECT_EQ(result.percents.back(), 0);
  EXPECT_NE(result.reason.find("error rate"), std::string::npos) << result.reason;
  EXPECT_EQ(result.served_by_candidate_after_rollback, 0);
  EXPECT_EQ(result.arrivals, result.completions);
}

TEST(RolloutSim, CanaryTwiceAsSlowIsRolledBack) {
  VersionModel slow;
  slow.median_ms = 20;
  auto result = simulate(canary_spec(), {}, slow);
  EXPECT_EQ(result.phase, RolloutPhase::rolled_back);
  EXPECT_EQ(result.failed_step, 0);
  EXPECT_NE(result.reason.find("p95 latency"), std::string::npos) << result.reason;
}

TEST(RolloutSim, CanaryWhoseOutputsDivergeIsRolledBack) {
  VersionModel skewed;
  skewed.label_weights = {10, 1, 1, 1, 1, 1, 1, 1, 1, 1};  // predicts "0" far too often
  auto result = simulate(canary_spec(), {}, skewed);
  EXPECT_EQ(result.phase, RolloutPhase::rolled_back);
  EXPECT_NE(result.reason.find("diverges"), std::string::npos) << result.reason;
}

TEST(RolloutSim, SlightlyNoisyButHealthyCanaryIsNotRolledBack) {
  VersionModel close;
  close.median_ms = 11;        // 10 % slower: within the 1.5x allowance
  close.error_rate = 0.002;    // 0.2 %: within +1 %
  auto result = simulate(canary_spec(), {}, close);
  EXPECT_EQ(result.phase, RolloutPhase::promoted) << result.reason;
}

TEST(RolloutSim, ApprovalGateHoldsBeforeTheFinalStepUntilApproved) {
  auto spec = canary_spec();
  spec.require_approval = true;
  std::optional<TimePoint> gate_reached;
  TimePoint approved_at{};
  auto result = simulate(spec, {}, {}, 2h, 200, [&](RolloutMachine& m, TimePoint now) {
    if (m.phase() == RolloutPhase::awaiting_approval && !gate_reached) gate_reached = now;
    // The operator approves ten simulated minutes after the gate.
    if (gate_reached && m.phase() == RolloutPhase::awaiting_approval && now - *gate_reached >= 10min) {
      EXPECT_EQ(m.canary_percent(), 50);  // held at the step before the final one
      EXPECT_FALSE(m.approve(now).has_value());
      approved_at = now;
    }
  });
  ASSERT_TRUE(gate_reached.has_value());
  EXPECT_EQ(result.phase, RolloutPhase::promoted) << result.reason;
  EXPECT_EQ(result.percents, (std::vector<int>{5, 25, 50, 100}));
  EXPECT_GE(result.elapsed, 3 * 60s + 10min + 60s);
}

TEST(RolloutSim, ACanaryThatDegradesWhileAwaitingApprovalIsRolledBackWithoutWaitingForPeople) {
  auto spec = canary_spec();
  spec.require_approval = true;
  VersionModel candidate;
  bool gate_seen = false;
  auto result = simulate(spec, {}, candidate, 2h, 200, [&](RolloutMachine& m, TimePoint) {
    if (m.phase() == RolloutPhase::awaiting_approval && !gate_seen) {
      gate_seen = true;
      candidate.error_rate = 0.1;  // the new version starts failing while nobody has approved yet
    }
  });
  EXPECT_TRUE(gate_seen);
  EXPECT_EQ(result.phase, RolloutPhase::rolled_back);
  EXPECT_NE(result.reason.find("awaiting approval"), std::string::npos) << result.reason;
}

TEST(RolloutSim, PauseHoldsTheWeightAndResumeRestartsTheStep) {
  bool paused = false;
  bool resumed = false;
  TimePoint paused_at{};
  auto result = simulate(canary_spec(), {}, {}, 2h, 200, [&](RolloutMachine& m, TimePoint now) {
    if (!paused && m.canary_percent() == 25) {
      EXPECT_FALSE(m.pause(now).has_value());
      paused = true;
      paused_at = now;
    }
    if (paused && !resumed && now - paused_at >= 30min) {
      EXPECT_EQ(m.canary_percent(), 25);
      EXPECT_EQ(m.phase(), RolloutPhase::paused);
      EXPECT_FALSE(m.resume(now).has_value());
      resumed = true;
    }
  });
  EXPECT_TRUE(resumed);
  EXPECT_EQ(result.phase, RolloutPhase::promoted);
  EXPECT_GE(result.elapsed, 4 * 60s + 30min);
}

TEST(RolloutSim, BlueGreenSwitchesAtOnceDropsNothingAndReleasesTheOldVersionAfterTheWindow) {
  RolloutSpec spec;
  spec.strategy = RolloutStrategy::blue_green;
  spec.step_duration = 1s;
  spec.min_requests = 200;
  spec.rollback_window = 10min;
  auto result = simulate(spec, {}, {}, 2h, 500);
  EXPECT_EQ(result.phase, RolloutPhase::promoted) << result.reason;
  EXPECT_EQ(result.percents, (std::vector<int>{100}));  // straight from 0 to 100
  EXPECT_GT(result.in_flight_at_switch, 0);             // requests were in flight on the old version...
  EXPECT_EQ(result.arrivals, result.completions);       // ...and every one of them completed
  EXPECT_GE(result.elapsed, 10min);
}

TEST(RolloutSim, BlueGreenRollbackWithinTheWindowSendsEverythingBackAtOnce) {
  RolloutSpec spec;
  spec.strategy = RolloutStrategy::blue_green;
  spec.rollback_window = 10min;
  bool rolled = false;
  auto result = simulate(spec, {}, {}, 2h, 200, [&](RolloutMachine& m, TimePoint) {
    if (m.switched() && m.phase() == RolloutPhase::running && !rolled) {
      EXPECT_FALSE(m.rollback(TimePoint{}).has_value());
      EXPECT_EQ(m.canary_percent(), 0);
      rolled = true;
    }
  });
  EXPECT_TRUE(rolled);
  EXPECT_EQ(result.phase, RolloutPhase::rolled_back);
  EXPECT_EQ(result.served_by_candidate_after_rollback, 0);
}

TEST(RolloutSim, BlueGreenWithABrokenCandidateRollsBackOnItsOwn) {
  RolloutSpec spec;
  spec.strategy = RolloutStrategy::blue_green;
  spec.min_requests = 100;
  VersionModel broken;
  broken.error_rate = 0.2;
  auto result = simulate(spec, {}, broken);
  EXPECT_EQ(result.phase, RolloutPhase::rolled_back);
  EXPECT_NE(result.reason.find("error rate"), std::string::npos) << result.reason;
}

TEST(RolloutPolicy, SpecsAreValidated) {
  RolloutSpec spec;
  EXPECT_FALSE(validate(spec).has_value());
  spec.steps_percent = {10, 5, 100};
  EXPECT_NE(validate(spec)->find("steps"), std::string::npos);
  spec.steps_percent = {10, 50};
  EXPECT_NE(validate(spec)->find("100"), std::string::npos);
  spec.steps_percent = {100};
  spec.thresholds.max_p95_ratio = 0.5;
  EXPECT_NE(validate(spec)->find("max_p95_ratio"), std::string::npos);
}

TEST(RolloutPolicy, OperatorActionsAreRefusedWhenTheyDoNotApply) {
  RolloutMachine m(RolloutSpec{}, TimePoint{});
  EXPECT_TRUE(m.approve(TimePoint{}).has_value());  // nothing waits for approval
  EXPECT_TRUE(m.resume(TimePoint{}).has_value());   // not paused
  EXPECT_FALSE(m.abort(TimePoint{}).has_value());
  EXPECT_TRUE(m.rollback(TimePoint{}).has_value());  // already finished
  EXPECT_EQ(m.canary_percent(), 0);
}

TEST(RolloutPolicy, ACandidateNotReadyByTheWarmupTimeoutAbortsWithItsLastFailure) {
  RolloutSpec spec;
  spec.warmup_timeout = std::chrono::seconds(30);
  const TimePoint start{};
  RolloutMachine m(spec, start);
  const std::string failure = "worker digits-d0 exited (exit code 2) 40 ms after it was started, before it was ready";
  // Until the deadline: still warming, and the reason says what failed.
  for (int s = 0; s < 30; ++s) {
    auto d = m.tick(start + std::chrono::seconds(s), false, {}, {}, failure);
    EXPECT_EQ(d.action, RolloutDecision::Action::none);
    EXPECT_EQ(m.phase(), RolloutPhase::warming);
  }
  EXPECT_NE(m.last_reason().find(failure), std::string::npos) << m.last_reason();
  auto d = m.tick(start + std::chrono::seconds(30), false, {}, {}, failure);
  EXPECT_EQ(d.action, RolloutDecision::Action::abort);
  EXPECT_EQ(m.phase(), RolloutPhase::aborted);
  EXPECT_EQ(m.canary_percent(), 0);
  EXPECT_NE(d.reason.find("warmup_timeout"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find(failure), std::string::npos) << d.reason;
  // A candidate that warms in time is not affected by the deadline.
  RolloutMachine slow(spec, start);
  EXPECT_EQ(slow.tick(start + std::chrono::seconds(29), true, {}, {}).action, RolloutDecision::Action::start_step);
  spec.warmup_timeout = std::chrono::milliseconds(10);
  EXPECT_NE(validate(spec)->find("warmup_timeout"), std::string::npos);
}

TEST(RolloutPolicy, DivergenceIsTotalVariationDistance) {
  EXPECT_DOUBLE_EQ(output_divergence({{"a", 5}, {"b", 5}}, {{"a", 50}, {"b", 50}}), 0.0);
  EXPECT_DOUBLE_EQ(output_divergence({{"a", 1}}, {{"b", 1}}), 1.0);
  EXPECT_NEAR(output_divergence({{"a", 3}, {"b", 1}}, {{"a", 1}, {"b", 1}}), 0.25, 1e-12);
}

} // namespace
} // namespace tandem::policy
