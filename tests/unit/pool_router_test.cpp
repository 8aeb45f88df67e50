// The router over any number of pools: the policy speaks of capacity kinds, and among pools of
// one kind the fastest that meets the budget wins. (The two-pool cases are tier_router_test.cpp.)
#include "policy/tier_router.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace tandem::policy {
namespace {

TierState pool(Tier kind, int ready, int in_flight, double service_ms, double price_per_second = 0.001) {
  TierState t;
  t.exists = true;
  t.kind = kind;
  t.ready_workers = ready;
  t.max_workers = kind == Tier::serverless ? 8 : ready;
  t.max_concurrency_per_worker = 1;
  t.in_flight = in_flight;
  t.queue_max = 100;
  t.service_ms = service_ms;
  t.cold_start_ms = 20;
  t.price_per_second = price_per_second;
  t.reserved = kind == Tier::dedicated;
  t.scalable = kind == Tier::serverless;
  t.scaledown_window_s = kind == Tier::serverless ? 60 : 0;
  return t;
}

RouteInput input(RoutingPolicy policy, double budget_ms = 50, double deadline_ms = 2000) {
  RouteInput in;
  in.policy = policy;
  in.budget_ms = budget_ms;
  in.deadline_ms = deadline_ms;
  return in;
}

// A cluster's pool, a rented pool, and serverless capacity behind one endpoint.
std::vector<TierState> three_pools() {
  return {pool(Tier::dedicated, 2, 0, 12), pool(Tier::dedicated, 2, 0, 8), pool(Tier::serverless, 1, 0, 9)};
}

TEST(PoolRouter, DedicatedFirstTakesTheFasterDedicatedPool) {
  auto pools = three_pools();
  auto d = route(input(RoutingPolicy::dedicated_first), pools);
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].pool, 1);
  EXPECT_EQ(d.steps[0].tier, Tier::dedicated);
  EXPECT_EQ(d.reason, "dedicated meets the SLO");
}

TEST(PoolRouter, WhenEveryDedicatedPoolIsSaturatedTheRequestSpillsToServerless) {
  auto pools = three_pools();
  pools[0].in_flight = 2;
  pools[0].waiting = 10; // 11 ahead, 2 at a time, 12 ms each: 66 ms
  pools[1].in_flight = 2;
  pools[1].waiting = 12; // 13 ahead: 52 ms
  auto d = route(input(RoutingPolicy::dedicated_first), pools);
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].pool, 2);
  EXPECT_EQ(d.steps[0].tier, Tier::serverless);
  EXPECT_EQ(d.reason, "dedicated saturated: spillover");
}

TEST(PoolRouter, ARetryGoesToAnotherKindFirstThenToAnotherPoolOfTheSameKind) {
  auto pools = three_pools();
  auto in = input(RoutingPolicy::dedicated_first);
  in.retry_pool = 1;
  auto d = route(in, pools);
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].pool, 2) << "the other kind of capacity";
  EXPECT_EQ(d.reason, "fallback to the other tier");
  pools[2].exists = false;
  d = route(in, pools);
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].pool, 0) << "no serverless: the other dedicated pool";
  EXPECT_EQ(d.reason, "fallback to another pool");
  pools[0].exists = false;
  d = route(in, pools);
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].pool, 1);
  EXPECT_EQ(d.reason, "retry on the same tier");
}

TEST(PoolRouter, CostOptimalTakesTheCheapestPoolWithinTheBudget) {
  auto pools = three_pools();
  pools[0].reserved = false; // a rented pool paid per use, like serverless
  pools[1].reserved = false;
  pools[0].price_per_second = 0.0004;
  pools[1].price_per_second = 0.0020;
  pools[2].price_per_second = 0.0010;
  auto d = route(input(RoutingPolicy::cost_optimal), pools);
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].pool, 0);
  EXPECT_EQ(d.reason, "lowest marginal cost within the SLO");
  pools[0].in_flight = 2;
  pools[0].waiting = 20; // far over the budget
  d = route(input(RoutingPolicy::cost_optimal), pools);
  EXPECT_EQ(d.steps[0].pool, 2) << "the next cheapest that meets the SLO";
}

TEST(PoolRouter, LowPriorityListsEveryIdlePoolDedicatedFirst) {
  std::vector<TierState> pools = {pool(Tier::serverless, 1, 0, 9), pool(Tier::dedicated, 1, 1, 8),
                                  pool(Tier::dedicated, 1, 0, 8)};
  auto in = input(RoutingPolicy::dedicated_first);
  in.low_priority = true;
  auto d = route(in, pools);
  ASSERT_EQ(d.count, 2);
  EXPECT_EQ(d.steps[0].pool, 2) << "idle dedicated first; pool 1 has no free slot";
  EXPECT_FALSE(d.steps[0].wait);
  EXPECT_EQ(d.steps[1].pool, 0);
}

TEST(PoolRouter, AnOnlyPolicyIgnoresPoolsOfTheOtherKindAndRefusesWhenNoneIsInTime) {
  auto pools = three_pools();
  auto d = route(input(RoutingPolicy::serverless_only), pools);
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].pool, 2);
  pools[2].in_flight = 1;
  pools[2].max_workers = 1;
  pools[2].waiting = 30; // 31 ahead, 9 ms each: far past a 50 ms budget
  d = route(input(RoutingPolicy::serverless_only), pools);
  EXPECT_EQ(d.reject, RejectReason::overloaded);
  EXPECT_GE(d.retry_after_s, 1);
}

TEST(PoolRouter, NoUsablePoolIsNoHealthyTier) {
  std::vector<TierState> pools = {pool(Tier::dedicated, 0, 0, 8), pool(Tier::dedicated, 0, 0, 8)};
  auto d = route(input(RoutingPolicy::dedicated_first), pools);
  EXPECT_EQ(d.reject, RejectReason::no_healthy_tier);
  EXPECT_EQ(d.count, 0);
}

TEST(PoolRouter, TheTwoPoolFormGivesKindsByPositionAndMapsTheFailedTierToItsPool) {
  // Kinds left at their default: the two-pool form says which is which.
  TierState ded = pool(Tier::dedicated, 1, 1, 10);
  TierState ser = pool(Tier::serverless, 0, 0, 10);
  ser.kind = Tier::dedicated;
  auto d = route(input(RoutingPolicy::serverless_first, 200), ded, ser);
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].pool, 1);
  EXPECT_EQ(d.steps[0].tier, Tier::serverless) << "scaled from zero: only a serverless pool may";
  auto in = input(RoutingPolicy::dedicated_first, 200);
  in.retry_from = Tier::serverless;
  d = route(in, pool(Tier::dedicated, 1, 0, 10), pool(Tier::serverless, 1, 0, 10));
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].pool, 0);
  EXPECT_EQ(d.reason, "fallback to the other tier");
}

} // namespace
} // namespace tandem::policy
