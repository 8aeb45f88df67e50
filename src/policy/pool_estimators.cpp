#include "policy/pool_estimators.hpp"

#include <algorithm>

namespace tandem::policy {

void DemandIntegral::advance(PoolClockPoint now, int level) {
  now = std::max(now, changed_at_);
  integral_ += std::chrono::duration<double>(now - changed_at_).count() * static_cast<double>(level);
  changed_at_ = now;
}

DemandPeriod DemandIntegral::take(PoolClockPoint now, int level) {
  advance(now, level);
  DemandPeriod period;
  const double length_s = std::chrono::duration<double>(now - period_start_).count();
  period.average_concurrency = length_s > 0 ? integral_ / length_s : 0.0;
  period.arrivals = arrivals_;
  integral_ = 0;
  arrivals_ = 0;
  period_start_ = now;
  changed_at_ = now;
  return period;
}

} // namespace tandem::policy
