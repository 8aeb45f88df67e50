#include "base/ids.hpp"

#include <gtest/gtest.h>
#include <cstdio>

#include <array>
#include <set>
#include <string>
#include <vector>

namespace tandem {
namespace {

bool is_lower_hex(const std::string& text) {
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

TEST(IdGenerator, Yields32LowercaseHexDigits) {
  IdGenerator ids(42);
  for (int i = 0; i < 1000; ++i) {
    auto id = ids.next();
    ASSERT_EQ(id.size(), 32u) << id;
    ASSERT_TRUE(is_lower_hex(id)) << id;
    ASSERT_TRUE(is_acceptable_request_id(id)) << id;
  }
}

TEST(IdGenerator, EveryDigitValueAppearsAtEveryPositionInEvenShare) {
  // The digits are written a word at a time: a slip in the nibble spreading or the 'a'-'f'
  // adjustment would leave some value missing or skew it at some position.
  IdGenerator ids(9);
  constexpr int kIds = 16'000;
  std::vector<std::array<int, 16>> counts(16, std::array<int, 16>{});
  char buffer[16];
  for (int i = 0; i < kIds; ++i) {
    ids.fill_hex(buffer, 16);
    for (std::size_t at = 0; at < 16; ++at) {
      const char c = buffer[at];
      ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << int{c};
      ++counts[at][static_cast<std::size_t>(c <= '9' ? c - '0' : c - 'a' + 10)];
    }
  }
  // Expected 1 000 each; a fair 1/16 share stays within 850..1150 with overwhelming odds.
  for (std::size_t at = 0; at < 16; ++at)
    for (std::size_t v = 0; v < 16; ++v)
      EXPECT_NEAR(counts[at][v], kIds / 16.0, 150) << "position " << at << " value " << v;
}

TEST(IdGenerator, SameSeedSameSequence) {
  IdGenerator a(7);
  IdGenerator b(7);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.next(), b.next()) << "at " << i;
}

TEST(IdGenerator, DifferentSeedsDiffer) {
  IdGenerator a(1);
  IdGenerator b(2);
  EXPECT_NE(a.next(), b.next());
}

TEST(IdGenerator, IdsAreDistinct) {
  IdGenerator ids(20261128);
  std::set<std::string> seen;
  for (int i = 0; i < 100'000; ++i) ASSERT_TRUE(seen.insert(ids.next()).second) << "repeat at " << i;
}

TEST(IdGenerator, EveryHexDigitAppearsInEveryPosition) {
  // Catches an id that leaves part of itself constant (e.g. only 64 random bits in 128).
  IdGenerator ids(3);
  std::vector<std::set<char>> per_position(32);
  for (int i = 0; i < 2000; ++i) {
    auto id = ids.next();
    for (std::size_t p = 0; p < id.size(); ++p) per_position[p].insert(id[p]);
  }
  for (std::size_t p = 0; p < per_position.size(); ++p)
    EXPECT_EQ(per_position[p].size(), 16u) << "position " << p;
}

TEST(AcceptableRequestId, AcceptsTheAllowedAlphabet) {
  EXPECT_TRUE(is_acceptable_request_id("a"));
  EXPECT_TRUE(is_acceptable_request_id("req-42"));
  EXPECT_TRUE(is_acceptable_request_id("ABC.def_ghi:jkl-0123456789"));
  EXPECT_TRUE(is_acceptable_request_id("550e8400-e29b-41d4-a716-446655440000"));
  EXPECT_TRUE(is_acceptable_request_id(std::string(128, 'x')));
}

TEST(AcceptableRequestId, RejectsEmptyAndTooLong) {
  EXPECT_FALSE(is_acceptable_request_id(""));
  EXPECT_FALSE(is_acceptable_request_id(std::string(129, 'x')));
}

TEST(AcceptableRequestId, RejectsUnsafeCharacters) {
  for (std::string_view id :
       {"has space", "quote\"d", "single'quote", "new\nline", "cr\rlf", "tab\there", "slash/", "back\\slash",
        "semi;colon", "brace{", "percent%20", "comma,", "eq=", "plus+", "star*", "caf\xc3\xa9"}) {
    EXPECT_FALSE(is_acceptable_request_id(id)) << "accepted \"" << id << "\"";
  }
  EXPECT_FALSE(is_acceptable_request_id(std::string_view("nul\0byte", 8)));
}

} // namespace
} // namespace tandem

namespace tandem {
namespace {

TEST(IdGenerator, TimeOrderedIdsStartWithTheTimeAndSortByIt) {
  IdGenerator ids(7);
  const std::int64_t t = 1'764'340'000'123;  // 2025-11-28 in Unix ms
  auto a = ids.next_time_ordered(t);
  auto b = ids.next_time_ordered(t + 1);
  auto c = ids.next_time_ordered(t + 1);
  ASSERT_EQ(a.size(), 32u);
  for (char ch : a) EXPECT_TRUE((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) << a;
  char expected[13];
  std::snprintf(expected, sizeof expected, "%012llx", static_cast<unsigned long long>(t));
  EXPECT_EQ(a.substr(0, 12), expected);
  EXPECT_LT(a, b);
  EXPECT_NE(b, c);  // same millisecond, different random part
  EXPECT_TRUE(is_acceptable_request_id(a));
}

} // namespace
} // namespace tandem
