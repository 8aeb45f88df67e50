#include "policy/service_time.hpp"

#include <algorithm>

namespace tandem::policy {

void ServiceTimeEstimate::observe(double ms) {
  mean_ms_ = samples_ == 0 ? ms : 0.8 * mean_ms_ + 0.2 * ms;
  if (samples_ < kSettledSamples) ++samples_;
}

double ServiceTimeEstimate::estimate_ms(double prior_ms) const {
  if (samples_ == 0) return prior_ms;
  if (samples_ < kSettledSamples) return std::max(prior_ms, mean_ms_);
  return mean_ms_;
}

} // namespace tandem::policy
