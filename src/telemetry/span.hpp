#pragma once
// A finished span, as the tracer hands it to an exporter. Plain data: it owns its strings so it
// can cross threads (request thread -> exporter thread) by move.
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace tandem::telemetry {

enum class SpanKind { internal = 1, server = 2, client = 3 }; // OTLP numbering

using AttributeValue = std::variant<std::string, std::int64_t, double, bool>;

struct Span {
  std::string trace_id, span_id, parent_span_id; // hex; parent empty for a root
  std::string name;
  SpanKind kind = SpanKind::internal;
  std::int64_t start_unix_ns = 0, end_unix_ns = 0; // wall clock (UNIX epoch), as OTLP wants
  std::vector<std::pair<std::string, AttributeValue>> attributes;
  bool error = false;
  std::string status_message; // sent only with error
};

} // namespace tandem::telemetry
