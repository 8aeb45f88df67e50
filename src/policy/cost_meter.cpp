#include "policy/cost_meter.hpp"

#include <algorithm>

namespace tandem::policy {

double CostMeter::accrue(Duration elapsed, double workers) {
  if (elapsed.count() <= 0) return 0;
  const double rate = std::max(workers, 0.0) * price_per_second_; // dollars per second
  Duration left = elapsed;
  while (window_elapsed_ + left >= window_) {
    const Duration to_end = window_ - window_elapsed_;
    window_cost_ += rate * to_seconds(to_end);
    left -= to_end;
    close_window();
    // Whole windows inside one call had no requests: only the last of them counts (each
    // window's idle cost goes to the next window only), so skip the others.
    if (const long whole = left / window_; whole > 1) left -= (whole - 1) * window_;
  }
  window_elapsed_ += left;
  window_cost_ += rate * to_seconds(left);
  const double dollars = rate * to_seconds(elapsed);
  total_ += dollars;
  return dollars;
}

void CostMeter::close_window() {
  // What no busy share covered, with what this window did not hand out of the last one (not
  // after a window without requests: a lull's cost stops at its last window), is for the next
  // window's requests, an equal share each estimated from this window's count.
  const double unattributed = std::max(0.0, window_cost_ - window_busy_cost_);
  const double carried = window_requests_ > 0 ? std::min(idle_left_, last_window_cost_) : 0.0;
  idle_left_ = unattributed + carried;
  idle_share_ = idle_left_ / static_cast<double>(std::max(window_requests_, 1L));
  last_window_cost_ = window_cost_;
  window_elapsed_ = Duration{0};
  window_cost_ = 0;
  window_busy_cost_ = 0;
  window_requests_ = 0;
}

double CostMeter::attribute(Duration busy, int sharing) {
  // Accrual runs on a tick, so a request can finish before its time is metered: it is charged
  // at most what is metered and not yet attributed. What it is not charged stays unattributed
  // and reaches the next window's requests as idle cost.
  double unattributed = std::max(0.0, total_ - attributed_total_);
  const double busy_cost =
      std::min(std::max(to_seconds(busy), 0.0) * price_per_second_ / std::max(sharing, 1), unattributed);
  unattributed -= busy_cost;
  const double idle_cost =
      std::max(0.0, std::min({idle_share_, idle_left_, unattributed, last_window_cost_ - busy_cost}));
  idle_left_ -= idle_cost;
  window_busy_cost_ += busy_cost;
  ++window_requests_;
  const double dollars = busy_cost + idle_cost;
  attributed_total_ += dollars;
  return dollars;
}

} // namespace tandem::policy
