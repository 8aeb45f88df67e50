#include "policy/outlier.hpp"

#include <algorithm>

namespace tandem::policy {

int max_ejected(const OutlierSpec& spec, int pool_size) {
  if (spec.max_ejected_percent <= 0) return 0;  // 0 turns ejection off
  return std::max(1, pool_size * spec.max_ejected_percent / 100);
}

bool record_outcome(OutlierState& state, const OutlierSpec& spec, bool success, TimePoint now, int ejected_now,
                    int pool_size) {
  if (success) {
    state.consecutive_failures = 0;
    return false;
  }
  ++state.consecutive_failures;
  if (state.ejected(now) || state.consecutive_failures < spec.consecutive_failures) return false;
  if (ejected_now >= max_ejected(spec, pool_size)) return false;
  ++state.times_ejected;
  auto length = std::min<Duration>(spec.base_ejection_ms * state.times_ejected, spec.max_ejection_ms);
  state.ejected_until = now + length;
  state.consecutive_failures = 0;
  return true;
}

void RetryBudget::on_request() { tokens_ = std::min(max_tokens_, tokens_ + ratio_); }

bool RetryBudget::try_retry() {
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

} // namespace tandem::policy
