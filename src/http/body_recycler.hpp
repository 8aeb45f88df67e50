#pragma once
// Strings for large request bodies, handed back when the request is done and reused.
//
// A body of known length is read straight into a string of that size, and C++20 can only grow
// a std::string by writing every new byte first: on a 1.3 MB request that zero fill was 9 % of
// the gateway's CPU. A string taken from here keeps the size it last had, so a body no longer
// than the previous one costs a truncation, and a longer one a fill past the old size only.
// Bounded: at most kMaxSpare strings and kMaxSpareBytes bytes are held, and bodies under
// kMinBytes (cheap to fill) or over kMaxBodyBytes (rare, and too large to keep) are not kept.
// One per server, on its io thread.
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace tandem::http {

class BodyRecycler {
public:
  static constexpr std::size_t kMinBytes = 64u << 10;
  static constexpr std::size_t kMaxBodyBytes = 16u << 20;
  static constexpr std::size_t kMaxSpare = 4;
  static constexpr std::size_t kMaxSpareBytes = 32u << 20;

  /// A string of exactly `length` bytes whose contents are unspecified. A spare is reused only
  /// if its capacity is at most `max_capacity`: the request's body budget counts all of it.
  std::string take(std::size_t length, std::size_t max_capacity = std::numeric_limits<std::size_t>::max()) {
    std::string body;
    if (length >= kMinBytes && !spare_.empty() && spare_.back().capacity() <= max_capacity) {
      body = std::move(spare_.back());
      spare_.pop_back();
      held_bytes_ -= body.capacity();
    }
    body.resize(length);
    return body;
  }

  /// Keeps `body` for a later take() if the bounds allow; else it is freed.
  void give_back(std::string&& body) {
    const std::size_t bytes = body.capacity();
    if (bytes < kMinBytes || bytes > kMaxBodyBytes || spare_.size() >= kMaxSpare ||
        held_bytes_ + bytes > kMaxSpareBytes)
      return;
    held_bytes_ += bytes;
    spare_.push_back(std::move(body));
  }

  [[nodiscard]] std::size_t held_bytes() const { return held_bytes_; }
  [[nodiscard]] std::size_t held() const { return spare_.size(); }

private:
  std::vector<std::string> spare_;
  std::size_t held_bytes_ = 0;
};

} // namespace tandem::http
