#include "policy/service_time.hpp"
#include "policy/tier_router.hpp"

#include <gtest/gtest.h>

namespace tandem::policy {
namespace {

TierState dedicated_tier(int ready, int in_flight, int waiting = 0, double service_ms = 10) {
  TierState t;
  t.exists = true;
  t.ready_workers = ready;
  t.max_workers = ready;
  t.max_concurrency_per_worker = 1;
  t.in_flight = in_flight;
  t.waiting = waiting;
  t.queue_max = 100;
  t.service_ms = service_ms;
  t.cold_start_ms = 20;
  t.reserved = true;
  t.price_per_second = 2.69 / 3600;
  return t;
}

TierState serverless_tier(int ready, int max, int in_flight = 0, double service_ms = 10) {
  TierState t;
  t.exists = true;
  t.ready_workers = ready;
  t.max_workers = max;
  t.max_concurrency_per_worker = 1;
  t.in_flight = in_flight;
  t.queue_max = 100;
  t.service_ms = service_ms;
  t.cold_start_ms = 20;
  t.price_per_second = 0.001097;
  t.scaledown_window_s = 60;
  t.scalable = true;
  return t;
}

RouteInput input(RoutingPolicy policy, double budget_ms = 50, double deadline_ms = 2000) {
  RouteInput in;
  in.policy = policy;
  in.budget_ms = budget_ms;
  in.deadline_ms = deadline_ms;
  return in;
}

TEST(PredictedWait, FreeSlotMeansNoWaitAndAQueueDrainsAtCapacity) {
  EXPECT_EQ(*predicted_wait_ms(dedicated_tier(2, 1), false), 0.0);
  // Two busy single-slot workers, three waiting: this request is 4th in line, 2 at a time.
  EXPECT_DOUBLE_EQ(*predicted_wait_ms(dedicated_tier(2, 2, 3), false), 4.0 / 2 * 10);
  auto full = dedicated_tier(1, 1, 100);
  EXPECT_FALSE(predicted_wait_ms(full, false).has_value()) << "queue full";
  EXPECT_FALSE(predicted_wait_ms(TierState{}, false).has_value());
}

TEST(PredictedWait, AServerlessPoolThatCanGrowCostsACold) {
  auto s = serverless_tier(0, 4);
  EXPECT_DOUBLE_EQ(*predicted_wait_ms(s, true), 20.0);
  EXPECT_FALSE(predicted_wait_ms(serverless_tier(0, 4), false).has_value() &&
               *predicted_wait_ms(serverless_tier(0, 4), false) < 1e9)
      << "without scaling and without workers there is nothing to wait for";
}

TEST(PredictedWait, AnUnknownServiceTimeLetsAtMostOneRoundWait) {
  // Two single-slot workers, busy, and nothing known of how fast they answer: two may wait
  // (one per slot), a third is refused rather than queued on a guess.
  auto t = dedicated_tier(2, 2, 1);
  t.service_known = false;
  EXPECT_TRUE(predicted_wait_ms(t, false).has_value());
  t.waiting = 2;
  EXPECT_FALSE(predicted_wait_ms(t, false).has_value());
  t.service_known = true;
  EXPECT_TRUE(predicted_wait_ms(t, false).has_value()) << "known: queued by the prediction";
  // A pool cold-starting from zero still takes one round for the worker on its way.
  auto s = serverless_tier(0, 4);
  s.service_known = false;
  EXPECT_TRUE(predicted_wait_ms(s, true).has_value());
  s.waiting = 1;
  EXPECT_FALSE(predicted_wait_ms(s, true).has_value());
}

TEST(ServiceTime, ThePriorStandsUntilMeasuredAndFloorsTheEstimateUntilSettled) {
  ServiceTimeEstimate e;
  EXPECT_FALSE(e.measured());
  EXPECT_DOUBLE_EQ(e.estimate_ms(50), 50);
  // A fast first answer does not open the gates: the prior stays the floor...
  e.observe(5);
  EXPECT_TRUE(e.measured());
  EXPECT_DOUBLE_EQ(e.estimate_ms(50), 50);
  // ...while a slower one than the prior is believed at once.
  ServiceTimeEstimate slow;
  slow.observe(80);
  EXPECT_DOUBLE_EQ(slow.estimate_ms(50), 80);
  // Once settled, the moving average alone.
  for (int i = 1; i < ServiceTimeEstimate::kSettledSamples; ++i) e.observe(5);
  EXPECT_DOUBLE_EQ(e.estimate_ms(50), 5);
  e.observe(10);
  EXPECT_DOUBLE_EQ(e.estimate_ms(50), 0.8 * 5 + 0.2 * 10);
}

TEST(Route, DedicatedFirstStaysOnDedicatedWhileItMeetsTheSlo) {
  auto d = route(input(RoutingPolicy::dedicated_first), dedicated_tier(1, 1, 2), serverless_tier(0, 4));
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].tier, Tier::dedicated) << "wait 30 ms + 10 ms service is inside 50 ms";
}

