#include "sim/event_loop.hpp"

namespace tandem::sim {

EventLoop::EventLoop(boost::asio::io_context& io, TimePoint start) :
    io_(io), keep_running_(boost::asio::make_work_guard(io)), clock_(start) {}

TimerHandle EventLoop::call_at(TimePoint at, std::function<void()> fn) {
  auto state = std::make_shared<TimerState>();
  // Never before now: a timer set for the past fires on the next turn, as a live one would.
  queue_.push({std::max(at, clock_.now()), ++sequence_, state, std::move(fn)});
  return TimerHandle(std::move(state));
}

bool EventLoop::step(TimePoint end) {
  io_.poll();
  while (!queue_.empty() && queue_.top().state->cancelled) queue_.pop();
  if (queue_.empty() || queue_.top().at > end) return false;
  // Moved out before pop(): the top is const only so that its key is not changed in place.
  Event next = std::move(const_cast<Event&>(queue_.top())); // NOLINT(cppcoreguidelines-pro-type-const-cast)
  queue_.pop();
  clock_.set(next.at);
  ++fired_;
  next.fn();
  return true;
}

void EventLoop::run_until(TimePoint end) {
  while (step(end)) {
  }
  if (end > clock_.now()) clock_.set(end);
  io_.poll();
}

bool EventLoop::run_until(const std::function<bool()>& done, TimePoint limit) {
  for (;;) {
    io_.poll();
    if (done()) return true;
    if (!step(limit)) break;
  }
  io_.poll();
  return done();
}

} // namespace tandem::sim
