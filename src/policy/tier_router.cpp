#include "policy/tier_router.hpp"

#include <algorithm>
#include <cmath>

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

std::string_view to_string(RejectReason reason) {
  switch (reason) {
  case RejectReason::none: return "none";
  case RejectReason::overloaded: return "overloaded";
  case RejectReason::low_priority: return "low_priority";
  case RejectReason::no_healthy_tier: return "no_healthy_tier";
  }
  return "none";
}

int TierState::free_slots() const {
  return std::max(0, ready_workers * max_concurrency_per_worker - in_flight);
}

std::optional<double> predicted_wait_ms(const TierState& t, bool may_scale) {
  if (!t.healthy()) return std::nullopt;
  if (t.waiting == 0 && t.free_slots() > 0) return 0.0;
  if (t.waiting >= t.queue_max) return std::nullopt;  // queue_max 0: no waiting at all
  // The requests ahead, this one included, drain at (capacity / service time): an M/D/c-style
  // estimate without the variance term, which the SLO margin absorbs.
  const double service = std::max(t.service_ms, 0.1);
  const int ready_capacity = t.ready_workers * t.max_concurrency_per_worker;
  const double ahead = t.waiting + 1.0;
  const bool grows = t.starting_workers > 0 || (may_scale && t.can_grow());
  const int upcoming = t.starting_workers + ((may_scale && t.can_grow()) ? 1 : 0);
  if (!t.service_known && ahead > ready_capacity + upcoming * t.max_concurrency_per_worker)
    return std::nullopt;  // one round at most until the drain rate is known
  double queue_wait = ready_capacity > 0 ? ahead / ready_capacity * service : HUGE_VAL;
  // A worker on its way (or one the autoscaler can add) serves after a cold start.
  if (grows) {
    double cold = std::max(t.cold_start_ms, 1.0);
    double with_new = ahead / (ready_capacity + upcoming * t.max_concurrency_per_worker) * service;
    queue_wait = std::min(queue_wait, std::max(cold, with_new));
  }
  if (!std::isfinite(queue_wait)) return std::nullopt;
  return queue_wait;
}

double marginal_cost(const TierState& t) {
  const double service_s = std::max(t.service_ms, 0.0) / 1000.0;
  if (t.reserved) return 0.0;  // paid for whether used or not
  double busy = t.price_per_second * service_s / std::max(1, t.max_concurrency_per_worker);
  if (t.free_slots() > 0) return busy;
  // A new worker: its cold start, and at least one scale-down window of idle time.
  return busy + t.price_per_second * (t.cold_start_ms / 1000.0 + t.scaledown_window_s);
}

namespace {

struct Option {
  std::size_t pool;
  Tier tier;
  double wait_ms;
  double latency_ms;
  double cost;
};

std::optional<Option> option_for(std::size_t pool, const TierState& t, bool may_scale) {
  auto wait = predicted_wait_ms(t, may_scale);
  if (!wait) return std::nullopt;
  return Option{pool, t.kind, *wait, *wait + t.service_ms, marginal_cost(t)};
}

/// Serverless pools may scale up for a request; dedicated ones have what they have.
bool may_scale(const TierState& t) { return t.kind == Tier::serverless; }

/// The best of `options` that `fits`: lowest latency, ties to the earlier pool.
template <typename Fits>
const Option* fastest(const std::array<std::optional<Option>, kMaxPools>& options, std::size_t n, Fits fits) {
  const Option* best = nullptr;
  for (std::size_t i = 0; i < n; ++i)
    if (options[i] && fits(*options[i]) && (best == nullptr || options[i]->latency_ms < best->latency_ms))
      best = &*options[i];
  return best;
}

} // namespace

