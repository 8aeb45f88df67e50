#pragma once
// Pure cost metering for one tier pool. The pool's cost accrues with time (serverless: every
// live worker, cold start and idle included, per second; dedicated: every reserved replica,
// prorated per second while the server runs). Each request is attributed its busy share
// (time on the worker x price / requests sharing that worker) plus an equal share of the pool
// cost no request was attributed during the previous window (idle and cold time).
#include "core/clock.hpp"

namespace tandem::policy {

class CostMeter {
public:
  /// `window` is how often the idle/cold overhead per request is re-estimated.
  CostMeter(double price_per_second, Duration window = std::chrono::seconds(10))
      : price_per_second_(price_per_second), window_(window) {}

  /// The pool ran `workers` billable workers for `elapsed`. Returns the dollars accrued.
  double accrue(Duration elapsed, double workers);
  /// A request held a worker for `busy`, sharing it with `sharing` requests (itself included),
  /// finishing at `now`. Returns the dollars attributed to it.
  double attribute(TimePoint now, Duration busy, int sharing);

  [[nodiscard]] double total_dollars() const { return total_; }
  [[nodiscard]] double attributed_dollars() const { return attributed_total_; }
  [[nodiscard]] double overhead_per_request() const { return overhead_per_request_; }
  [[nodiscard]] double price_per_second() const { return price_per_second_; }

private:
  void roll_window(TimePoint now);

  double price_per_second_;
  Duration window_;
  double total_ = 0;
  double attributed_total_ = 0;
  // The current window.
  bool window_started_ = false;
  TimePoint window_start_{};
  double window_cost_ = 0;
  double window_busy_cost_ = 0;
  long window_requests_ = 0;
  double overhead_per_request_ = 0;  // from the last complete window
};

} // namespace tandem::policy
