#include "policy/autoscaler.hpp"

#include <algorithm>
#include <cmath>

namespace tandem::policy {

double Autoscaler::window_average(TimePoint now, std::chrono::milliseconds window) const {
  double sum = 0;
  int count = 0;
  for (auto it = samples_.rbegin(); it != samples_.rend() && now - it->at < window; ++it) {
    sum += it->concurrency;
    ++count;
  }
  return count == 0 ? 0.0 : sum / count;
}

AutoscalerDecision Autoscaler::observe(const AutoscalerObservation& o) {
  const double demand_now = std::max(o.concurrency, o.instant_demand);
  samples_.push_back({o.now, demand_now});
  while (!samples_.empty() && o.now - samples_.front().at >= spec_.stable_window_ms) samples_.pop_front();
  if (o.arrivals > 0 || o.instant_demand > 0) {
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
    if (!panicking_) panic_since_ = o.now;
    panicking_ = true;
    panic_since_ = o.now;  // the stable window restarts with every panic condition
  } else if (panicking_ && o.now - panic_since_ >= spec_.stable_window_ms) {
    panicking_ = false;
  }

  int desired = stable_desired;
  if (panicking_) desired = std::max({panic_desired, stable_desired, last_desired_});  // no scale-down in panic
  const bool traffic_recent = seen_traffic_ && o.now - last_traffic_ < spec_.scaledown_window_ms;
  if (traffic_recent) {
    desired = std::max(desired, 1) + spec_.buffer_workers;
    // Scale down only as far as the demand of the whole scaledown window allows, so a short
    // lull does not stop workers a returning burst needs.
    desired = std::max(desired, std::min(last_desired_, workers_for(window_average(o.now, spec_.scaledown_window_ms)) +
                                                            spec_.buffer_workers));
  } else {
    desired = 0;  // no traffic for the whole scaledown window: back to min
  }
  desired = std::clamp(desired, spec_.min_workers, spec_.max_workers);
  d.desired_workers = desired;
  d.panic = panicking_;
  last_desired_ = desired;
  return d;
}

} // namespace tandem::policy
