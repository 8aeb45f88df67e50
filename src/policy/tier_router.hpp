#pragma once
// Pure pool routing and admission (snapshot in, decision out; no I/O): given what each of an
// endpoint's pools looks like now, the request's latency budget and its priority, decide which
// pool(s) to use, in which order, whether the request may wait (queue, scale up, cold start)
// there, or whether to refuse it at once because no pool can serve it in time. Any number of
// pools, each of a capacity kind (dedicated or serverless); the routing policy speaks of kinds.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace tandem::policy {

/// A pool's capacity kind: reserved and always warm (dedicated), or scaled from zero and billed
/// while it runs (serverless).
enum class Tier { dedicated, serverless };
std::string_view to_string(Tier tier);

/// Pools one endpoint version may have: the decision's steps are a fixed array of this size.
inline constexpr std::size_t kMaxPools = 8;

enum class RoutingPolicy { dedicated_first, serverless_first, dedicated_only, serverless_only, cost_optimal };
std::optional<RoutingPolicy> parse_routing_policy(std::string_view text);

/// One pool, as the router sees it.
struct TierState {
  bool exists = false;
  Tier kind = Tier::dedicated;
  int ready_workers = 0;     // ready and not ejected
  int starting_workers = 0;  // cold-starting or restarting
  int max_workers = 0;       // serverless: the autoscaler's ceiling
  int max_concurrency_per_worker = 1;
  int in_flight = 0;
  int waiting = 0;
  int queue_max = 0;
  double service_ms = 0;     // estimated time on a worker per request (ServiceTimeEstimate)
  // False until the tier has measured an answer or its workers reported a prior: then the
  // queue's drain rate is unknown, and no more requests may wait than slots will serve them.
  bool service_known = true;
  double cold_start_ms = 0;  // measured (moving average) worker start to ready
  double price_per_second = 0;
  bool reserved = false;     // dedicated: paid for whether used or not
  bool scalable = false;     // serverless: the autoscaler can add workers up to max_workers
  double scaledown_window_s = 0;  // serverless: how long a started worker is billed at least

  [[nodiscard]] int free_slots() const;
  [[nodiscard]] bool can_grow() const { return scalable && ready_workers + starting_workers < max_workers; }
  /// Healthy: has a worker that is ready or on its way. A tier with none is skipped.
  [[nodiscard]] bool healthy() const { return exists && (ready_workers + starting_workers > 0 || can_grow()); }
};

/// Expected wait before a request would start on this tier, in milliseconds; nullopt when the
/// tier cannot take it at all (missing, unhealthy, queue full).
std::optional<double> predicted_wait_ms(const TierState& tier, bool may_scale);

/// Dollars this request would add to the bill on this tier (idle dedicated capacity is
/// already paid for; a serverless cold start bills its start and its scale-down window).
double marginal_cost(const TierState& tier);

struct RouteInput {
  RoutingPolicy policy = RoutingPolicy::dedicated_first;
  double budget_ms = 0;        // latency the request may spend: the p95 SLO or the deadline
  double deadline_ms = 0;      // time left before the request's deadline
  bool low_priority = false;   // batch work: idle capacity only, never a scale-up
  std::optional<Tier> retry_from;  // two-pool form: the tier that just failed this request
  std::optional<std::size_t> retry_pool;  // the pool that just failed it: prefer another kind, then another pool
};

struct RouteStep {
  Tier tier = Tier::dedicated;  // the pool's kind
  std::uint8_t pool = 0;        // index into the pools routed over
  bool wait = false;            // false: take a free slot now or move on
};

enum class RejectReason { none, overloaded, low_priority, no_healthy_tier };
std::string_view to_string(RejectReason reason);

struct RouteDecision {
  std::array<RouteStep, kMaxPools> steps{};
  int count = 0;
  RejectReason reject = RejectReason::none;
  double predicted_wait_ms = 0;  // of the first step
  double retry_after_s = 1;      // for a refusal
  std::string_view reason;       // why the first step is first
  void add(Tier tier, std::size_t pool, bool wait) {
    steps[static_cast<std::size_t>(count++)] = {tier, static_cast<std::uint8_t>(pool), wait};
  }
};

/// Routes over `pools` (at most kMaxPools; each one's `kind` says what it is). Among pools of
/// the kind the policy prefers, the one with the lowest predicted latency that meets the budget;
/// ties go to the earlier pool.
RouteDecision route(const RouteInput& input, std::span<const TierState> pools);
/// The two-pool form: pool 0 is `dedicated`, pool 1 `serverless` (their kinds are set here).
RouteDecision route(const RouteInput& input, const TierState& dedicated, const TierState& serverless);

} // namespace tandem::policy
