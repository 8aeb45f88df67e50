#include "telemetry/otlp_json.hpp"

#include <boost/json.hpp>

#include <cmath>

namespace tandem::telemetry {
namespace {

namespace json = boost::json;

/// Length of the valid UTF-8 sequence at the start of `text`, or 0 (overlong forms,
/// surrogates and code points above U+10FFFF are invalid, as in RFC 3629).
std::size_t utf8_sequence_length(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
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
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

/// Span names and attribute values can carry client input. Invalid UTF-8 would make the
/// collector reject the whole batch, so each bad byte becomes U+FFFD instead.
json::string text_value(std::string_view text) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t length = utf8_sequence_length(text.substr(at));
    if (length == 0) break;
    at += length;
  }
  if (at == text.size()) return json::string(json::string_view(text.data(), text.size()));
  json::string out(json::string_view(text.data(), at));
  while (at < text.size()) {
    const std::size_t length = utf8_sequence_length(text.substr(at));
    if (length == 0) {
      out.append("\xEF\xBF\xBD");
      ++at;
    } else {
      out.append(json::string_view(text.data() + at, length));
      at += length;
    }
  }
  return out;
}

json::object any_value(const AttributeValue& value) {
  json::object out;
  if (const auto* text = std::get_if<std::string>(&value)) {
    out["stringValue"] = text_value(*text);
  } else if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    out["intValue"] = std::to_string(*integer); // int64 is a string in proto3 JSON
  } else if (const auto* number = std::get_if<double>(&value)) {
    // JSON has no infinities or NaN; proto3 JSON spells them as strings.
    if (std::isnan(*number)) {
      out["doubleValue"] = "NaN";
    } else if (std::isinf(*number)) {
      out["doubleValue"] = *number > 0 ? "Infinity" : "-Infinity";
    } else {
      out["doubleValue"] = *number;
    }
  } else {
    out["boolValue"] = std::get<bool>(value);
  }
  return out;
}

json::object key_value(std::string_view key, const AttributeValue& value) {
  return json::object{{"key", text_value(key)}, {"value", any_value(value)}};
}

std::string unix_nanos(std::int64_t nanos) {
  return std::to_string(nanos < 0 ? 0 : nanos);
}

json::object encode_span(const Span& span) {
  json::object out;
  out["traceId"] = text_value(span.trace_id);
  out["spanId"] = text_value(span.span_id);
  if (!span.parent_span_id.empty()) out["parentSpanId"] = text_value(span.parent_span_id);
  out["name"] = text_value(span.name);
  out["kind"] = static_cast<int>(span.kind);
  out["startTimeUnixNano"] = unix_nanos(span.start_unix_ns);
  out["endTimeUnixNano"] = unix_nanos(span.end_unix_ns);
  json::array attributes;
  attributes.reserve(span.attributes.size());
  for (const auto& [key, value] : span.attributes) attributes.push_back(key_value(key, value));
  out["attributes"] = std::move(attributes);
  json::object status;
  if (span.error) {
    status["code"] = 2; // STATUS_CODE_ERROR
    status["message"] = text_value(span.status_message);
  } else {
    status["code"] = 0; // STATUS_CODE_UNSET: we never claim OK on the caller's behalf
  }
  out["status"] = std::move(status);
  return out;
}

} // namespace

std::string encode_otlp_json(std::string_view service_name, const std::vector<Span>& spans,
                             std::string_view service_instance) {
  json::array resource_attributes;
  resource_attributes.push_back(key_value("service.name", std::string(service_name)));
  if (!service_instance.empty()) {
    resource_attributes.push_back(key_value("service.instance.id", std::string(service_instance)));
  }
  json::array encoded_spans;
  encoded_spans.reserve(spans.size());
  for (const auto& span : spans) encoded_spans.push_back(encode_span(span));

  json::object scope_spans{{"scope", {{"name", "tandem"}, {"version", TANDEM_VERSION}}},
                           {"spans", std::move(encoded_spans)}};
  json::object resource_spans{{"resource", {{"attributes", std::move(resource_attributes)}}},
                              {"scopeSpans", json::array{std::move(scope_spans)}}};
  json::object request{{"resourceSpans", json::array{std::move(resource_spans)}}};
  return json::serialize(request);
}

} // namespace tandem::telemetry
