#pragma once
// Hands work from other threads to the io thread. The io_context runs without locks
// (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE: one thread does everything), so no other thread may
// call post() or dispatch() on it. The inbox keeps the functions under its own mutex and wakes
// the io thread through an eventfd that the io thread's reactor watches: the other thread only
// writes to a file descriptor and never touches Asio's state.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace tandem {

class IoInbox {
public:
  /// Created and destroyed on the io thread; starts watching at once.
  explicit IoInbox(boost::asio::io_context& io);
  ~IoInbox();
  IoInbox(const IoInbox&) = delete;
  IoInbox& operator=(const IoInbox&) = delete;

  /// Any thread: `work` runs on the io thread, in the order posted. Work posted after the
  /// io_context stopped is dropped with the inbox.
  void post(std::function<void()> work);

private:
  void watch();
  void run_pending();

  std::mutex mutex_;
  std::vector<std::function<void()>> pending_;
  int event_fd_ = -1;
  boost::asio::posix::stream_descriptor descriptor_;
  std::uint64_t counter_ = 0;  // the eventfd's value, read by the io thread
};

} // namespace tandem
