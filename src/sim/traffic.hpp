#pragma once
// Request arrivals for a simulation or a replay: Poisson at a base rate, with bursts at a
// higher rate that start at random (Poisson too) and last a fixed time. Seeded.
#include "base/clock.hpp"
#include "engine/inference.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::sim {

/// One request of a trace: when it arrives, counted from the trace's start, and where.
struct Arrival {
  Duration at{0};
  std::string endpoint;
  engine::Priority priority = engine::Priority::normal;
};

struct TrafficSpec {
  std::string endpoint;
  Duration length{std::chrono::minutes(1)};
  double base_rps = 5;
  double burst_rps = 0;                           // during a burst, instead of base_rps; 0: no bursts
  Duration burst_every{std::chrono::minutes(10)}; // mean time between burst starts
  Duration burst_length{std::chrono::seconds(30)};
  engine::Priority priority = engine::Priority::normal; // of every request
};

/// Arrivals in time order.
std::vector<Arrival> poisson_with_bursts(const TrafficSpec& spec, std::uint64_t seed);

} // namespace tandem::sim
