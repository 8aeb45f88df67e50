#pragma once
// Time enters tandem through this interface so that policy code and tests can run on a
// simulated clock (design.md principle 1).
#include <chrono>
#include <cstdint>

namespace tandem {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;

/// Monotonic time source. Implementations must be cheap; thread-safety is per implementation.
class Clock {
public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint now() const = 0;
};

/// The real monotonic clock. Thread-safe.
class SteadyClock final : public Clock {
public:
  [[nodiscard]] TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

/// A clock that only moves when told to. For tests and the simulator; not thread-safe.
class ManualClock final : public Clock {
public:
  explicit ManualClock(TimePoint start = TimePoint{}) : now_(start) {}
  [[nodiscard]] TimePoint now() const override { return now_; }
  void advance(Duration by) { now_ += by; }
  void set(TimePoint to) { now_ = to; }

private:
  TimePoint now_;
};

inline double to_ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
inline double to_seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

} // namespace tandem
