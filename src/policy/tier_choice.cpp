#include "policy/tier_choice.hpp"

namespace tandem::policy {

std::string_view to_string(Tier tier) { return tier == Tier::dedicated ? "dedicated" : "serverless"; }

std::optional<RoutingPolicy> parse_routing_policy(std::string_view text) {
  if (text == "dedicated-first") return RoutingPolicy::dedicated_first;
  if (text == "serverless-first") return RoutingPolicy::serverless_first;
  if (text == "dedicated-only") return RoutingPolicy::dedicated_only;
  if (text == "serverless-only") return RoutingPolicy::serverless_only;
  if (text == "cost-optimal") return RoutingPolicy::cost_optimal;
  return std::nullopt;
}

TierPlan plan_tiers(RoutingPolicy policy, const TierView& dedicated, const TierView& serverless,
                    std::optional<Tier> retry_from) {
  TierPlan plan;
  const bool has_d = dedicated.exists && policy != RoutingPolicy::serverless_only;
  const bool has_s = serverless.exists && policy != RoutingPolicy::dedicated_only;
  if (!has_d && !has_s) return plan;
  if (!has_d || !has_s) {
    plan.add(has_d ? Tier::dedicated : Tier::serverless, true);
    plan.reason = "only tier";
    return plan;
  }
  if (retry_from) {
    Tier other = *retry_from == Tier::dedicated ? Tier::serverless : Tier::dedicated;
    plan.add(other, true);
    plan.reason = "fallback";
    return plan;
  }
  switch (policy) {
  case RoutingPolicy::serverless_first:
    // Serverless while it has room or can still grow; dedicated only when it is maxed out.
    if (serverless.free_slots > 0 || serverless.live_workers < serverless.max_workers) {
      plan.add(Tier::serverless, true);
      plan.reason = "serverless-first";
    } else {
      plan.add(Tier::dedicated, false);
      plan.add(Tier::serverless, true);
      plan.reason = "serverless saturated";
    }
    return plan;
  case RoutingPolicy::dedicated_first:
  case RoutingPolicy::cost_optimal:
  default:
    // Dedicated capacity is paid for whether used or not: use a free slot there first, spill
    // over to serverless (scaling it up if needed) when dedicated is full.
    plan.add(Tier::dedicated, false);
    plan.add(Tier::serverless, true);
    plan.reason = dedicated.free_slots > 0 ? "dedicated has a free slot" : "dedicated saturated: spillover";
    return plan;
  }
}

} // namespace tandem::policy
