#pragma once
// A completion condition for asio::async_read / async_write that asks for everything left in
// each system call. Asio's own transfer_all caps every read_some / write_some at 64 KiB, so a
// 1.3 MB request body took 21 recv calls in and 21 sendmsg calls out, each with its own trip
// through epoll; the kernel would have taken (or handed over) far more at once.
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <limits>

namespace tandem::http {

struct TransferAll {
  std::size_t operator()(const boost::system::error_code& ec, std::size_t /*transferred*/) const {
    return ec ? 0 : std::numeric_limits<std::size_t>::max();
  }
};

} // namespace tandem::http
