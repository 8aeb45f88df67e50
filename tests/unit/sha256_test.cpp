#include "base/sha256.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace tandem {
namespace {

// Test vectors from FIPS 180-2 (appendix B) and the empty message.
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // A NUL byte is data, not the end of the input.
  EXPECT_EQ(sha256_hex(std::string_view("\0", 1)),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

TEST(Sha256, OneShotCallsDoNotCarryStateOver) {
  // sha256_hex reuses one context per thread; each call must start from the initial state.
  const std::string first = sha256_hex("abc");
  (void)sha256_hex(std::string(1000, 'x'));
  EXPECT_EQ(sha256_hex("abc"), first);
}

TEST(Sha256, IncrementalMatchesOneShot) {
  std::mt19937_64 random(1);
  for (int round = 0; round < 200; ++round) {
    std::string bytes(random() % 300, '\0');
    for (auto& byte : bytes) byte = static_cast<char>(random());
    Sha256 incremental;
    std::size_t at = 0;
    while (at < bytes.size()) {
      const std::size_t chunk = std::min<std::size_t>(bytes.size() - at, random() % 70);
      incremental.update(std::string_view(bytes).substr(at, chunk));
      at += chunk;
    }
    const std::string digest = incremental.hex_digest();
    ASSERT_EQ(digest, sha256_hex(bytes)) << "round " << round;
    ASSERT_EQ(digest.size(), 64u);
    ASSERT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos) << digest;
  }
}

TEST(Sha256, ConcurrentThreadsGetTheirOwnContexts) {
  const std::string expected = sha256_hex("concurrent");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (std::size_t t = 0; t < mismatches.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        if (sha256_hex("concurrent") != expected) ++mismatches[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int count : mismatches) EXPECT_EQ(count, 0);
}

} // namespace
} // namespace tandem
