// One server per state directory: a second `tandem serve` on a directory in use refuses to start
// (before it reads anything) and names the holder; the lock goes with the holder's process.
#include "integration/harness.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <stdexcept>

namespace tandem::testing {
namespace {

TEST(StateLockTest, ASecondServerOnTheSameStateRefusesAndNamesTheHolder) {
  const auto dir = make_temp_dir();
  {
    ServerProcess first(digits_endpoint(1), "", dir);
    ASSERT_TRUE(first.wait_ready(1));
    std::string failure;
    try {
      ServerProcess second(digits_endpoint(1), "", dir);
    } catch (const std::runtime_error& e) {
      failure = e.what();
    }
    ASSERT_FALSE(failure.empty()) << "a second server started on a state directory in use";
    EXPECT_NE(failure.find("is in use by another tandem serve (pid " + std::to_string(first.pid()) + ")"),
              std::string::npos)
        << failure;
    // The refused start touched nothing: the first server still serves.
    auto rows = load_heldout();
    EXPECT_EQ(first.client().post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 200);
    // Killed outright, the holder leaves no stale lock behind.
    first.stop(SIGKILL);
  }
  ServerProcess third(digits_endpoint(1), "", dir);
  EXPECT_TRUE(third.wait_ready(1));
  third.stop(SIGTERM);
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace tandem::testing
