#pragma once
// Pure cost metering for one tier pool. The pool's cost accrues with time (serverless: every
// live worker, cold start and idle included, per second; dedicated: every reserved replica,
// prorated per second while the server runs). Each request is attributed its busy share
// (time on the worker x price / requests sharing that worker) plus an idle share of the pool
// cost that no busy share covered (idle and cold time).
//
// The idle cost of each window is handed out during the next one, as an equal share per
// request estimated before its requests are known: what there is to hand out / the requests of
// the window just ended (at least one). What a window does not hand out (it had fewer requests
// than the one before) is carried into the next, at most one window's cost of it and never
// across a window without requests, so a lull followed by a burst hands the lull's last window
// to the first requests of the burst, not to each of them. Everything attributed never exceeds
// what was metered, and no request's idle share takes it above one window of the pool's cost.
#include "base/clock.hpp"

namespace tandem::policy {

class CostMeter {
public:
  /// `window` is how often the idle/cold overhead per request is re-estimated. Windows are laid
  /// end to end along the metered time (the sum of the `elapsed` given to accrue()).
  CostMeter(double price_per_second, Duration window = std::chrono::seconds(10)) :
      price_per_second_(price_per_second), window_(window) {}

  /// The pool ran `workers` billable workers for `elapsed`, the time since the previous call
  /// (0 workers still moves the windows on). Returns the dollars accrued.
  double accrue(Duration elapsed, double workers);
  /// A request held a worker for `busy`, sharing it with `sharing` requests (itself included).
  /// Returns the dollars attributed to it: never more than the metered cost not yet attributed,
  /// and its idle share never more than one window of the pool's cost.
  double attribute(Duration busy, int sharing);

  [[nodiscard]] double total_dollars() const { return total_; }
  [[nodiscard]] double attributed_dollars() const { return attributed_total_; }
  /// The idle share the next request of this window would get at most.
  [[nodiscard]] double overhead_per_request() const { return idle_share_; }
  /// What is left of the previous window's unattributed cost to hand out in this window.
  [[nodiscard]] double overhead_left() const { return idle_left_; }
  [[nodiscard]] double price_per_second() const { return price_per_second_; }

private:
  void close_window();

  double price_per_second_;
  Duration window_;
  double total_ = 0;
  double attributed_total_ = 0;
  // The current window: metered time into it, its cost and what its requests were given.
  Duration window_elapsed_{0};
  double window_cost_ = 0;
  double window_busy_cost_ = 0;
  long window_requests_ = 0;
  // From the last complete window: its cost, the idle share per request and what is left of it.
  double last_window_cost_ = 0;
  double idle_share_ = 0;
  double idle_left_ = 0;
};

} // namespace tandem::policy
