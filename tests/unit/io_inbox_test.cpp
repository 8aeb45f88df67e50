// Work handed to a lock-free io_context from other threads runs on the io thread, all of it, in
// each thread's order, while the io thread is busy with its own timers.
#include "base/io_inbox.hpp"

#include <boost/asio.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace tandem {
namespace {

TEST(IoInbox, WorkFromManyThreadsRunsOnTheIoThreadInOrder) {
  boost::asio::io_context io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE);
  IoInbox inbox(io);
  constexpr int kThreads = 4;
  constexpr int kEach = 20'000;
  std::vector<int> last_seen(kThreads, -1);
  int ran = 0;
  bool out_of_order = false;
  bool wrong_thread = false;
  std::thread::id io_thread;
  // The io thread keeps its reactor busy with a timer of its own meanwhile.
  boost::asio::steady_timer ticker(io);
  std::function<void()> tick = [&] {
    ticker.expires_after(std::chrono::microseconds(50));
    ticker.async_wait([&](const boost::system::error_code& ec) {
      if (!ec && ran < kThreads * kEach) tick();
    });
  };
  tick();
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t)
    producers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i)
        inbox.post([&, t, i] {
          if (std::this_thread::get_id() != io_thread) wrong_thread = true;
          if (i != last_seen[static_cast<std::size_t>(t)] + 1) out_of_order = true;
          last_seen[static_cast<std::size_t>(t)] = i;
          if (++ran == kThreads * kEach) io.stop();
        });
    });
  std::thread runner([&] {
    io_thread = std::this_thread::get_id();
    io.run();
  });
  for (auto& p : producers) p.join();
  runner.join();
  EXPECT_EQ(ran, kThreads * kEach);
  EXPECT_FALSE(out_of_order);
  EXPECT_FALSE(wrong_thread);
}

} // namespace
} // namespace tandem
