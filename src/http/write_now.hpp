#pragma once
// Writing without an asynchronous operation when the kernel takes every byte at once, as it
// nearly always does for a reply or a request to a worker. An async_write that completes at
// once still costs an operation object, a post to the scheduler (which then polls epoll before
// running it) and a coroutine resumption: about 1 000 instructions and a system call, twice per
// proxied request. What the kernel does not take now is left for async_write.
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>

namespace tandem::http {

/// One non-blocking send of `buffers`; returns the bytes the kernel took, 0 when it had no
/// room. `socket` must be in non-blocking mode (socket.non_blocking(true)), or this could block.
/// Errors other than "no room" go to `ec`.
template <typename ConstBufferSequence>
std::size_t write_now(boost::asio::ip::tcp::socket& socket, const ConstBufferSequence& buffers,
                      boost::system::error_code& ec) {
  const std::size_t written = socket.write_some(buffers, ec);
  if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
    ec = {};
    return 0;
  }
  return written;
}

} // namespace tandem::http
