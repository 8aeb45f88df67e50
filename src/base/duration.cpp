#include "base/duration.hpp"

#include <charconv>
#include <cstdint>
#include <limits>
#include <string>

namespace tandem {

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return make_error(ErrorCode::invalid_request,
                      "invalid duration \"" + std::string(text) + "\": " + std::string(why) +
                          " (use e.g. 250ms, 60s, 5m, 2h, 7d)");
  };
  if (text.empty()) return fail("empty");
  std::int64_t number = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, number);
  if (ec == std::errc::result_out_of_range) return fail("too large");
  if (ec != std::errc{} || number < 0) return fail("expected a non-negative integer");
  std::string_view suffix(ptr, static_cast<std::size_t>(end - ptr));
  std::int64_t multiplier = 0;
  if (suffix.empty() || suffix == "ms") multiplier = 1;
  else if (suffix == "s") multiplier = 1000;
  else if (suffix == "m") multiplier = 60'000;
  else if (suffix == "h") multiplier = 3'600'000;
  else if (suffix == "d") multiplier = 86'400'000;
  else return fail("unknown unit \"" + std::string(suffix) + "\"");
  if (number > std::numeric_limits<std::int64_t>::max() / multiplier) return fail("too large");
  return std::chrono::milliseconds(number * multiplier);
}

} // namespace tandem
