#include "pool/stderr_relay.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <unistd.h>

#include <array>
#include <cerrno>

namespace tandem::pool {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxErrorText = 300;
constexpr std::size_t kMaxLine = 64 * 1024;  // longer runs without a newline go out in pieces

std::string bounded(std::string_view text) {
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  if (text.size() <= kMaxErrorText) return std::string(text);
  std::size_t cut = kMaxErrorText - 3;
  // Never inside a UTF-8 sequence: back up over continuation bytes to the start of one.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our stderr is gone: nothing to relay to
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

} // namespace

std::optional<std::string> error_text_of(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.empty()) return std::nullopt;
  if (line.front() == '{') {
    boost::system::error_code ec;
    auto value = boost::json::parse(line, ec);
    if (!ec && value.is_object()) {
      const auto& o = value.as_object();
      const auto* level = o.if_contains("level");
      if (level == nullptr || !level->is_string()) return bounded(line);
      if (level->as_string() != "error" && level->as_string() != "critical") return std::nullopt;
      const auto* msg = o.if_contains("msg");
      return msg != nullptr && msg->is_string() ? bounded(std::string_view(msg->as_string())) : bounded(line);
    }
  }
  return bounded(line);
}

asio::awaitable<void> relay_stderr(asio::io_context& io, int fd, int out_fd,
                                   std::function<void(const std::string&)> on_error,
                                   std::function<void(const std::string&)> on_end) {
  asio::posix::stream_descriptor pipe(io, fd);
  std::array<char, 8192> chunk{};
  std::string pending;
  std::string last_error;
  auto take_line = [&](std::string_view line) {
    write_all(out_fd, line);
    if (auto text = error_text_of(line)) {
      last_error = *text;
      if (on_error) on_error(last_error);
    }
  };
  for (;;) {
    auto [ec, n] = co_await pipe.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
    if (n > 0) {
      pending.append(chunk.data(), n);
      std::size_t start = 0;
      for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
        take_line(std::string_view(pending).substr(start, nl + 1 - start));
      pending.erase(0, start);
      if (pending.size() > kMaxLine) {
        take_line(pending);
        pending.clear();
      }
    }
    if (ec) break;  // end of file: the child closed its stderr, almost always by exiting
  }
  if (!pending.empty()) take_line(pending + "\n");
  if (on_end) on_end(last_error);
}

} // namespace tandem::pool
