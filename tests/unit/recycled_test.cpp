#include "base/recycled.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace tandem {
namespace {

struct Block : Recycled<Block, 4> {
  std::array<char, 200> bytes{};
};

// Another size: allocated as usual, never handed a Block's storage.
struct BiggerBlock : Block {
  std::array<char, 100> more{};
};

TEST(Recycled, AFreedBlockIsTheNextOneHandedOut) {
  auto first = std::make_unique<Block>();
  const void* where = first.get();
  first.reset();
  auto second = std::make_unique<Block>();
  EXPECT_EQ(second.get(), where);
  second->bytes[199] = 'x';          // the storage is whole
  EXPECT_EQ(second->bytes[0], '\0'); // and the object freshly made
}

TEST(Recycled, KeepsAtMostItsBoundAndHandsEachBlockOutOnce) {
  std::vector<std::unique_ptr<Block>> live;
  live.reserve(10);
  for (int i = 0; i < 10; ++i) live.push_back(std::make_unique<Block>());
  std::set<const void*> freed;
  for (auto& block : live) freed.insert(block.get());
  live.clear(); // four are kept, six go back to the heap
  std::set<const void*> handed_out;
  for (int i = 0; i < 10; ++i) {
    live.push_back(std::make_unique<Block>());
    EXPECT_TRUE(handed_out.insert(live.back().get()).second) << "one block handed out twice";
  }
  int reused = 0;
  for (const void* block : handed_out) reused += freed.count(block) > 0 ? 1 : 0;
  EXPECT_GE(reused, 4); // the kept four at least (the heap may hand back the others too)
}

TEST(Recycled, AnotherSizeUsesTheHeap) {
  auto block = std::make_unique<Block>();
  const void* kept = block.get();
  block.reset();
  {
    auto bigger = std::make_unique<BiggerBlock>();
    EXPECT_NE(static_cast<const void*>(bigger.get()), kept);
    bigger->more[99] = 'y';
    bigger.reset(); // not kept: a later Block must not get a BiggerBlock's storage either way
  }
  auto again = std::make_unique<Block>();
  EXPECT_EQ(again.get(), kept);
}

TEST(Recycled, EachThreadKeepsItsOwn) {
  auto block = std::make_unique<Block>();
  const void* here = block.get();
  block.reset();
  const void* there = nullptr;
  std::thread([&] {
    auto other = std::make_unique<Block>();
    there = other.get();
  }).join();
  EXPECT_NE(there, here);
  auto again = std::make_unique<Block>();
  EXPECT_EQ(again.get(), here);
}

} // namespace
} // namespace tandem