RouteDecision route(const RouteInput& in, std::span<const TierState> pools) {
  RouteDecision d;
  const std::size_t n = std::min(pools.size(), kMaxPools);
  auto usable = [&](std::size_t i) {
    const TierState& t = pools[i];
    if (!t.exists) return false;
    if (in.policy == RoutingPolicy::serverless_only) return t.kind == Tier::serverless;
    if (in.policy == RoutingPolicy::dedicated_only) return t.kind == Tier::dedicated;
    return true;
  };

  if (in.low_priority) {
    // Idle capacity only: a free slot now, never a queue or a scale-up; dedicated pools first
    // (already paid for), each kind in pool order.
    for (Tier kind : {Tier::dedicated, Tier::serverless})
      for (std::size_t i = 0; i < n; ++i)
        if (usable(i) && pools[i].kind == kind && pools[i].free_slots() > 0 && pools[i].waiting == 0)
          d.add(kind, i, false);
    if (d.count == 0) {
      d.reject = RejectReason::low_priority;
      d.reason = "low priority: no idle capacity";
      return d;
    }
    d.reason = "low priority: idle capacity";
    return d;
  }

  std::array<std::optional<Option>, kMaxPools> options{};
  bool any_option = false;
  for (std::size_t i = 0; i < n; ++i) {
    if (usable(i)) options[i] = option_for(i, pools[i], may_scale(pools[i]));
    any_option = any_option || options[i].has_value();
  }
  if (in.retry_pool && *in.retry_pool < n) {
    // Fallback: another kind of capacity first, then another pool of the same kind, then the
    // same pool, whichever can take the request before its deadline.
    const std::size_t failed = *in.retry_pool;
    const Tier failed_kind = pools[failed].kind;
    auto in_time = [&](const Option& o) { return o.wait_ms <= in.deadline_ms; };
    const Option* other = fastest(options, n, [&](const Option& o) { return o.tier != failed_kind && in_time(o); });
    std::string_view why = "fallback to the other tier";
    if (other == nullptr) {
      other = fastest(options, n, [&](const Option& o) { return o.pool != failed && in_time(o); });
      why = "fallback to another pool";
    }
    if (other == nullptr) {
      other = fastest(options, n, [&](const Option& o) { return o.pool == failed && in_time(o); });
      why = "retry on the same tier";
    }
    if (other != nullptr) {
      d.add(other->tier, other->pool, true);
      d.predicted_wait_ms = other->wait_ms;
      d.reason = why;
      return d;
    }
  }
  if (!any_option) {
    bool any_exists = false;
    bool any_healthy = false;
    for (std::size_t i = 0; i < n; ++i) {
      any_exists = any_exists || usable(i);
      any_healthy = any_healthy || (usable(i) && pools[i].healthy());
    }
    d.reject = any_exists && any_healthy ? RejectReason::overloaded : RejectReason::no_healthy_tier;
    d.reason = d.reject == RejectReason::overloaded ? "every queue is full" : "no healthy worker";
    return d;
  }

  // Predictions are means; aim under the budget so the tail (the p95) still fits in it.
  constexpr double kHeadroom = 0.85;
  const double budget_ms = in.budget_ms * kHeadroom;
  auto within = [&](const Option& o) { return o.latency_ms <= budget_ms; };
  auto of_kind = [](Tier kind, auto fits) { return [kind, fits](const Option& o) { return o.tier == kind && fits(o); }; };
  auto any_of_kind = [&](Tier kind) {
    for (std::size_t i = 0; i < n; ++i)
      if (options[i] && options[i]->tier == kind) return true;
    return false;
  };
  const Option* choice = nullptr;
  switch (in.policy) {
  case RoutingPolicy::dedicated_only:
  case RoutingPolicy::serverless_only:
    choice = fastest(options, n, within);
    d.reason = "only tier";
    break;
  case RoutingPolicy::dedicated_first:
  case RoutingPolicy::serverless_first: {
    const Tier first = in.policy == RoutingPolicy::dedicated_first ? Tier::dedicated : Tier::serverless;
    const Tier second = first == Tier::dedicated ? Tier::serverless : Tier::dedicated;
    if ((choice = fastest(options, n, of_kind(first, within)))) {
      d.reason = first == Tier::dedicated ? "dedicated meets the SLO" : "serverless meets the SLO";
    } else if ((choice = fastest(options, n, of_kind(second, within)))) {
      const bool saturated = any_of_kind(first);
      d.reason = first == Tier::dedicated
                     ? (saturated ? "dedicated saturated: spillover" : "dedicated unavailable: spillover")
                     : (saturated ? "serverless saturated: spillover" : "serverless unavailable: spillover");
    }
    break;
  }
  case RoutingPolicy::cost_optimal: {
    // Cheapest among the pools that meet the SLO now; ties go to dedicated (already paid), then
    // to the earlier pool.
    int within_count = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!options[i] || !within(*options[i])) continue;
      ++within_count;
      const Option& o = *options[i];
      if (choice == nullptr || o.cost < choice->cost ||
          (o.cost == choice->cost && o.tier == Tier::dedicated && choice->tier == Tier::serverless))
        choice = &o;
    }
    if (choice != nullptr)
      d.reason = within_count > 1 ? "lowest marginal cost within the SLO" : "the only tier within the SLO";
    break;
  }
  }
  if (choice == nullptr) {
    // No pool meets the SLO: the fastest one (admission control below decides whether it is
    // still worth queueing for).
    choice = fastest(options, n, [](const Option&) { return true; });
    d.reason = in.policy == RoutingPolicy::dedicated_only || in.policy == RoutingPolicy::serverless_only
                   ? "only tier"
                   : "no tier meets the SLO: fastest";
  }
  if (choice->latency_ms > budget_ms && choice->wait_ms > 0) {
    // Admission control: queueing would only produce a late answer. Refuse now.
    d.reject = RejectReason::overloaded;
    d.predicted_wait_ms = choice->wait_ms;
    d.retry_after_s = std::clamp(std::ceil(choice->wait_ms / 1000.0), 1.0, 60.0);
    d.reason = "predicted wait exceeds the latency budget";
    return d;
  }
  d.add(choice->tier, choice->pool, true);
  d.predicted_wait_ms = choice->wait_ms;
  return d;
}

RouteDecision route(const RouteInput& input, const TierState& dedicated, const TierState& serverless) {
  std::array<TierState, 2> pools{dedicated, serverless};
  pools[0].kind = Tier::dedicated;
  pools[1].kind = Tier::serverless;
  RouteInput in = input;
  if (in.retry_from && !in.retry_pool) in.retry_pool = *in.retry_from == Tier::dedicated ? 0 : 1;
  return route(in, pools);
}

} // namespace tandem::policy
