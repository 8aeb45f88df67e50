#include "policy/tier_choice.hpp"

#include <gtest/gtest.h>

namespace tandem::policy {
namespace {

TierView tier(int free_slots, int live, int max) { return TierView{true, free_slots, live, max}; }

TEST(TierChoice, DedicatedFirstTriesDedicatedThenWaitsOnServerless) {
  auto plan = plan_tiers(RoutingPolicy::dedicated_first, tier(1, 1, 1), tier(0, 0, 4));
  ASSERT_EQ(plan.count, 2);
  EXPECT_EQ(plan.steps[0].tier, Tier::dedicated);
  EXPECT_FALSE(plan.steps[0].wait);
  EXPECT_EQ(plan.steps[1].tier, Tier::serverless);
  EXPECT_TRUE(plan.steps[1].wait);
}

TEST(TierChoice, OnlyOneTierMeansWaitingOnIt) {
  auto plan = plan_tiers(RoutingPolicy::dedicated_first, tier(0, 1, 1), TierView{});
  ASSERT_EQ(plan.count, 1);
  EXPECT_EQ(plan.steps[0].tier, Tier::dedicated);
  EXPECT_TRUE(plan.steps[0].wait);
  plan = plan_tiers(RoutingPolicy::dedicated_only, tier(0, 1, 1), tier(4, 2, 4));
  ASSERT_EQ(plan.count, 1);
  EXPECT_EQ(plan.steps[0].tier, Tier::dedicated);
  plan = plan_tiers(RoutingPolicy::serverless_only, tier(4, 1, 1), tier(0, 0, 4));
  ASSERT_EQ(plan.count, 1);
  EXPECT_EQ(plan.steps[0].tier, Tier::serverless);
  EXPECT_EQ(plan_tiers(RoutingPolicy::serverless_only, tier(1, 1, 1), TierView{}).count, 0);
}

TEST(TierChoice, ServerlessFirstUsesDedicatedOnlyWhenServerlessIsMaxedOut) {
  auto plan = plan_tiers(RoutingPolicy::serverless_first, tier(1, 1, 1), tier(0, 1, 4));
  ASSERT_EQ(plan.count, 1);
  EXPECT_EQ(plan.steps[0].tier, Tier::serverless);
  plan = plan_tiers(RoutingPolicy::serverless_first, tier(1, 1, 1), tier(0, 4, 4));
  ASSERT_EQ(plan.count, 2);
  EXPECT_EQ(plan.steps[0].tier, Tier::dedicated);
  EXPECT_FALSE(plan.steps[0].wait);
}

TEST(TierChoice, RetryFallsBackToTheOtherTier) {
  auto plan = plan_tiers(RoutingPolicy::dedicated_first, tier(1, 1, 1), tier(0, 0, 4), Tier::dedicated);
  ASSERT_EQ(plan.count, 1);
  EXPECT_EQ(plan.steps[0].tier, Tier::serverless);
  plan = plan_tiers(RoutingPolicy::dedicated_first, tier(1, 1, 1), tier(0, 0, 4), Tier::serverless);
  EXPECT_EQ(plan.steps[0].tier, Tier::dedicated);
}

TEST(TierChoice, ParsesEveryPolicyName) {
  for (const char* name : {"dedicated-first", "serverless-first", "dedicated-only", "serverless-only", "cost-optimal"})
    EXPECT_TRUE(parse_routing_policy(name).has_value()) << name;
  EXPECT_FALSE(parse_routing_policy("cheapest").has_value());
}

} // namespace
} // namespace tandem::policy
