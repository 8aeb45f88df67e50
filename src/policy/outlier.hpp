#pragma once
// Pure outlier detection per worker, after Envoy's: a worker that fails `consecutive_failures`
// requests in a row is ejected from load balancing for base_ejection x (times ejected so far),
// capped; never more than max_ejected_percent of a pool at once (at least one worker may be).
#include "base/clock.hpp"

#include <chrono>

namespace tandem::policy {

struct OutlierSpec {
  int consecutive_failures = 5;
  std::chrono::milliseconds base_ejection_ms{30'000};
  std::chrono::milliseconds max_ejection_ms{300'000};
  int max_ejected_percent = 50;
};

struct OutlierState {
  int consecutive_failures = 0;
  int times_ejected = 0;
  TimePoint ejected_until{};
  [[nodiscard]] bool ejected(TimePoint now) const { return now < ejected_until; }
};

/// How many of `pool_size` workers may be ejected at once.
int max_ejected(const OutlierSpec& spec, int pool_size);

/// Records one request's outcome. Returns true when this outcome ejects the worker;
/// `ejected_now` is how many of its pool are ejected at this moment.
bool record_outcome(OutlierState& state, const OutlierSpec& spec, bool success, TimePoint now,
                    int ejected_now, int pool_size);

/// Retry budget (Finagle/Envoy style): each request deposits `ratio` of a retry, each retry
/// withdraws one. It starts with `initial_tokens` so that a quiet endpoint can retry at once;
/// a ratio of 0 means no retries at all.
class RetryBudget {
public:
  explicit RetryBudget(double ratio = 0.2, double initial_tokens = 10, double max_tokens = 100)
      : ratio_(ratio), tokens_(ratio > 0 ? initial_tokens : 0), max_tokens_(max_tokens) {}
  void on_request();
  /// Takes a retry token if one is left.
  bool try_retry();
  [[nodiscard]] double tokens() const { return tokens_; }

private:
  double ratio_;
  double tokens_;
  double max_tokens_;
};

} // namespace tandem::policy
