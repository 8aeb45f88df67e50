#pragma once
// Pure autoscaling decision for a serverless pool (snapshot and time in), after Knative's KPA
// with Modal's knobs: desired = ceil(average concurrency / target) over a stable window, a
// shorter panic window that reacts to bursts and never scales down while panicking, `buffer`
// extra warm workers while there is traffic, scale-to-`min` (zero by default) once the pool
// has seen no traffic for `scaledown_window`, all bounded by [min, max].
//
// The caller feeds one observation per tick (and may feed extra ones when a request arrives
// to an empty pool, which is how scale-from-zero reacts at once). Time comes in as a value.
#include "base/clock.hpp"

#include <chrono>
#include <deque>

namespace tandem::policy {

struct AutoscalerSpec {
  int min_workers = 0;
  int max_workers = 4;
  int buffer_workers = 0;
  double target_concurrency = 2.0;  // requests per worker the autoscaler aims for
  std::chrono::milliseconds stable_window_ms{60'000};
  std::chrono::milliseconds panic_window_ms{6'000};
  double panic_threshold = 2.0;  // panic when demand >= threshold x ready capacity
  std::chrono::milliseconds scaledown_window_ms{60'000};
};

struct AutoscalerObservation {
  TimePoint now{};
  double concurrency = 0;  // average in-flight + queued requests since the last observation
  double instant_demand = 0;  // in-flight + queued right now (reacts before averages move)
  int arrivals = 0;        // requests that arrived since the last observation
  int ready_workers = 0;
  int live_workers = 0;    // starting + ready
};

struct AutoscalerDecision {
  int desired_workers = 0;
  bool panic = false;
  double stable_concurrency = 0;
  double panic_concurrency = 0;
};

/// Keeps the bounded history of observations the windows need. Not thread-safe.
class Autoscaler {
public:
  explicit Autoscaler(AutoscalerSpec spec) : spec_(spec) {}
  AutoscalerDecision observe(const AutoscalerObservation& observation);

private:
  struct Sample {
    TimePoint at;
    double concurrency;
  };
  double window_average(TimePoint now, std::chrono::milliseconds window) const;

  AutoscalerSpec spec_;
  // Pruned to the longer of the stable and scaledown windows. The gateway rate-limits the
  // extra observations, so this holds at most a few thousand samples.
  std::deque<Sample> samples_;
  bool panicking_ = false;
  TimePoint panic_since_{};
  TimePoint last_traffic_{};
  bool seen_traffic_ = false;
  int last_base_ = 0;  // last demand-driven count, before buffer and min
  struct RecentBase {
    TimePoint at;
    int base;
  };
  std::deque<RecentBase> recent_bases_;  // the scaledown window's decisions, for the hold
};

} // namespace tandem::policy
