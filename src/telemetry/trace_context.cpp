#include "telemetry/trace_context.hpp"

#include <algorithm>
#include <cstring>

namespace tandem::telemetry {
namespace {

constexpr std::size_t trace_id_digits = 32;
constexpr std::size_t span_id_digits = 16;
// "vv-" + 32 + "-" + 16 + "-" + "ff"
constexpr std::size_t version_00_length = 2 + 1 + trace_id_digits + 1 + span_id_digits + 1 + 2;

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool all_lower_hex(std::string_view text) {
  for (char c : text) {
    if (!is_lower_hex(c)) return false;
  }
  return true;
}

int hex_value(char c) {
  return c <= '9' ? c - '0' : c - 'a' + 10;
}

} // namespace

bool is_valid_hex_id(std::string_view id, std::size_t digits) {
  if (id.size() != digits || !all_lower_hex(id)) return false;
  return id.find_first_not_of('0') != std::string_view::npos;
}

std::optional<TraceContext> parse_traceparent(std::string_view header) {
  if (header.size() < version_00_length) return std::nullopt;
  const std::string_view version = header.substr(0, 2);
  if (!all_lower_hex(version) || version == "ff") return std::nullopt;
  if (version == "00" && header.size() != version_00_length) return std::nullopt;
  // A future version may append fields, but only after another '-'.
  if (header.size() > version_00_length && header[version_00_length] != '-') return std::nullopt;
  if (header[2] != '-' || header[3 + trace_id_digits] != '-' ||
      header[4 + trace_id_digits + span_id_digits] != '-') {
    return std::nullopt;
  }
  const std::string_view trace_id = header.substr(3, trace_id_digits);
  const std::string_view span_id = header.substr(4 + trace_id_digits, span_id_digits);
  const std::string_view flags = header.substr(5 + trace_id_digits + span_id_digits, 2);
  if (!is_valid_hex_id(trace_id, trace_id_digits) || !is_valid_hex_id(span_id, span_id_digits) ||
      !all_lower_hex(flags)) {
    return std::nullopt;
  }
  TraceContext context;
  context.trace_id = std::string(trace_id);
  context.span_id = std::string(span_id);
  context.sampled = (hex_value(flags[1]) & 1) != 0;
  return context;
}

TraceparentText::TraceparentText(std::string_view trace_id, std::string_view span_id, bool sampled) {
  // Ids come from parse_traceparent() or the id generator at their standard lengths; anything
  // else is cut to fit rather than written past the buffer.
  static_assert(kLength == version_00_length);
  auto put = [&](std::string_view piece) {
    const std::size_t n = std::min(piece.size(), sizeof text_ - length_);
    std::memcpy(text_ + length_, piece.data(), n);
    length_ += n;
  };
  put("00-");
  put(trace_id);
  put("-");
  put(span_id);
  put(sampled ? "-01" : "-00");
}

} // namespace tandem::telemetry
