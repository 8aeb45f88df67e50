#include "telemetry/otlp_json.hpp"

#include <boost/json.hpp>

#include <cmath>

namespace tandem::telemetry {
namespace {

namespace json = boost::json;

json::string_view view(std::string_view text) { return {text.data(), text.size()}; }

json::object any_value(const AttributeValue& value) {
  json::object out;
  if (const auto* text = std::get_if<std::string>(&value)) {
    out["stringValue"] = view(*text);
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
  return json::object{{"key", view(key)}, {"value", any_value(value)}};
}

std::string unix_nanos(std::int64_t nanos) { return std::to_string(nanos < 0 ? 0 : nanos); }

json::object encode_span(const Span& span) {
  json::object out;
  out["traceId"] = view(span.trace_id);
  out["spanId"] = view(span.span_id);
  if (!span.parent_span_id.empty()) out["parentSpanId"] = view(span.parent_span_id);
  out["name"] = view(span.name);
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
    status["message"] = view(span.status_message);
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
