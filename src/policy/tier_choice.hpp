#pragma once
// Pure decision: in which order a request tries the endpoint's tiers, and whether it may wait
// (queue, scale up, cold start) on each. The gateway walks the plan: a "try" step takes a free
// slot now or moves on; a "wait" step queues with the request's deadline.
#include <array>
#include <optional>
#include <string_view>

namespace tandem::policy {

enum class Tier { dedicated, serverless };
std::string_view to_string(Tier tier);

enum class RoutingPolicy { dedicated_first, serverless_first, dedicated_only, serverless_only, cost_optimal };
std::optional<RoutingPolicy> parse_routing_policy(std::string_view text);

struct TierView {
  bool exists = false;
  int free_slots = 0;    // on ready workers, now
  int live_workers = 0;  // starting + ready
  int max_workers = 0;
};

struct TierStep {
  Tier tier = Tier::dedicated;
  bool wait = false;
};

struct TierPlan {
  std::array<TierStep, 3> steps{};
  int count = 0;
  std::string_view reason;  // why the first step is first (for traces and debugging)
  void add(Tier tier, bool wait) { steps[static_cast<std::size_t>(count++)] = {tier, wait}; }
};

/// `retry_from` is the tier whose worker just failed this request: a retry prefers the other
/// tier when it exists (fallback).
TierPlan plan_tiers(RoutingPolicy policy, const TierView& dedicated, const TierView& serverless,
                    std::optional<Tier> retry_from = std::nullopt);

} // namespace tandem::policy
