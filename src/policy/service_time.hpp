#pragma once
// The router's estimate of a tier's service time (time on a worker per request): a moving
// average of what the tier's workers took, with a prior until they have taken enough.

namespace tandem::policy {

class ServiceTimeEstimate {
public:
  /// Answers measured before the average alone is trusted. Until then the estimate is never
  /// below the prior: one fast first answer must not open the gates to a queue the workers
  /// cannot drain before the deadline.
  static constexpr int kSettledSamples = 8;

  void observe(double ms);
  /// The estimate given `prior_ms`: what the workers reported of themselves, or the other
  /// tier's measurement, or a fixed guess.
  [[nodiscard]] double estimate_ms(double prior_ms) const;
  [[nodiscard]] bool measured() const { return samples_ > 0; }
  [[nodiscard]] double mean_ms() const { return mean_ms_; }

private:
  double mean_ms_ = 0;
  int samples_ = 0;
};

} // namespace tandem::policy
