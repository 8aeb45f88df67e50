#pragma once
// Pure load-balancing decision inside one pool (snapshot in, decision out; no I/O, no clock): least outstanding
// requests with power-of-two-choices. No clock, no I/O; randomness comes in as a value.
#include <cstdint>
#include <optional>
#include <span>

namespace tandem::policy {

struct WorkerLoad {
  bool ready = false;
  bool avoid = false;  // e.g. the worker that just failed this request
  int in_flight = 0;
  int max_concurrency = 1;
};

/// Picks a ready worker with spare concurrency. Two distinct candidates are drawn from the
/// eligible ones using `random`, and the one with fewer requests in flight wins (ties: the
/// first drawn). Workers marked `avoid` are used only when nothing else is eligible.
/// Returns nullopt when no worker has spare capacity.
std::optional<std::size_t> pick_worker(std::span<const WorkerLoad> workers, std::uint64_t random);

} // namespace tandem::policy
