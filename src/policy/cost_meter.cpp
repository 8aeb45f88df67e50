#include "policy/cost_meter.hpp"

#include <algorithm>

namespace tandem::policy {

double CostMeter::accrue(Duration elapsed, double workers) {
  if (elapsed.count() <= 0 || workers <= 0) return 0;
  double dollars = to_seconds(elapsed) * workers * price_per_second_;
  total_ += dollars;
  window_cost_ += dollars;
  return dollars;
}

void CostMeter::roll_window(TimePoint now) {
  if (!window_started_) {
    window_started_ = true;
    window_start_ = now;
    return;
  }
  if (now - window_start_ < window_) return;
  // Overhead of the window that just ended, spread over its requests. With no requests the
  // estimate keeps its last value rather than dropping to zero.
  if (window_requests_ > 0)
    overhead_per_request_ = std::max(0.0, window_cost_ - window_busy_cost_) / static_cast<double>(window_requests_);
  window_start_ = now;
  window_cost_ = 0;
  window_busy_cost_ = 0;
  window_requests_ = 0;
}

double CostMeter::attribute(TimePoint now, Duration busy, int sharing) {
  roll_window(now);
  double busy_cost = to_seconds(busy) * price_per_second_ / std::max(sharing, 1);
  window_busy_cost_ += busy_cost;
  ++window_requests_;
  double dollars = busy_cost + overhead_per_request_;
  attributed_total_ += dollars;
  return dollars;
}

} // namespace tandem::policy
