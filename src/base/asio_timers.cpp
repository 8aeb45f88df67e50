#include "base/asio_timers.hpp"

#include <boost/asio/steady_timer.hpp>

namespace tandem {

namespace {

/// The Asio timer itself is cancelled too, so that a cancelled wait (a request's deadline, once
/// it was served) does not sit in the reactor's queue until it would have expired.
struct AsioTimerState final : TimerState {
  explicit AsioTimerState(boost::asio::io_context& io, TimePoint at) : timer(io, at) {}
  void cancel() override {
    cancelled = true;
    timer.cancel();
  }
  boost::asio::steady_timer timer;
};

} // namespace

TimerHandle AsioTimers::call_at(TimePoint at, std::function<void()> fn) {
  auto state = std::make_shared<AsioTimerState>(io_, at);
  state->timer.async_wait([state, fn = std::move(fn)](const boost::system::error_code& ec) {
    if (!ec && !state->cancelled) fn();
  });
  return TimerHandle(std::move(state));
}

} // namespace tandem
