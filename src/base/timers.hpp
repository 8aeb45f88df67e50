#pragma once
// The engine's timers, beside its clock: "call this at that time". The live implementation
// arms Asio timers; the simulator keeps them in its event queue and jumps the clock from one to
// the next, so the same pool and controller code runs on either.
#include "base/clock.hpp"

#include <functional>
#include <memory>

namespace tandem {

/// What a Timers implementation keeps of one timer.
struct TimerState {
  virtual ~TimerState() = default;
  TimerState() = default;
  TimerState(const TimerState&) = delete;
  TimerState& operator=(const TimerState&) = delete;
  /// Marks it cancelled; an implementation may also release what it holds for it.
  virtual void cancel() { cancelled = true; }
  bool cancelled = false;
};

/// A timer that was set. cancel() before it fires and it never does; dropping the handle does
/// not cancel it.
class TimerHandle {
public:
  TimerHandle() = default;
  explicit TimerHandle(std::shared_ptr<TimerState> state) : state_(std::move(state)) {}
  void cancel() {
    if (state_) state_->cancel();
    state_.reset();
  }

private:
  std::shared_ptr<TimerState> state_;
};

class Timers {
public:
  virtual ~Timers() = default;
  [[nodiscard]] virtual const Clock& clock() const = 0;
  /// Calls `fn` on the engine's thread at `at` (on a later turn, never from inside this call;
  /// at once if `at` has passed) unless the handle is cancelled first.
  virtual TimerHandle call_at(TimePoint at, std::function<void()> fn) = 0;
  TimerHandle call_after(Duration delay, std::function<void()> fn) {
    return call_at(clock().now() + delay, std::move(fn));
  }
};

} // namespace tandem