TEST(Route, DedicatedFirstSpillsOverWhenTheDedicatedWaitBreaksTheSlo) {
  auto d = route(input(RoutingPolicy::dedicated_first), dedicated_tier(1, 1, 10), serverless_tier(0, 4));
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].tier, Tier::serverless);
  EXPECT_TRUE(d.steps[0].wait);
}

TEST(Route, CostOptimalPrefersPaidForDedicatedCapacity) {
  auto d = route(input(RoutingPolicy::cost_optimal), dedicated_tier(1, 0), serverless_tier(1, 4));
  EXPECT_EQ(d.steps[0].tier, Tier::dedicated);
  // Dedicated cannot meet the SLO: the serverless tier, even with a cold start.
  d = route(input(RoutingPolicy::cost_optimal), dedicated_tier(1, 1, 20), serverless_tier(0, 4));
  EXPECT_EQ(d.steps[0].tier, Tier::serverless);
}

TEST(Route, MarginalCostOfAColdStartIncludesItsScaledownWindow) {
  auto warm = serverless_tier(1, 4);
  auto cold = serverless_tier(0, 4);
  EXPECT_LT(marginal_cost(warm), marginal_cost(cold));
  EXPECT_GT(marginal_cost(cold), 0.001097 * 60);
  EXPECT_EQ(marginal_cost(dedicated_tier(1, 0)), 0.0);
}

TEST(Route, OverloadIsRefusedAtOnceWithRetryAfter) {
  auto busy = serverless_tier(4, 4, 4);
  busy.waiting = 40;  // 41 / 4 x 10 ms = 102 ms: no tier can answer within 50 ms
  auto d = route(input(RoutingPolicy::dedicated_first), dedicated_tier(1, 1, 50), busy);
  EXPECT_EQ(d.reject, RejectReason::overloaded);
  EXPECT_GE(d.retry_after_s, 1.0);
  EXPECT_EQ(d.count, 0);
}

TEST(Route, LowPriorityUsesOnlyIdleCapacityAndNeverWaits) {
  auto in = input(RoutingPolicy::dedicated_first);
  in.low_priority = true;
  auto d = route(in, dedicated_tier(1, 0), serverless_tier(0, 4));
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].tier, Tier::dedicated);
  EXPECT_FALSE(d.steps[0].wait);
  d = route(in, dedicated_tier(1, 1), serverless_tier(0, 4));
  EXPECT_EQ(d.reject, RejectReason::low_priority) << "no idle slot, and a cold start is a scale-up";
  d = route(in, dedicated_tier(1, 1), serverless_tier(1, 4, 0));
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].tier, Tier::serverless) << "a warm idle serverless worker is fine";
}

TEST(Route, RetryFallsBackToTheOtherTier) {
  auto in = input(RoutingPolicy::dedicated_first);
  in.retry_from = Tier::dedicated;
  auto d = route(in, dedicated_tier(2, 0), serverless_tier(0, 4));
  EXPECT_EQ(d.steps[0].tier, Tier::serverless);
  in.retry_from = Tier::serverless;
  d = route(in, dedicated_tier(2, 0), serverless_tier(0, 4));
  EXPECT_EQ(d.steps[0].tier, Tier::dedicated);
}

TEST(Route, AnUnhealthyTierIsSkippedNotWaitedOn) {
  auto dead = dedicated_tier(0, 0);
  auto d = route(input(RoutingPolicy::dedicated_first), dead, serverless_tier(0, 4));
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].tier, Tier::serverless);
  d = route(input(RoutingPolicy::dedicated_only), dead, serverless_tier(0, 4));
  EXPECT_EQ(d.reject, RejectReason::no_healthy_tier);
}

TEST(Route, OnlyPoliciesNeverUseTheOtherTier) {
  auto d = route(input(RoutingPolicy::serverless_only), dedicated_tier(4, 0), serverless_tier(0, 4));
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].tier, Tier::serverless);
  d = route(input(RoutingPolicy::dedicated_only), dedicated_tier(1, 1, 2), serverless_tier(4, 4));
  EXPECT_EQ(d.steps[0].tier, Tier::dedicated);
}

TEST(Route, AZeroQueueMeansNoWaitingSoTheRequestSpills) {
  auto no_queue = dedicated_tier(1, 1);
  no_queue.queue_max = 0;
  auto d = route(input(RoutingPolicy::dedicated_first), no_queue, serverless_tier(1, 4));
  ASSERT_EQ(d.count, 1);
  EXPECT_EQ(d.steps[0].tier, Tier::serverless);
}

TEST(Route, ParsesEveryPolicyName) {
  for (const char* name : {"dedicated-first", "serverless-first", "dedicated-only", "serverless-only", "cost-optimal"})
    EXPECT_TRUE(parse_routing_policy(name).has_value()) << name;
  EXPECT_FALSE(parse_routing_policy("cheapest").has_value());
}

} // namespace
} // namespace tandem::policy
