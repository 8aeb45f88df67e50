#pragma once
// OTLP/HTTP JSON encoding of spans (opentelemetry-proto ExportTraceServiceRequest).
#include "telemetry/span.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace tandem::telemetry {

/// One ExportTraceServiceRequest body with one resource (service.name, and
/// service.instance.id when not empty) and one scope ("tandem", TANDEM_VERSION). Follows the
/// OTLP JSON rules: ids as hex strings (an empty parent id is omitted), 64-bit integers
/// (times, int attributes) as decimal strings, enums as integers, non-finite doubles as
/// "NaN"/"Infinity"/"-Infinity"; invalid UTF-8 bytes in strings become U+FFFD (one bad value
/// must not get the whole batch rejected). Status is {code: 2, message} for an error span, else
/// {code: 0} (unset). Pure; safe from any thread.
std::string encode_otlp_json(std::string_view service_name, const std::vector<Span>& spans,
                             std::string_view service_instance = {});

} // namespace tandem::telemetry
