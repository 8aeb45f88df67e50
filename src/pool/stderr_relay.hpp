#pragma once
// A worker's stderr, relayed to the gateway's own stderr line by line (so the lines of several
// workers never interleave mid-line, and the log reads as it did when workers wrote to it
// directly), keeping the last line that reads as an error: the reason a start failed.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::pool {

/// What a stderr line says went wrong, or nullopt when it is not an error: a JSON log line
/// (the reference worker's) is an error at level error or critical, and its `msg` is the text;
/// any other non-empty line (a custom command's) counts as it is. At most 300 characters.
std::optional<std::string> error_text_of(std::string_view line);

/// Reads `fd` (owned, closed at the end) until end of file, writing each line to `out_fd`.
/// `on_error` gets the text of each error line; `on_end` the last one (empty if none) once the
/// child's end is closed, which is when the process has exited.
boost::asio::awaitable<void> relay_stderr(boost::asio::io_context& io, int fd, int out_fd,
                                          std::function<void(const std::string&)> on_error,
                                          std::function<void(const std::string&)> on_end);

} // namespace tandem::pool
