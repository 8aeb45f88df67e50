// Cost attribution in simulated time: hours of random traffic with lulls, lone requests and
// bursts fed through the pure cost meter the way the gateway feeds it (requests as they are
// answered, accrual on a jittered tick), checking that requests are never charged more than
// the pool cost, in total or one by one.
#include "base/clock.hpp"
#include "policy/cost_meter.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <random>
#include <utility>

namespace tandem::policy {
namespace {

using namespace std::chrono_literals;

constexpr double kPricePerSecond = 2.69 / 3600.0; // an H100, per worker-second
constexpr Duration kWindow = 10s;

enum class PoolKind { dedicated, serverless };

struct Phase {
  double rate_per_s = 0;
  Duration length{0};
  bool lone = false; // a single request, then nothing
};

Phase next_phase(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto seconds = [&](double lo, double hi) {
    return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(lo + (hi - lo) * unit(rng)));
  };
  const double pick = unit(rng);
  if (pick < 0.35) return {0, seconds(1, 900), false};                             // a lull
  if (pick < 0.50) return {0, seconds(0.1, 30), true};                             // one request
  if (pick < 0.65) return {200 + 1800 * unit(rng), seconds(1, 10), false};         // a burst
  return {std::exp(std::log(0.5) + (std::log(100.0) - std::log(0.5)) * unit(rng)), // steady
          seconds(60, 1200), false};
}

struct Outcome {
  double metered = 0;
  double attributed = 0;
  long requests = 0;
  double worst_steady_ratio = 1; // attributed / metered over the steadiest phases
  int steady_phases = 0;
};

// Fills `out`; a fatal failure stops the run (ASSERT needs a void function).
void simulate(std::uint64_t seed, PoolKind kind, Duration length, Outcome& out) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  CostMeter meter(kPricePerSecond, kWindow);
  TimePoint now{};
  const TimePoint end = now + length;
  // The serverless pool: grows to the load at once (billed from the cold start), shrinks one
  // worker per 10 s while it is over it, and goes to zero after a minute without requests.
  double workers = kind == PoolKind::dedicated ? 2 : 0;
  TimePoint last_request{};
  TimePoint last_shrink{};
  std::deque<std::pair<TimePoint, double>> recent_workers; // for the per-window bound
  while (now < end) {
    const Phase phase = next_phase(rng);
    const TimePoint phase_end = now + phase.length;
    const double metered_before = out.metered;
    const double attributed_before = out.attributed;
    bool lone_sent = false;
    while (now < phase_end && now < end) {
      const Duration tick =
          std::chrono::duration_cast<Duration>(std::chrono::duration<double>(0.4 + 0.2 * unit(rng)));
      double expected = phase.rate_per_s * to_seconds(tick);
      long arrivals = expected > 0 ? std::poisson_distribution<long>(expected)(rng) : 0;
      if (phase.lone && !lone_sent) {
        arrivals = 1;
        lone_sent = true;
      }
      if (kind == PoolKind::serverless) {
        // Up to 4 requests of ~20 ms each per worker at once.
        const double wanted =
            std::min(8.0, std::ceil(static_cast<double>(arrivals) * 0.02 / to_seconds(tick) / 4));
        if (arrivals > 0) last_request = now;
        if (wanted > workers) {
          workers = wanted;
          last_shrink = now;
        } else if (now - last_request >= 60s) {
          workers = 0;
        } else if (workers > std::max(wanted, 1.0) && now - last_shrink >= 10s) {
          workers -= 1;
          last_shrink = now;
        }
      }
      recent_workers.emplace_back(now, workers);
      while (now - recent_workers.front().first > 2 * kWindow + 1s) recent_workers.pop_front();
      double peak_workers = 0;
      for (const auto& [at, w] : recent_workers) peak_workers = std::max(peak_workers, w);
      // The requests answered during the tick, then the tick's accrual, as in the gateway.
      for (long r = 0; r < arrivals; ++r) {
        const double pick = unit(rng); // mostly a few ms, a tail to 2 s
        const Duration busy = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(
            pick < 0.9 ? 0.0001 + 0.005 * unit(rng)
                       : (pick < 0.99 ? 0.005 + 0.1 * unit(rng) : 0.1 + 1.9 * unit(rng))));
        const int sharing = 1 + static_cast<int>(unit(rng) * 4);
        const double cost = meter.attribute(busy, sharing);
        out.attributed += cost;
        ++out.requests;
        ASSERT_GE(cost, 0.0);
        ASSERT_LE(out.attributed, out.metered * (1 + 1e-12) + 1e-15)
            << "seed " << seed << " at " << to_seconds(now.time_since_epoch())
            << " s: requests charged more than "
            << "the pool cost";
        // No request pays more than its pool costs in a window (or, for a long request alone on
        // a worker, its own busy time).
        const double busy_cost = to_seconds(busy) * kPricePerSecond / sharing;
        const double window_cost = peak_workers * kPricePerSecond * to_seconds(kWindow);
        ASSERT_LE(cost, std::max(busy_cost, window_cost) * (1 + 1e-9) + 1e-15)
            << "seed " << seed << " at " << to_seconds(now.time_since_epoch())
            << " s: a request paid more than "
            << "a window of its pool";
      }
      out.metered += meter.accrue(tick, workers);
      now += tick;
    }
    // Over a long steady phase the requests pay for the pool, within a window or two of lag
    // (the idle share is estimated from the previous window's count, so part of it can be left).
    const double phase_metered = out.metered - metered_before;
    if (!phase.lone && phase.rate_per_s >= 5 && phase.length >= 3min && now <= end) {
      // The phase pays for the previous phase's last window and leaves its own last one.
      const double lag = 2 * to_seconds(kWindow) / to_seconds(phase.length) * phase_metered;
      const double ratio = (out.attributed - attributed_before + lag) / phase_metered;
      out.worst_steady_ratio = std::min(out.worst_steady_ratio, ratio);
      ++out.steady_phases;
    }
  }
  EXPECT_NEAR(meter.total_dollars(), out.metered, 1e-9 * out.metered);
  EXPECT_NEAR(meter.attributed_dollars(), out.attributed, 1e-9 * out.metered);
}

class CostAttributionSim : public ::testing::TestWithParam<PoolKind> {};

TEST_P(CostAttributionSim, RequestsNeverPayMoreThanThePoolAcrossLullsAndBursts) {
  for (std::uint64_t seed : {1u, 2u, 3u, 4u, 5u}) {
    Outcome out;
    simulate(seed, GetParam(), 12h, out);
    if (HasFatalFailure()) return;
    EXPECT_GT(out.requests, 100000) << "seed " << seed;
    EXPECT_LE(out.attributed, out.metered) << "seed " << seed;
    EXPECT_GT(out.steady_phases, 0) << "seed " << seed;
    EXPECT_GE(out.worst_steady_ratio, 0.97) << "seed " << seed << ": steady traffic must pay for the pool";
    std::printf(
        "seed %lu: %ld requests, metered $%.4f, attributed $%.4f (%.3f), worst steady phase %.3f of %d\n",
        static_cast<unsigned long>(seed), out.requests, out.metered, out.attributed,
        out.attributed / out.metered, out.worst_steady_ratio, out.steady_phases);
  }
}

INSTANTIATE_TEST_SUITE_P(Pools, CostAttributionSim,
                         ::testing::Values(PoolKind::dedicated, PoolKind::serverless), [](const auto& info) {
                           return info.param == PoolKind::dedicated ? "dedicated" : "serverless";
                         });

} // namespace
} // namespace tandem::policy
