#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header.
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

/// "00-<trace_id>-<span_id>-01" (or "-00" when not sampled). The ids are written as given.
std::string format_traceparent(std::string_view trace_id, std::string_view span_id, bool sampled);

/// True when `id` is `digits` lowercase hex digits and not all zero.
bool is_valid_hex_id(std::string_view id, std::size_t digits);

} // namespace tandem::telemetry
