#include "policy/router.hpp"

#include <array>
#include <vector>

namespace tandem::policy {
namespace {

std::optional<std::size_t> pick_among(std::span<const WorkerLoad> workers, std::uint64_t random,
                                      bool allow_avoided) {
  // Pools are small (tens of workers), so one pass to count and a second to index is cheap
  // and allocation-free.
  std::size_t eligible = 0;
  auto is_eligible = [&](const WorkerLoad& w) {
    return w.ready && w.in_flight < w.max_concurrency && (allow_avoided || !w.avoid);
  };
  for (const auto& w : workers) eligible += is_eligible(w) ? 1 : 0;
  if (eligible == 0) return std::nullopt;
  auto nth_eligible = [&](std::size_t n) {
    for (std::size_t i = 0; i < workers.size(); ++i)
      if (is_eligible(workers[i]) && n-- == 0) return i;
    return workers.size();
  };
  std::size_t first = nth_eligible(static_cast<std::size_t>(random % eligible));
  if (eligible == 1) return first;
  std::size_t offset = 1 + static_cast<std::size_t>((random >> 32) % (eligible - 1));
  std::size_t second = nth_eligible((static_cast<std::size_t>(random % eligible) + offset) % eligible);
  return workers[second].in_flight < workers[first].in_flight ? second : first;
}

} // namespace

std::optional<std::size_t> pick_worker(std::span<const WorkerLoad> workers, std::uint64_t random) {
  if (auto pick = pick_among(workers, random, false)) return pick;
  return pick_among(workers, random, true);
}

} // namespace tandem::policy
