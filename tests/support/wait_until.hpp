#pragma once
// Waiting on a condition with a deadline (never on a fixed time), shared by unit and
// integration tests.
#include <poll.h>

#include <chrono>
#include <functional>

namespace tandem::testing {

/// True as soon as `condition` holds; false if it still does not after `timeout`. Checks every
/// few milliseconds.
inline bool wait_for_condition(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    ::poll(nullptr, 0, 2);  // the polling interval of the check, not a wait for an event
  }
  return condition();
}

} // namespace tandem::testing
