#include "http/body_budget.hpp"
#include "http/body_recycler.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace tandem::http {
namespace {

constexpr std::size_t kMiB = 1u << 20;

TEST(BodyBudget, AReservationIsReleasedWhenItEnds) {
  Gauge gauge;
  BodyBudget budget(64 * kMiB, &gauge);
  {
    auto reservation = budget.open();
    ASSERT_TRUE(reservation.grow_to(16 * kMiB));
    EXPECT_EQ(reservation.bytes(), 16 * kMiB);
    EXPECT_EQ(budget.in_flight_bytes(), 16 * kMiB);
    EXPECT_EQ(gauge.value(), 16.0 * kMiB);
    ASSERT_TRUE(reservation.grow_to(8 * kMiB)); // smaller: nothing changes
    EXPECT_EQ(budget.in_flight_bytes(), 16 * kMiB);
  }
  EXPECT_EQ(budget.in_flight_bytes(), 0u);
  EXPECT_EQ(gauge.value(), 0.0);
}

TEST(BodyBudget, ALargeBodyOverTheLimitIsRefusedAndChangesNothing) {
  BodyBudget budget(64 * kMiB);
  std::vector<BodyBudget::Reservation> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(budget.open());
    ASSERT_TRUE(held.back().grow_to(16 * kMiB)) << i;
  }
  auto fifth = budget.open();
  EXPECT_FALSE(fifth.grow_to(16 * kMiB));
  EXPECT_FALSE(fifth.grow_to(BodyBudget::kSmallBodyBytes)); // the reserve is for smaller bodies only
  EXPECT_EQ(fifth.bytes(), 0u);
  EXPECT_EQ(budget.in_flight_bytes(), 64 * kMiB);

  held.pop_back(); // one request done: room for exactly one more
  EXPECT_TRUE(fifth.grow_to(16 * kMiB));
  EXPECT_EQ(budget.in_flight_bytes(), 64 * kMiB);
}

TEST(BodyBudget, SmallBodiesUseTheirReserveWhileLargeOnesHoldTheLimit) {
  BodyBudget budget(32 * kMiB);
  auto large = budget.open();
  ASSERT_TRUE(large.grow_to(32 * kMiB));

  constexpr std::size_t small_bytes = BodyBudget::kSmallBodyBytes - 1;
  std::vector<BodyBudget::Reservation> small;
  while (true) {
    auto next = budget.open();
    if (!next.grow_to(small_bytes)) break;
    small.push_back(std::move(next));
  }
  EXPECT_EQ(small.size(), BodyBudget::kSmallReserveBytes / small_bytes);
  EXPECT_LE(budget.in_flight_bytes(), 32 * kMiB + BodyBudget::kSmallReserveBytes);

  // A small body that grows past the small size no longer fits.
  small.pop_back();
  auto growing = budget.open();
  ASSERT_TRUE(growing.grow_to(1024));
  EXPECT_FALSE(growing.grow_to(BodyBudget::kSmallBodyBytes));
  EXPECT_EQ(growing.bytes(), 1024u);
}

TEST(BodyBudget, MovingAReservationMovesItsBytes) {
  BodyBudget budget(4 * kMiB);
  auto first = budget.open();
  ASSERT_TRUE(first.grow_to(kMiB));
  BodyBudget::Reservation second(std::move(first));
  EXPECT_EQ(first.bytes(), 0u); // NOLINT(bugprone-use-after-move): moved-from holds nothing
  EXPECT_EQ(second.bytes(), kMiB);
  first.release();
  EXPECT_EQ(budget.in_flight_bytes(), kMiB);

  auto third = budget.open();
  ASSERT_TRUE(third.grow_to(2 * kMiB));
  second = std::move(third); // the old reservation is released
  EXPECT_EQ(budget.in_flight_bytes(), 2 * kMiB);
  second.release();
  EXPECT_EQ(budget.in_flight_bytes(), 0u);

  BodyBudget::Reservation none;
  EXPECT_FALSE(none.grow_to(1));
}

TEST(BodyBudget, GrantableBytesIsWhatALargeReservationCanStillReach) {
  BodyBudget budget(10 * kMiB);
  auto other = budget.open();
  ASSERT_TRUE(other.grow_to(4 * kMiB));
  auto mine = budget.open();
  ASSERT_TRUE(mine.grow_to(kMiB));
  EXPECT_EQ(budget.grantable_bytes(mine.bytes()), 6 * kMiB);
  EXPECT_TRUE(mine.grow_to(6 * kMiB));
  EXPECT_FALSE(mine.grow_to(6 * kMiB + 1));
}

TEST(BodyRecycler, ASpareLargerThanTheBudgetGrantsIsNotReused) {
  BodyRecycler bodies;
  bodies.give_back(std::string(8 * kMiB, 'x'));
  ASSERT_EQ(bodies.held(), 1u);
  std::string small = bodies.take(kMiB, 2 * kMiB);
  EXPECT_LT(small.capacity(), 2 * kMiB);
  EXPECT_EQ(bodies.held(), 1u);
  std::string reused = bodies.take(kMiB, 8 * kMiB);
  EXPECT_GE(reused.capacity(), 8 * kMiB);
  EXPECT_EQ(bodies.held(), 0u);
}

} // namespace
} // namespace tandem::http
