#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header.
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::telemetry {

struct TraceContext {
  std::string trace_id; // 32 lowercase hex digits, not all zero
  std::string span_id;  // 16 lowercase hex digits, not all zero (the caller's span: our parent)
  bool sampled = false; // trace-flags bit 0
};

/// Parses a `traceparent` value. Version 00 must be exactly 55 characters; a later version
/// (anything but ff) is accepted when it starts with the 00 fields and, if longer, continues
/// with '-', as the specification asks so that old parsers keep working. Only lowercase hex is
/// valid; all-zero ids are invalid. nullopt means "start a new trace", never an error response.
/// Pure: no allocation beyond the result, safe from any thread.
std::optional<TraceContext> parse_traceparent(std::string_view header);

/// "00-<trace_id>-<span_id>-01" (or "-00" when not sampled), written into a buffer of its own
/// rather than a new string: the request path writes it twice a request. Ids have the standard
/// lengths (32 and 16 digits); others are written as given up to a point, then cut.
class TraceparentText {
public:
  static constexpr std::size_t kLength = 55;
  TraceparentText(std::string_view trace_id, std::string_view span_id, bool sampled);
  [[nodiscard]] std::string_view view() const { return {text_, length_}; }

private:
  char text_[kLength + 16] = {}; // room for ids of other lengths up to a point; longer ones are cut
  std::size_t length_ = 0;
};

/// A span id's 16 hex digits, held inline: as a std::string, 16 characters are one more than
/// the short-string buffer, and each span id was an allocation on the request path.
struct SpanIdText {
  std::array<char, 16> digits{};
  [[nodiscard]] std::string_view view() const { return {digits.data(), digits.size()}; }
};

/// True when `id` is `digits` lowercase hex digits and not all zero.
bool is_valid_hex_id(std::string_view id, std::size_t digits);

} // namespace tandem::telemetry
