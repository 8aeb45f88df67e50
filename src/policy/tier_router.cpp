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
  Tier tier;
  double wait_ms;
  double latency_ms;
  double cost;
};

std::optional<Option> option_for(Tier tier, const TierState& t, bool may_scale) {
  auto wait = predicted_wait_ms(t, may_scale);
  if (!wait) return std::nullopt;
  return Option{tier, *wait, *wait + t.service_ms, marginal_cost(t)};
}

} // namespace

RouteDecision route(const RouteInput& in, const TierState& dedicated, const TierState& serverless) {
  RouteDecision d;
  const bool use_d = dedicated.exists && in.policy != RoutingPolicy::serverless_only;
  const bool use_s = serverless.exists && in.policy != RoutingPolicy::dedicated_only;

  if (in.low_priority) {
    // Idle capacity only: a free slot now on either tier, never a queue or a scale-up.
    if (use_d && dedicated.free_slots() > 0 && dedicated.waiting == 0) d.add(Tier::dedicated, false);
    if (use_s && serverless.free_slots() > 0 && serverless.waiting == 0) d.add(Tier::serverless, false);
    if (d.count == 0) {
      d.reject = RejectReason::low_priority;
      d.reason = "low priority: no idle capacity";
      return d;
    }
    d.reason = "low priority: idle capacity";
    return d;
  }

  std::optional<Option> od = use_d ? option_for(Tier::dedicated, dedicated, false) : std::nullopt;
  std::optional<Option> os = use_s ? option_for(Tier::serverless, serverless, true) : std::nullopt;
  if (in.retry_from) {
    // Fallback: the other tier first when it can take the request in time.
    auto& other = *in.retry_from == Tier::dedicated ? os : od;
    auto& same = *in.retry_from == Tier::dedicated ? od : os;
    if (other && other->wait_ms <= in.deadline_ms) {
      d.add(other->tier, true);
      d.predicted_wait_ms = other->wait_ms;
      d.reason = "fallback to the other tier";
      return d;
    }
    if (same && same->wait_ms <= in.deadline_ms) {
      d.add(same->tier, true);
      d.predicted_wait_ms = same->wait_ms;
      d.reason = "retry on the same tier";
      return d;
    }
  }
  if (!od && !os) {
    bool any_exists = use_d || use_s;
    bool any_healthy = (use_d && dedicated.healthy()) || (use_s && serverless.healthy());
    d.reject = any_exists && any_healthy ? RejectReason::overloaded : RejectReason::no_healthy_tier;
    d.reason = d.reject == RejectReason::overloaded ? "every queue is full" : "no healthy worker";
    return d;
  }

  // Predictions are means; aim under the budget so the tail (the p95) still fits in it.
  constexpr double kHeadroom = 0.85;
  const double budget_ms = in.budget_ms * kHeadroom;
  auto within = [](const std::optional<Option>& o, double limit) { return o && o->latency_ms <= limit; };
  std::optional<Option> choice;
  switch (in.policy) {
  case RoutingPolicy::dedicated_only:
  case RoutingPolicy::serverless_only:
    choice = od ? od : os;
    d.reason = "only tier";
    break;
  case RoutingPolicy::dedicated_first:
    if (within(od, budget_ms)) {
      choice = od;
      d.reason = "dedicated meets the SLO";
    } else if (within(os, budget_ms)) {
      choice = os;
      d.reason = od ? "dedicated saturated: spillover" : "dedicated unavailable: spillover";
    }
    break;
  case RoutingPolicy::serverless_first:
    if (within(os, budget_ms)) {
      choice = os;
      d.reason = "serverless meets the SLO";
    } else if (within(od, budget_ms)) {
      choice = od;
      d.reason = os ? "serverless saturated: spillover" : "serverless unavailable: spillover";
    }
    break;
  case RoutingPolicy::cost_optimal: {
    // Cheapest among the tiers that meet the SLO now; ties go to dedicated (already paid).
    bool d_ok = within(od, budget_ms);
    bool s_ok = within(os, budget_ms);
    if (d_ok && s_ok) {
      choice = os->cost < od->cost ? os : od;
      d.reason = "lowest marginal cost within the SLO";
    } else if (d_ok || s_ok) {
      choice = d_ok ? od : os;
      d.reason = "the only tier within the SLO";
    }
    break;
  }
  }
  if (!choice) {
    // No tier meets the SLO: the fastest one (admission control below decides whether it is
    // still worth queueing for).
    if (od && os) choice = od->latency_ms <= os->latency_ms ? od : os;
    else choice = od ? od : os;
    d.reason = "no tier meets the SLO: fastest";
  }
  if (choice->latency_ms > budget_ms && choice->wait_ms > 0) {
    // Admission control: queueing would only produce a late answer. Refuse now.
    d.reject = RejectReason::overloaded;
    d.predicted_wait_ms = choice->wait_ms;
    d.retry_after_s = std::clamp(std::ceil(choice->wait_ms / 1000.0), 1.0, 60.0);
    d.reason = "predicted wait exceeds the latency budget";
    return d;
  }
  d.add(choice->tier, true);
  d.predicted_wait_ms = choice->wait_ms;
  return d;
}

} // namespace tandem::policy
