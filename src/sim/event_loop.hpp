#pragma once
// The simulator's time: a discrete-event loop that is the engine's clock and timers. Between
// timers it runs what is ready on the io_context (coroutines resuming, posted events); then it
// jumps the clock to the next timer. Nothing waits for real time, so an hour of traffic runs in
// seconds, and one seed gives the same run every time (one thread, events in time order, ties
// in the order they were set).
#include "base/timers.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <queue>
#include <vector>

namespace tandem::sim {

class EventLoop final : public Timers {
public:
  /// The simulated clock starts at `start` (read as Unix time by unix_ns()).
  explicit EventLoop(boost::asio::io_context& io, TimePoint start = default_start());
  [[nodiscard]] const Clock& clock() const override { return clock_; }
  TimerHandle call_at(TimePoint at, std::function<void()> fn) override;
  /// Runs events in time order until the next one is after `end` (the clock then reads `end`).
  void run_until(TimePoint end);
  /// Runs until `done()` holds or `limit` is reached; whether it held.
  bool run_until(const std::function<bool()>& done, TimePoint limit);
  [[nodiscard]] TimePoint now() const { return clock_.now(); }
  /// Timers fired so far (cancelled ones not counted).
  [[nodiscard]] std::uint64_t fired() const { return fired_; }
  /// 2026-01-01T00:00:00Z, so that ids and audit times made from the clock look like times.
  static TimePoint default_start() { return TimePoint(std::chrono::seconds(1'767'225'600)); }

private:
  struct Event {
    TimePoint at;
    std::uint64_t sequence;
    std::shared_ptr<TimerState> state;
    std::function<void()> fn;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.at != b.at ? a.at > b.at : a.sequence > b.sequence;
    }
  };
  /// Runs what is ready at this instant; then the next timer due by `end`, if any.
  bool step(TimePoint end);

  boost::asio::io_context& io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> keep_running_;
  ManualClock clock_;
  std::priority_queue<Event, std::vector<Event>, Later> queue_;
  std::uint64_t sequence_ = 0;
  std::uint64_t fired_ = 0;
};

} // namespace tandem::sim
