// pick_worker driven by a discrete-event simulation in virtual time: seeded arrivals and
// service times, no clock and no sleeps. Each worker serves up to max_concurrency requests at
// once; a request that finds no free slot waits in a FIFO gateway queue.
#include "policy/router.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <queue>
#include <random>
#include <span>
#include <vector>

namespace tandem::policy {
namespace {

using Chooser = std::function<std::optional<std::size_t>(std::span<const WorkerLoad>, std::uint64_t)>;

struct SimConfig {
  int workers = 4;
  int max_concurrency = 4;
  double arrival_rate_per_s = 1200; // Poisson arrivals
  double mean_service_s = 0.010;    // exponential service time on a normal worker
  std::vector<double> slowdown;     // per worker service-time multiplier; empty: all 1
  long requests = 100'000;
  std::uint64_t seed = 20261128;
  // Worker `down_worker` is not ready during [down_from_s, down_until_s).
  int down_worker = -1;
  double down_from_s = 0;
  double down_until_s = 0;
};

struct SimResult {
  std::vector<long> completed;
  std::vector<int> peak_in_flight;
  long assigned_while_down = 0;
  long queued = 0;             // requests that found no free slot and waited
  long over_capacity = 0;      // picks of a worker that was already full (must stay 0)
  long picks_of_not_ready = 0; // must stay 0
  double mean_imbalance = 0;   // mean of (max - min in flight over ready workers) at each pick
  int max_imbalance = 0;
  double share_imbalance_at_least_3 = 0; // fraction of picks made while it was >= 3
  double end_time_s = 0;
};

struct Completion {
  double at_s;
  std::size_t worker;
  bool operator>(const Completion& other) const { return at_s > other.at_s; }
};

SimResult simulate(const SimConfig& config, const Chooser& choose) {
  std::mt19937_64 rng(config.seed);
  std::exponential_distribution<double> inter_arrival(config.arrival_rate_per_s);
  std::exponential_distribution<double> service(1.0 / config.mean_service_s);

  const auto n = static_cast<std::size_t>(config.workers);
  std::vector<WorkerLoad> loads(
      n,
      WorkerLoad{.ready = true, .avoid = false, .in_flight = 0, .max_concurrency = config.max_concurrency});
  SimResult result;
  result.completed.assign(n, 0);
  result.peak_in_flight.assign(n, 0);
  std::priority_queue<Completion, std::vector<Completion>, std::greater<>> running;
  std::deque<double> waiting; // arrival times of queued requests
  long imbalance_samples = 0;
  long imbalance_at_least_3 = 0;
  double imbalance_sum = 0;

  auto set_readiness = [&](double now) {
    if (config.down_worker < 0) return;
    loads[static_cast<std::size_t>(config.down_worker)].ready =
        !(now >= config.down_from_s && now < config.down_until_s);
  };

  // Tries to start one request at `now`; false when every worker is full.
  auto dispatch = [&](double now) {
    set_readiness(now);
    auto pick = choose(loads, rng());
    if (!pick) return false;
    int lo = config.max_concurrency;
    int hi = 0;
    for (const auto& w : loads) {
      if (!w.ready) continue;
      lo = std::min(lo, w.in_flight);
      hi = std::max(hi, w.in_flight);
    }
    imbalance_sum += hi - lo;
    ++imbalance_samples;
    if (hi - lo >= 3) ++imbalance_at_least_3;
    result.max_imbalance = std::max(result.max_imbalance, hi - lo);

    WorkerLoad& w = loads[*pick];
    if (!w.ready) ++result.picks_of_not_ready;
    if (w.in_flight >= w.max_concurrency) ++result.over_capacity;
    if (static_cast<int>(*pick) == config.down_worker && now >= config.down_from_s &&
        now < config.down_until_s)
      ++result.assigned_while_down;
    ++w.in_flight;
    result.peak_in_flight[*pick] = std::max(result.peak_in_flight[*pick], w.in_flight);
    double slowdown = config.slowdown.empty() ? 1.0 : config.slowdown[*pick];
    running.push({now + service(rng) * slowdown, *pick});
    return true;
  };

  auto complete_until = [&](double t) {
    while (!running.empty() && running.top().at_s <= t) {
      Completion done = running.top();
      running.pop();
      --loads[done.worker].in_flight;
      ++result.completed[done.worker];
      // A freed slot goes to the oldest waiting request.
      while (!waiting.empty() && dispatch(done.at_s)) waiting.pop_front();
    }
  };

  double now = 0;
  for (long i = 0; i < config.requests; ++i) {
    now += inter_arrival(rng);
    complete_until(now);
    if (!waiting.empty() || !dispatch(now)) {
      waiting.push_back(now);
      ++result.queued;
    }
  }
  complete_until(std::numeric_limits<double>::infinity());
  result.end_time_s = now;
  if (imbalance_samples > 0) {
    result.mean_imbalance = imbalance_sum / static_cast<double>(imbalance_samples);
    result.share_imbalance_at_least_3 =
        static_cast<double>(imbalance_at_least_3) / static_cast<double>(imbalance_samples);
  }
  return result;
}

std::optional<std::size_t> power_of_two(std::span<const WorkerLoad> workers, std::uint64_t random) {
  return pick_worker(workers, random);
}

// Baseline: a uniformly random worker among those with a free slot.
std::optional<std::size_t> random_eligible(std::span<const WorkerLoad> workers, std::uint64_t random) {
  std::vector<std::size_t> eligible;
  for (std::size_t i = 0; i < workers.size(); ++i)
    if (workers[i].ready && workers[i].in_flight < workers[i].max_concurrency) eligible.push_back(i);
  if (eligible.empty()) return std::nullopt;
  return eligible[random % eligible.size()];
}

long total(const std::vector<long>& v) {
  long sum = 0;
  for (long x : v) sum += x;
  return sum;
}

TEST(RouterSim, BalancesLoadAndRespectsMaxConcurrency) {
  SimConfig config; // 4 workers x 4 slots, 75 % utilisation, 100k requests
  SimResult r = simulate(config, power_of_two);

  EXPECT_EQ(total(r.completed), config.requests) << "every request completes exactly once";
  EXPECT_EQ(r.over_capacity, 0);
  EXPECT_EQ(r.picks_of_not_ready, 0);
  for (std::size_t i = 0; i < r.peak_in_flight.size(); ++i) {
    EXPECT_LE(r.peak_in_flight[i], config.max_concurrency) << "worker " << i;
    EXPECT_EQ(r.peak_in_flight[i], config.max_concurrency) << "the load is high enough to fill worker " << i;
  }
  EXPECT_GT(r.queued, 0) << "at 75 % utilisation some requests find every slot busy";

  auto [lo, hi] = std::minmax_element(r.completed.begin(), r.completed.end());
  const long fair_share = config.requests / config.workers;
  EXPECT_LT(*hi - *lo, fair_share / 50)
      << "completed per worker within 2 % of each other: " << *lo << " .. " << *hi;

  // In-flight spread between the busiest and idlest worker at each pick: p2c keeps it small,
  // clearly below a router that picks any free worker at random (same arrivals and services).
  SimResult random = simulate(config, random_eligible);
  EXPECT_LT(r.mean_imbalance, 1.6);
  EXPECT_LT(r.mean_imbalance, random.mean_imbalance * 0.9);
  EXPECT_LT(r.share_imbalance_at_least_3, 0.12);
  EXPECT_LT(r.share_imbalance_at_least_3 * 2, random.share_imbalance_at_least_3)
      << "p2c " << r.share_imbalance_at_least_3 << " vs random " << random.share_imbalance_at_least_3;
}

TEST(RouterSim, PowerOfTwoKeepsQueuesMoreEvenThanRandom) {
  SimConfig config;
  config.workers = 8;
  config.max_concurrency = 64;
  config.mean_service_s = 0.020;
  config.arrival_rate_per_s = 8 * 64 / 0.020 * 0.8; // 80 % of capacity
  SimResult p2c = simulate(config, power_of_two);
  SimResult random = simulate(config, random_eligible);

  EXPECT_EQ(total(p2c.completed), config.requests);
  EXPECT_EQ(p2c.over_capacity, 0);
  EXPECT_EQ(p2c.queued, 0) << "64 slots per worker absorb the bursts";
  EXPECT_LE(p2c.max_imbalance, 24) << "p2c keeps the busiest and idlest worker close";
  EXPECT_LT(p2c.mean_imbalance * 3, random.mean_imbalance)
      << "p2c " << p2c.mean_imbalance << " vs random " << random.mean_imbalance;
  EXPECT_LT(p2c.max_imbalance + 10, random.max_imbalance);
}

TEST(RouterSim, SlowWorkerGetsLessTraffic) {
  SimConfig config;
  config.max_concurrency = 16;
  config.arrival_rate_per_s = 3000;
  config.slowdown = {1, 1, 1, 4}; // worker 3 takes four times as long per request
  SimResult r = simulate(config, power_of_two);

  EXPECT_EQ(total(r.completed), config.requests);
  EXPECT_EQ(r.over_capacity, 0);
  long fast_min = std::min({r.completed[0], r.completed[1], r.completed[2]});
  EXPECT_LT(r.completed[3] * 2, fast_min)
      << "least-outstanding steers away from the worker whose requests pile up: slow " << r.completed[3]
      << " vs fast " << fast_min;
}

TEST(RouterSim, NotReadyWorkerGetsNothingUntilItIsBack) {
  SimConfig config;
  config.arrival_rate_per_s = 800; // three workers can carry this on their own
  config.down_worker = 1;
  config.down_from_s = 20;
  config.down_until_s = 50;
  SimResult r = simulate(config, power_of_two);

  ASSERT_GT(r.end_time_s, 60) << "the simulation runs past the outage";
  EXPECT_EQ(r.assigned_while_down, 0);
  EXPECT_EQ(r.picks_of_not_ready, 0);
  EXPECT_EQ(r.over_capacity, 0);
  EXPECT_EQ(total(r.completed), config.requests);
  // The other three carry its share during the outage, so it ends with clearly less.
  long others_min = std::min({r.completed[0], r.completed[2], r.completed[3]});
  EXPECT_LT(r.completed[1], others_min * 9 / 10);
  EXPECT_GT(r.completed[1], others_min / 2) << "and takes traffic again once ready";
}

TEST(RouterSim, IsDeterministicForASeed) {
  SimConfig config;
  config.requests = 20'000;
  SimResult a = simulate(config, power_of_two);
  SimResult b = simulate(config, power_of_two);
  EXPECT_EQ(a.completed, b.completed);
  EXPECT_EQ(a.queued, b.queued);
  config.seed += 1;
  SimResult c = simulate(config, power_of_two);
  EXPECT_NE(a.completed, c.completed);
}

} // namespace
} // namespace tandem::policy
