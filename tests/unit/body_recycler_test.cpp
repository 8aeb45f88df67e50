#include "http/body_recycler.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace tandem::http {
namespace {

TEST(BodyRecycler, ALargeBodyGivenBackIsReusedWithoutGrowing) {
  BodyRecycler bodies;
  std::string first = bodies.take(1u << 20);
  ASSERT_EQ(first.size(), 1u << 20);
  const auto memory = reinterpret_cast<std::uintptr_t>(first.data());
  bodies.give_back(std::move(first));
  EXPECT_EQ(bodies.held(), 1u);
  EXPECT_GE(bodies.held_bytes(), 1u << 20);

  // A shorter body takes the same memory, truncated to its length.
  std::string second = bodies.take(700u << 10);
  EXPECT_EQ(second.size(), 700u << 10);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(second.data()), memory);
  EXPECT_EQ(bodies.held(), 0u);
  EXPECT_EQ(bodies.held_bytes(), 0u);
}

TEST(BodyRecycler, SmallBodiesAreNeitherTakenFromNorKept) {
  BodyRecycler bodies;
  bodies.give_back(std::string(BodyRecycler::kMinBytes - 1, 'x'));
  EXPECT_EQ(bodies.held(), 0u);
  bodies.give_back(std::string(BodyRecycler::kMinBytes, 'x'));
  ASSERT_EQ(bodies.held(), 1u);
  // A small request does not use up the large spare.
  EXPECT_EQ(bodies.take(100).size(), 100u);
  EXPECT_EQ(bodies.held(), 1u);
}

TEST(BodyRecycler, HoldsAtMostItsCountAndBytes) {
  BodyRecycler bodies;
  for (std::size_t i = 0; i < BodyRecycler::kMaxSpare + 3; ++i) bodies.give_back(std::string(1u << 20, 'x'));
  EXPECT_EQ(bodies.held(), BodyRecycler::kMaxSpare);
  bodies.give_back(std::string(BodyRecycler::kMaxBodyBytes + 1, 'x')); // too large to keep at all
  EXPECT_EQ(bodies.held(), BodyRecycler::kMaxSpare);

  BodyRecycler big;
  const std::size_t each = BodyRecycler::kMaxBodyBytes;
  for (int i = 0; i < 4; ++i) big.give_back(std::string(each, 'x'));
  EXPECT_LE(big.held_bytes(), BodyRecycler::kMaxSpareBytes);
  EXPECT_EQ(big.held(), BodyRecycler::kMaxSpareBytes / each);
}

} // namespace
} // namespace tandem::http
