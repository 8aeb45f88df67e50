#include "sim/traffic.hpp"

#include <random>

namespace tandem::sim {

std::vector<Arrival> poisson_with_bursts(const TrafficSpec& spec, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  // Burst windows first, then arrivals at the rate of whichever window they fall in.
  std::vector<std::pair<double, double>> bursts; // [start, end) in seconds
  const double length_s = to_seconds(spec.length);
  if (spec.burst_rps > 0 && spec.burst_every.count() > 0) {
    std::exponential_distribution<double> gap(1.0 / to_seconds(spec.burst_every));
    double t = gap(rng);
    while (t < length_s) {
      const double end = t + to_seconds(spec.burst_length);
      bursts.emplace_back(t, end);
      t = end + gap(rng);
    }
  }
  std::vector<Arrival> out;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double top_rps = std::max(spec.base_rps, spec.burst_rps);
  if (top_rps <= 0) return out;
  // Thinning: candidates at the highest rate, each kept with the share its window's rate is of it.
  std::exponential_distribution<double> next(top_rps);
  std::size_t burst = 0;
  // NOLINTNEXTLINE(clang-analyzer-security.FloatLoopCounter): a time, not a count
  for (double t = next(rng); t < length_s; t += next(rng)) {
    while (burst < bursts.size() && bursts[burst].second <= t) ++burst;
    const bool in_burst = burst < bursts.size() && bursts[burst].first <= t;
    const double rate = in_burst ? spec.burst_rps : spec.base_rps;
    if (unit(rng) * top_rps >= rate) continue;
    out.push_back({std::chrono::duration_cast<Duration>(std::chrono::duration<double>(t)), spec.endpoint,
                   spec.priority});
  }
  return out;
}

} // namespace tandem::sim
