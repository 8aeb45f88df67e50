#pragma once
// Pure estimators a pool keeps beside its workers, fed with the time rather than reading it:
// the cold-start average the router predicts waits with, the demand integral the autoscaler
// scales on, and the activator's rate limit (a queued request pokes the autoscaler at once,
// but a burst of them does not poke it once each).
#include <chrono>
#include <cstdint>

namespace tandem::policy {

using PoolClockPoint = std::chrono::time_point<std::chrono::steady_clock, std::chrono::nanoseconds>;

/// Worker start to ready: an exponential moving average (weight 0.3 on the newest start), so a
/// model whose load slows down shows in the router's predictions within a few starts.
class ColdStartEstimate {
public:
  void observe(double ms) {
    mean_ms_ = measured_ ? 0.7 * mean_ms_ + 0.3 * ms : ms;
    measured_ = true;
  }
  [[nodiscard]] bool measured() const { return measured_; }
  /// 0 until a worker has started.
  [[nodiscard]] double mean_ms() const { return measured_ ? mean_ms_ : 0.0; }

private:
  double mean_ms_ = 0;
  bool measured_ = false;
};

/// Demand over a period: the time integral of (requests in flight + waiting), and arrivals.
struct DemandPeriod {
  double average_concurrency = 0;  // the integral over the period's length
  int arrivals = 0;
};

class DemandIntegral {
public:
  explicit DemandIntegral(PoolClockPoint start = {}) : changed_at_(start), period_start_(start) {}
  /// The level is about to change at `now` (a lease taken or returned, a request starts or
  /// stops waiting): the time since the last change counts at `level`. A `now` before the last
  /// change (a coarse clock) counts as no time.
  void advance(PoolClockPoint now, int level);
  void arrival() { ++arrivals_; }
  /// The period up to `now` at `level`, then a new period starts.
  DemandPeriod take(PoolClockPoint now, int level);

private:
  PoolClockPoint changed_at_;
  PoolClockPoint period_start_;
  double integral_ = 0;  // request-seconds
  int arrivals_ = 0;
};

/// Whether a request that found no free slot pokes the autoscaler now: always while the pool
/// has no live worker (scale from zero must not wait for a tick), else at most once per
/// `min_interval`.
class ActivatorLimit {
public:
  explicit ActivatorLimit(std::chrono::nanoseconds min_interval = std::chrono::milliseconds(10))
      : min_interval_(min_interval) {}
  /// `has_live_workers` is asked only within the interval (it walks the pool's workers).
  template <typename HasLiveWorkers> bool should_poke(PoolClockPoint now, HasLiveWorkers has_live_workers) {
    if (poked_ && now - last_ < min_interval_ && has_live_workers()) return false;
    last_ = now;
    poked_ = true;
    return true;
  }

private:
  std::chrono::nanoseconds min_interval_;
  PoolClockPoint last_{};
  bool poked_ = false;
};

} // namespace tandem::policy
