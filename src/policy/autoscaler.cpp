#include "policy/autoscaler.hpp"

#include <algorithm>
#include <cmath>

namespace tandem::policy {

double Autoscaler::window_average(TimePoint now, std::chrono::milliseconds window) const {
  // Time-weighted: each sample stands for the time since the one before it, so extra
  // observations (the activator's pokes) do not tilt the average towards bursts.
  double weighted = 0;
  double covered = 0;
  for (std::size_t i = samples_.size(); i-- > 0;) {
    const auto& s = samples_[i];
    if (now - s.at >= window) break;
    TimePoint from = i > 0 ? std::max(samples_[i - 1].at, now - window) : s.at;
    double seconds = to_seconds(s.at - from);
    if (seconds <= 0) seconds = 1e-6;  // the first sample, or two at the same instant
    weighted += s.concurrency * seconds;
    covered += seconds;
  }
  return covered <= 0 ? 0.0 : weighted / covered;
}

AutoscalerDecision Autoscaler::observe(const AutoscalerObservation& o) {
  const double demand_now = std::max(o.concurrency, o.instant_demand);
  samples_.push_back({o.now, demand_now});
  const auto keep = std::max(spec_.stable_window_ms, spec_.scaledown_window_ms);
  while (!samples_.empty() && o.now - samples_.front().at >= keep) samples_.pop_front();
  const bool traffic_now = o.arrivals > 0 || o.instant_demand > 0;
  if (traffic_now) {
    last_traffic_ = o.now;
    seen_traffic_ = true;
  }

  AutoscalerDecision d;
  d.stable_concurrency = window_average(o.now, spec_.stable_window_ms);
  d.panic_concurrency = window_average(o.now, spec_.panic_window_ms);
  const double target = std::max(spec_.target_concurrency, 1e-9);
  auto workers_for = [&](double concurrency) { return static_cast<int>(std::ceil(concurrency / target - 1e-9)); };
  int stable_desired = workers_for(d.stable_concurrency);
  int panic_desired = std::max(workers_for(d.panic_concurrency), workers_for(o.instant_demand));

  // Panic: demand at or above threshold x what the ready workers can take.
  const double ready_capacity = o.ready_workers * target;
  const bool panic_condition = demand_now > 0 && demand_now >= spec_.panic_threshold * ready_capacity;
  if (panic_condition) {
    panicking_ = true;
    panic_since_ = o.now;  // the stable window restarts with every panic condition
  } else if (panicking_ && o.now - panic_since_ >= spec_.stable_window_ms) {
    panicking_ = false;
  }

  // `base` is the demand-driven count; `buffer` is added on top at the end, so it never
  // compounds from one observation to the next.
  int base = stable_desired;
  if (panicking_) base = std::max({panic_desired, stable_desired, last_base_});  // no scale-down in panic
  const bool traffic_recent = traffic_now || (seen_traffic_ && o.now - last_traffic_ < spec_.scaledown_window_ms);
  int desired = 0;
  if (traffic_recent) {
    base = std::max(base, 1);
    // Scale down only to the highest count asked for during the scaledown window: a short lull
    // (or an average wobbling across an integer) does not stop workers a returning burst needs.
    recent_bases_.push_back({o.now, base});
    while (!recent_bases_.empty() && o.now - recent_bases_.front().at >= spec_.scaledown_window_ms)
      recent_bases_.pop_front();
    for (const auto& r : recent_bases_) base = std::max(base, r.base);
    desired = base + spec_.buffer_workers;
  } else {
    base = 0;  // no traffic for the whole scaledown window: back to min
    panicking_ = false;
    recent_bases_.clear();
  }
  desired = std::clamp(desired, spec_.min_workers, spec_.max_workers);
  last_base_ = std::min(base, spec_.max_workers);
  d.desired_workers = desired;
  d.panic = panicking_;
  return d;
}

} // namespace tandem::policy
