#include "policy/router.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace tandem::policy {
namespace {

WorkerLoad ready(int in_flight, int max_concurrency = 4) {
  return WorkerLoad{
      .ready = true, .avoid = false, .in_flight = in_flight, .max_concurrency = max_concurrency};
}

WorkerLoad not_ready() {
  return WorkerLoad{.ready = false, .avoid = false, .in_flight = 0, .max_concurrency = 4};
}

WorkerLoad avoided(int in_flight = 0) {
  auto w = ready(in_flight);
  w.avoid = true;
  return w;
}

// Runs pick_worker over many random values and records every index it returns.
std::set<std::size_t> picks_over_randoms(const std::vector<WorkerLoad>& workers, int draws = 2000) {
  std::mt19937_64 rng(12345);
  std::set<std::size_t> picked;
  for (int i = 0; i < draws; ++i) {
    auto pick = pick_worker(workers, rng());
    EXPECT_TRUE(pick.has_value());
    if (pick) picked.insert(*pick);
  }
  return picked;
}

TEST(PickWorker, NoWorkers) {
  std::vector<WorkerLoad> none;
  EXPECT_FALSE(pick_worker(none, 0).has_value());
}

TEST(PickWorker, NoneEligible) {
  std::vector<WorkerLoad> workers = {not_ready(), ready(4, 4), ready(9, 1)};
  for (std::uint64_t r : {0ull, 1ull, 0xffffffffffffffffull, 0x123456789abcdefull})
    EXPECT_FALSE(pick_worker(workers, r).has_value());
}

TEST(PickWorker, SingleEligibleWorkerIsAlwaysPicked) {
  std::vector<WorkerLoad> workers = {not_ready(), ready(4, 4), ready(3, 4), not_ready()};
  EXPECT_EQ(picks_over_randoms(workers), std::set<std::size_t>{2});
}

TEST(PickWorker, NeverPicksNotReadyOrFullWorkers) {
  // Equal loads among the eligible ones, so that p2c may return any of them.
  std::vector<WorkerLoad> workers = {not_ready(), ready(1),    ready(4, 4), ready(1),
                                     not_ready(), ready(2, 2), ready(1)};
  EXPECT_EQ(picks_over_randoms(workers), (std::set<std::size_t>{1, 3, 6}));
}

TEST(PickWorker, TwoEligibleAlwaysPicksTheLessLoaded) {
  std::vector<WorkerLoad> workers = {ready(3), not_ready(), ready(1)};
  EXPECT_EQ(picks_over_randoms(workers), std::set<std::size_t>{2});
  std::vector<WorkerLoad> reversed = {ready(1), ready(4, 4), ready(3)};
  EXPECT_EQ(picks_over_randoms(reversed), std::set<std::size_t>{0});
}

TEST(PickWorker, TwoEligibleWithEqualLoadUsesBoth) {
  std::vector<WorkerLoad> workers = {ready(2), ready(2)};
  EXPECT_EQ(picks_over_randoms(workers), (std::set<std::size_t>{0, 1}));
}

TEST(PickWorker, MostLoadedOfManyIsNeverPicked) {
  // With two distinct candidates, the strictly most loaded worker always loses.
  std::vector<WorkerLoad> workers = {ready(0), ready(1), ready(3), ready(2)};
  auto picked = picks_over_randoms(workers);
  EXPECT_EQ(picked.count(2), 0u);
  EXPECT_EQ(picked, (std::set<std::size_t>{0, 1, 3}));
}

TEST(PickWorker, AvoidedWorkerOnlyWhenItIsTheOnlyEligible) {
  std::vector<WorkerLoad> workers = {avoided(0), ready(3)};
  EXPECT_EQ(picks_over_randoms(workers), std::set<std::size_t>{1})
      << "an idle avoided worker loses to a busier one";

  std::vector<WorkerLoad> only_avoided = {not_ready(), avoided(2), ready(4, 4)};
  EXPECT_EQ(picks_over_randoms(only_avoided), std::set<std::size_t>{1});

  std::vector<WorkerLoad> avoided_but_full = {avoided(4), ready(4, 4)};
  EXPECT_FALSE(pick_worker(avoided_but_full, 99).has_value());
}

TEST(PickWorker, SeveralAvoidedFallBackToLeastLoadedOfThem) {
  std::vector<WorkerLoad> workers = {avoided(3), avoided(1), not_ready()};
  EXPECT_EQ(picks_over_randoms(workers), std::set<std::size_t>{1});
}

TEST(PickWorker, IsAPureFunctionOfItsInputs) {
  std::vector<WorkerLoad> workers = {ready(0), ready(1), ready(0), ready(2), ready(1)};
  std::mt19937_64 rng(777);
  for (int i = 0; i < 1000; ++i) {
    auto r = rng();
    ASSERT_EQ(pick_worker(workers, r), pick_worker(workers, r));
  }
}

TEST(PickWorker, SpreadsAcrossEquallyLoadedWorkers) {
  std::vector<WorkerLoad> workers(8, ready(1));
  std::vector<int> counts(workers.size(), 0);
  std::mt19937_64 rng(5);
  const int draws = 80'000;
  for (int i = 0; i < draws; ++i) ++counts[pick_worker(workers, rng()).value()];
  for (std::size_t i = 0; i < counts.size(); ++i) {
    EXPECT_GT(counts[i], draws / 8 * 9 / 10) << "worker " << i;
    EXPECT_LT(counts[i], draws / 8 * 11 / 10) << "worker " << i;
  }
}

} // namespace
} // namespace tandem::policy
