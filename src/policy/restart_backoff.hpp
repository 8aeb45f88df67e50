#pragma once
// Pure decision: how long to wait before restarting a worker that exited.
#include <chrono>

namespace tandem::policy {

struct RestartBackoff {
  std::chrono::milliseconds first_delay_ms{0};     // a one-off crash restarts at once
  std::chrono::milliseconds base_delay_ms{100};    // then 100 ms, 200 ms, 400 ms, ...
  std::chrono::milliseconds max_delay_ms{10'000};
  std::chrono::milliseconds stable_after_ms{10'000};  // uptime that forgives earlier failures
};

/// `failures_before` counts consecutive failed runs before this exit; `uptime` is how long the
/// run that just ended lasted. Returns the delay and the new consecutive-failure count.
struct RestartDecision {
  std::chrono::milliseconds delay_ms;
  int consecutive_failures;
};
RestartDecision decide_restart(const RestartBackoff& policy, int failures_before,
                               std::chrono::milliseconds uptime);

} // namespace tandem::policy
