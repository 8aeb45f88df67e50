// The tier router and admission control in simulated time: a discrete-event model of two pools
// (deterministic service times, FIFO queues, serverless cold starts) drives the same pure
// policy the gateway uses. Minutes of traffic run in milliseconds.
#include "policy/outlier.hpp"
#include "policy/tier_router.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <queue>
#include <random>
#include <vector>

namespace tandem::policy {
namespace {

struct SimTier {
  bool exists = false;
  bool scalable = false;
  int workers_ready = 0;
  std::vector<double> starting_ready_at;  // serverless workers on their way
  int max_workers = 0;
  int slots_per_worker = 1;
  int in_flight = 0;
  std::deque<int> queue;  // request ids
  double service_ms = 10;
  double cold_start_ms = 20;

  TierState state() const {
    TierState s;
    s.exists = exists;
    s.scalable = scalable;
    s.ready_workers = workers_ready;
    s.starting_workers = static_cast<int>(starting_ready_at.size());
    s.max_workers = max_workers;
    s.max_concurrency_per_worker = slots_per_worker;
    s.in_flight = in_flight;
    s.waiting = static_cast<int>(queue.size());
    s.queue_max = 10'000;
    s.service_ms = service_ms;
    s.cold_start_ms = cold_start_ms;
    s.reserved = !scalable;
    s.price_per_second = scalable ? 0.001097 : 2.69 / 3600;
    s.scaledown_window_s = 60;
    return s;
  }
  bool has_free_slot() const { return in_flight < workers_ready * slots_per_worker; }
};

struct Result {
  int admitted = 0;
  int rejected = 0;
  int on_dedicated = 0;
  int on_serverless = 0;
  int serverless_started = 0;
  std::vector<double> latency_ms;  // admitted requests
  double p95() {
    if (latency_ms.empty()) return 0;
    std::sort(latency_ms.begin(), latency_ms.end());
    return latency_ms[latency_ms.size() * 95 / 100];
  }
};

// Poisson arrivals at `rate_per_s(t)` for `duration_ms`; every request routed by `route()`.
Result simulate(RoutingPolicy policy, SimTier dedicated, SimTier serverless, double slo_ms,
                const std::function<double(double)>& rate_per_s, double duration_ms, bool low_priority = false,
                unsigned seed = 7) {
  struct Event {
    double at;
    int kind;  // 0 arrival, 1 completion, 2 worker ready
    int tier;  // 0 dedicated, 1 serverless
    int request;
    bool operator>(const Event& o) const { return at > o.at; }
  };
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  std::mt19937_64 rng(seed);
  std::vector<double> arrived_at;
  Result result;
  SimTier* tiers[2] = {&dedicated, &serverless};
  auto start_service = [&](int tier, int request, double now) {
    tiers[tier]->in_flight++;
    events.push({now + tiers[tier]->service_ms, 1, tier, request});
  };
  double next_arrival = 0;
  events.push({0, 0, 0, 0});
  while (!events.empty()) {
    Event e = events.top();
    events.pop();
    double now = e.at;
    if (e.kind == 0) {
      if (now > duration_ms) continue;
      int id = static_cast<int>(arrived_at.size());
      arrived_at.push_back(now);
      RouteInput in;
      in.policy = policy;
      in.budget_ms = slo_ms;
      in.deadline_ms = 2000;
      in.low_priority = low_priority;
      auto d = route(in, dedicated.state(), serverless.state());
      if (d.reject != RejectReason::none) {
        ++result.rejected;
      } else {
        bool placed = false;
        for (int s = 0; s < d.count && !placed; ++s) {
          int tier = d.steps[static_cast<std::size_t>(s)].tier == Tier::dedicated ? 0 : 1;
          SimTier& t = *tiers[tier];
          if (t.has_free_slot() && t.queue.empty()) {
            start_service(tier, id, now);
            placed = true;
          } else if (d.steps[static_cast<std::size_t>(s)].wait) {
            t.queue.push_back(id);
            placed = true;
            // The activator: a scalable pool with no room starts a worker.
            int live = t.workers_ready + static_cast<int>(t.starting_ready_at.size());
            int capacity_coming = live * t.slots_per_worker;
            if (t.scalable && live < t.max_workers && t.in_flight + static_cast<int>(t.queue.size()) > capacity_coming) {
              t.starting_ready_at.push_back(now + t.cold_start_ms);
              events.push({now + t.cold_start_ms, 2, tier, 0});
              ++result.serverless_started;
            }
          }
          if (placed) (tier == 0 ? result.on_dedicated : result.on_serverless)++;
        }
        if (placed) ++result.admitted;
        else ++result.rejected;
      }
      double gap = std::exponential_distribution<double>(rate_per_s(now) / 1000.0)(rng);
      next_arrival = now + gap;
      events.push({next_arrival, 0, 0, 0});
    } else if (e.kind == 1) {
      SimTier& t = *tiers[e.tier];
      t.in_flight--;
      result.latency_ms.push_back(now - arrived_at[static_cast<std::size_t>(e.request)]);
      if (!t.queue.empty() && t.has_free_slot()) {
        int next = t.queue.front();
        t.queue.pop_front();
        start_service(e.tier, next, now);
      }
    } else {
      SimTier& t = *tiers[e.tier];
      t.starting_ready_at.erase(t.starting_ready_at.begin());
      t.workers_ready++;
      while (!t.queue.empty() && t.has_free_slot()) {
        int next = t.queue.front();
        t.queue.pop_front();
        start_service(e.tier, next, now);
      }
    }
  }
  return result;
}

SimTier dedicated_pool(int workers) {
  SimTier t;
  t.exists = true;
  t.workers_ready = workers;
  t.max_workers = workers;
  return t;
}

SimTier serverless_pool(int max) {
  SimTier t;
  t.exists = true;
  t.scalable = true;
  t.max_workers = max;
  return t;
}

TEST(RoutingSim, SpilloverBeginsWhenDedicatedIsSaturated) {
  // Two dedicated workers at 10 ms: 200 requests/s of capacity.
  auto light = simulate(RoutingPolicy::dedicated_first, dedicated_pool(2), serverless_pool(8), 50,
                        [](double) { return 60.0; }, 60'000);
  EXPECT_EQ(light.on_serverless, 0) << "well below capacity nothing spills";
  EXPECT_EQ(light.rejected, 0);
  auto heavy = simulate(RoutingPolicy::dedicated_first, dedicated_pool(2), serverless_pool(8), 50,
                        [](double) { return 400.0; }, 60'000);
  EXPECT_GT(heavy.on_serverless, heavy.admitted / 4) << "at twice the capacity, a large share spills";
  EXPECT_GT(heavy.on_dedicated, heavy.admitted / 3) << "dedicated stays busy";
  EXPECT_EQ(heavy.rejected, 0) << "serverless absorbs the burst";
  EXPECT_LE(heavy.p95(), 50.0);
}

TEST(RoutingSim, CostOptimalAndDedicatedFirstBothKeepSteadyLoadOnDedicated) {
  for (auto policy : {RoutingPolicy::dedicated_first, RoutingPolicy::cost_optimal}) {
    auto r = simulate(policy, dedicated_pool(4), serverless_pool(4), 50, [](double) { return 150.0; }, 60'000);
    EXPECT_EQ(r.serverless_started, 0);
    EXPECT_EQ(r.on_serverless, 0);
  }
}

TEST(RoutingSim, LowPriorityNeverScalesUp) {
  auto r = simulate(RoutingPolicy::dedicated_first, dedicated_pool(1), serverless_pool(8), 50,
                    [](double) { return 500.0; }, 30'000, /*low_priority=*/true);
  EXPECT_EQ(r.serverless_started, 0);
  EXPECT_EQ(r.on_serverless, 0);
  EXPECT_GT(r.rejected, 0) << "shed under pressure";
  EXPECT_GT(r.on_dedicated, 0) << "idle dedicated capacity is used";
}

TEST(RoutingSim, UnderThreeTimesOverloadAdmittedRequestsMeetTheSlo) {
  // Capacity: 2 workers x 10 ms = 200/s. Offered: 600/s. SLO p95 50 ms.
  auto r = simulate(RoutingPolicy::dedicated_only, dedicated_pool(2), SimTier{}, 50, [](double) { return 600.0; },
                    120'000);
  double admitted_share = static_cast<double>(r.admitted) / (r.admitted + r.rejected);
  std::printf("3x overload: admitted %.1f%%, admitted p95 %.1f ms, goodput %.0f/s\n", 100 * admitted_share,
              r.p95(), r.admitted / 120.0);
  EXPECT_LE(r.p95(), 50.0);
  EXPECT_NEAR(r.admitted / 120.0, 200.0, 20.0) << "goodput holds at capacity";
  EXPECT_GT(r.rejected, r.admitted) << "the excess is refused, not queued";
}

TEST(RoutingSim, NoRetryStormWhenHalfOfTheAttemptsFail) {
  RetryBudget budget(0.2, 10, 100);
  std::mt19937_64 rng(3);
  int requests = 0;
  int retries = 0;
  for (int i = 0; i < 100'000; ++i) {
    ++requests;
    budget.on_request();
    bool failed = (rng() % 2) == 0;
    if (failed && budget.try_retry()) ++retries;
  }
  EXPECT_LE(retries, requests / 5 + 10) << "retries stay within 20 % of requests";
  EXPECT_GT(retries, requests / 5 - 100) << "the budget is used when needed";
}

} // namespace
} // namespace tandem::policy
