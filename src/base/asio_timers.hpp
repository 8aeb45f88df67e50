#pragma once
// Timers on an io_context and the steady clock: what the live server runs on.
#include "base/timers.hpp"

#include <boost/asio/io_context.hpp>

namespace tandem {

class AsioTimers final : public Timers {
public:
  /// `clock` must read the steady clock's timeline (SteadyClock), which Asio's timers wait on.
  AsioTimers(boost::asio::io_context& io, const Clock& clock) : io_(io), clock_(clock) {}
  [[nodiscard]] const Clock& clock() const override { return clock_; }
  TimerHandle call_at(TimePoint at, std::function<void()> fn) override;

private:
  boost::asio::io_context& io_;
  const Clock& clock_;
};

} // namespace tandem
