#include "base/io_inbox.hpp"

#include <boost/asio/buffer.hpp>

#include <stdexcept>
#include <string>

#include <cerrno>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

namespace tandem {

namespace {
int make_event_fd() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  return fd;
}
} // namespace

IoInbox::IoInbox(boost::asio::io_context& io) : event_fd_(make_event_fd()), descriptor_(io, event_fd_) { watch(); }

IoInbox::~IoInbox() {
  boost::system::error_code ignored;
  descriptor_.close(ignored);  // closes event_fd_ too
}

void IoInbox::post(std::function<void()> work) {
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(std::move(work));
  }
  const std::uint64_t one = 1;
  // EAGAIN only when the counter is about to overflow: the io thread is then woken already.
  [[maybe_unused]] const auto written = ::write(event_fd_, &one, sizeof one);
}

void IoInbox::watch() {
  descriptor_.async_read_some(boost::asio::buffer(&counter_, sizeof counter_),
                              [this](const boost::system::error_code& ec, std::size_t) {
                                if (ec == boost::asio::error::operation_aborted ||
                                    ec == boost::asio::error::bad_descriptor)
                                  return;
                                run_pending();
                                watch();
                              });
}

void IoInbox::run_pending() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(pending_);
  }
  for (auto& work : batch) work();
}

} // namespace tandem
