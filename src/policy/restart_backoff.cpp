#include "policy/restart_backoff.hpp"

#include <algorithm>

namespace tandem::policy {

RestartDecision decide_restart(const RestartBackoff& policy, int failures_before,
                               std::chrono::milliseconds uptime) {
  int failures = uptime >= policy.stable_after_ms ? 0 : failures_before;
  std::chrono::milliseconds delay = policy.first_delay_ms;
  if (failures > 0) {
    auto scaled = policy.base_delay_ms;
    for (int i = 1; i < failures && scaled < policy.max_delay_ms; ++i) scaled *= 2;
    delay = std::min(scaled, policy.max_delay_ms);
  }
  return {delay, failures + 1};
}

} // namespace tandem::policy
