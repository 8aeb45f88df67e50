#include "telemetry/otlp_json.hpp"

#include "base/json_text.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>

namespace tandem::telemetry {
namespace {

// The encoder writes the JSON text directly into one string. A Boost.JSON DOM per span (the
// previous implementation) cost about 33 000 instructions per span, most of it building and
// tearing down objects, and the exporter thread could not keep up with a saturated gateway.
// The text is the same as the DOM serializer wrote (same key order and escapes), except for the
// spelling of a double's exponent ("2.5e-01", not "2.5E-1").

/// Appends `text` as a quoted JSON string. Span names and attribute values can carry client
/// input, and invalid UTF-8 would make the collector reject the whole batch: see json_text.hpp.
void append_string(std::string& out, std::string_view text) { append_json_string(out, text); }

void append_int(std::string& out, std::int64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

/// A 64-bit integer as a quoted decimal string: proto3 JSON spells int64/fixed64 that way
/// because JavaScript numbers lose precision above 2^53.
void append_quoted_int(std::string& out, std::int64_t value) {
  out.push_back('"');
  append_int(out, value);
  out.push_back('"');
}

void append_double(std::string& out, double value) {
  // JSON has no infinities or NaN; proto3 JSON spells them as strings.
  if (std::isnan(value)) {
    out.append("\"NaN\"");
    return;
  }
  if (std::isinf(value)) {
    out.append(value > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  // Shortest round-trip digits in exponent form, as Boost.JSON's serializer wrote them
  // ("2.5e-01" for its "2.5E-1"): a double never reads back as an integer, and parsers that are
  // not correctly rounded for long digit strings (Boost.JSON 1.81's is one) see the same digits
  // as before.
  char buffer[40];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  out.append(buffer, result.ptr);
}

void append_any_value(std::string& out, const AttributeValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) {
    out.append("{\"stringValue\":");
    append_string(out, *text);
  } else if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    out.append("{\"intValue\":");
    append_quoted_int(out, *integer);
  } else if (const auto* number = std::get_if<double>(&value)) {
    out.append("{\"doubleValue\":");
    append_double(out, *number);
  } else {
    out.append(std::get<bool>(value) ? "{\"boolValue\":true" : "{\"boolValue\":false");
  }
  out.push_back('}');
}

void append_key_value(std::string& out, std::string_view key, const AttributeValue& value) {
  out.append("{\"key\":");
  append_string(out, key);
  out.append(",\"value\":");
  append_any_value(out, value);
  out.push_back('}');
}

void append_string_attribute(std::string& out, std::string_view key, std::string_view value) {
  out.append("{\"key\":");
  append_string(out, key);
  out.append(",\"value\":{\"stringValue\":");
  append_string(out, value);
  out.append("}}");
}

void append_span(std::string& out, const Span& span) {
  out.append("{\"traceId\":");
  append_string(out, span.trace_id);
  out.append(",\"spanId\":");
  append_string(out, span.span_id);
  if (!span.parent_span_id.empty()) {
    out.append(",\"parentSpanId\":");
    append_string(out, span.parent_span_id);
  }
  out.append(",\"name\":");
  append_string(out, span.name);
  out.append(",\"kind\":");
  append_int(out, static_cast<int>(span.kind));
  // A clock before 1970 is a bug upstream; never send a negative fixed64.
  out.append(",\"startTimeUnixNano\":");
  append_quoted_int(out, span.start_unix_ns < 0 ? 0 : span.start_unix_ns);
  out.append(",\"endTimeUnixNano\":");
  append_quoted_int(out, span.end_unix_ns < 0 ? 0 : span.end_unix_ns);
  out.append(",\"attributes\":[");
  bool first = true;
  for (const auto& [key, value] : span.attributes) {
    if (!first) out.push_back(',');
    first = false;
    append_key_value(out, key, value);
  }
  out.append("],\"status\":");
  if (span.error) {
    out.append("{\"code\":2,\"message\":"); // STATUS_CODE_ERROR
    append_string(out, span.status_message);
    out.append("}}");
  } else {
    out.append("{\"code\":0}}"); // STATUS_CODE_UNSET: we never claim OK on the caller's behalf
  }
}

/// An upper estimate for most batches, so that the string grows once at most: the fixed text of
/// a span is under 300 bytes, an attribute's under 60, and escapes rarely double a string.
std::size_t estimated_size(std::string_view service_name, const std::vector<Span>& spans,
                           std::string_view service_instance) {
  std::size_t size = 256 + service_name.size() + service_instance.size();
  for (const auto& span : spans) {
    size += 300 + span.name.size() + span.status_message.size();
    for (const auto& [key, value] : span.attributes) {
      size += 64 + key.size();
      if (const auto* text = std::get_if<std::string>(&value)) size += text->size();
    }
  }
  return size;
}

} // namespace

std::string encode_otlp_json(std::string_view service_name, const std::vector<Span>& spans,
                             std::string_view service_instance) {
  std::string out;
  out.reserve(estimated_size(service_name, spans, service_instance));
  out.append("{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  append_string_attribute(out, "service.name", service_name);
  if (!service_instance.empty()) {
    out.push_back(',');
    append_string_attribute(out, "service.instance.id", service_instance);
  }
  out.append("]},\"scopeSpans\":[{\"scope\":{\"name\":\"tandem\",\"version\":");
  append_string(out, TANDEM_VERSION);
  out.append("},\"spans\":[");
  bool first = true;
  for (const auto& span : spans) {
    if (!first) out.push_back(',');
    first = false;
    append_span(out, span);
  }
  out.append("]}]}]}");
  return out;
}

} // namespace tandem::telemetry
