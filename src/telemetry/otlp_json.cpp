#include "telemetry/otlp_json.hpp"

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

/// Length of the valid UTF-8 sequence at the start of `text`, or 0 (overlong forms,
/// surrogates and code points above U+10FFFF are invalid, as in RFC 3629).
std::size_t utf8_sequence_length(const unsigned char* text, std::size_t size) {
  const unsigned char lead = text[0];
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80; // bounds of the second byte
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;  // overlong
    if (lead == 0xED) high = 0x9F; // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;  // overlong
    if (lead == 0xF4) high = 0x8F; // above U+10FFFF
  } else {
    return 0;
  }
  if (size < length || text[1] < low || text[1] > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (text[i] < 0x80 || text[i] > 0xBF) return 0;
  }
  return length;
}

/// Appends `text` as a quoted JSON string. Span names and attribute values can carry client
/// input, and invalid UTF-8 would make the collector reject the whole batch, so each bad byte
/// becomes U+FFFD. Escapes are those of Boost.JSON's serializer: \" \\ \b \f \n \r \t, other
/// control bytes as \u00XX (lowercase hex); everything else, DEL included, is copied.
void append_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  // Bytes that leave the fast path: control bytes, '"', '\\' and every non-ASCII byte. One
  // table load per byte; almost all of a span's text (hex ids, names, keys) is plain ASCII.
  static constexpr auto special = [] {
    std::array<bool, 256> table{};
    for (std::size_t c = 0; c < 256; ++c) table[c] = c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
    return table;
  }();
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  const auto* run = p; // start of the bytes not yet copied
  const auto flush = [&](const unsigned char* upto) {
    out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(upto - run));
  };
  out.push_back('"');
  while (p < end) {
    const unsigned char c = *p;
    if (!special[c]) {
      ++p;
      continue;
    }
    if (c >= 0x80) {
      const std::size_t length = utf8_sequence_length(p, static_cast<std::size_t>(end - p));
      if (length != 0) {
        p += length;
        continue;
      }
      flush(p);
      out.append("\xEF\xBF\xBD");
    } else {
      flush(p);
      switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default: {
        const char escaped[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
        out.append(escaped, sizeof escaped);
      }
      }
    }
    ++p;
    run = p;
  }
  flush(p);
  out.push_back('"');
}

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
