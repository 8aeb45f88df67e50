#include "support/otlp_receiver.hpp"
#include "telemetry/otlp_exporter.hpp"
#include "telemetry/otlp_json.hpp"
#include "telemetry/trace_context.hpp"

#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <bit>

#include <poll.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace tandem::telemetry {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tandem::testing::OtlpReceiver;

/// Waits until `condition` holds or the deadline passes, checking every few milliseconds.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    ::poll(nullptr, 0, 2); // polling interval of a condition wait, not a wait for a fixed time
  }
  return condition();
}

std::int64_t elapsed_ms(Clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
}

constexpr const char* valid_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr const char* valid_span = "00f067aa0ba902b7";

// ---- traceparent -----------------------------------------------------------------------------

TEST(Traceparent, ParsesVersion00) {
  auto context = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(context);
  EXPECT_EQ(context->trace_id, valid_trace);
  EXPECT_EQ(context->span_id, valid_span);
  EXPECT_TRUE(context->sampled);
}

TEST(Traceparent, SampledIsTheLowBitOfTheFlags) {
  auto flags = [](const std::string& value) {
    return parse_traceparent(std::string("00-") + valid_trace + "-" + valid_span + "-" + value);
  };
  ASSERT_TRUE(flags("00"));
  EXPECT_FALSE(flags("00")->sampled);
  EXPECT_TRUE(flags("01")->sampled);
  EXPECT_FALSE(flags("02")->sampled);
  EXPECT_TRUE(flags("03")->sampled);
  EXPECT_TRUE(flags("ff")->sampled);
  EXPECT_FALSE(flags("0g"));
  EXPECT_FALSE(flags("0A"));
  EXPECT_FALSE(flags("1"));
}

TEST(Traceparent, RejectsUppercaseHex) {
  EXPECT_FALSE(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"));
  EXPECT_FALSE(parse_traceparent("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST(Traceparent, RejectsAllZeroIds) {
  EXPECT_FALSE(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
}

TEST(Traceparent, RejectsWrongLengthsAndSeparators) {
  EXPECT_FALSE(parse_traceparent(""));
  EXPECT_FALSE(parse_traceparent("00"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));   // 31
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01")); // 33
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01"));   // 15
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01")); // 17
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011"));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"));
  EXPECT_FALSE(parse_traceparent("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"));
  EXPECT_FALSE(parse_traceparent(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST(Traceparent, RejectsVersionFf) {
  EXPECT_FALSE(parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST(Traceparent, AcceptsFutureVersionsWithTheVersion00Fields) {
  auto exact = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->trace_id, valid_trace);
  auto extended = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-ever");
  ASSERT_TRUE(extended);
  EXPECT_EQ(extended->span_id, valid_span);
  EXPECT_FALSE(extended->sampled);
  // More data is only allowed after a '-'.
  EXPECT_FALSE(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x"));
}

TEST(Traceparent, FormatsAndRoundTrips) {
  EXPECT_EQ(TraceparentText(valid_trace, valid_span, true).view(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(TraceparentText(valid_trace, valid_span, false).view(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  auto parsed = parse_traceparent(TraceparentText(valid_trace, valid_span, false).view());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->trace_id, valid_trace);
  EXPECT_EQ(parsed->span_id, valid_span);
  EXPECT_FALSE(parsed->sampled);
}

TEST(Traceparent, TheRequestPathsBufferNeverOverflows) {
  EXPECT_EQ(TraceparentText(valid_trace, valid_span, true).view().size(), TraceparentText::kLength);
  // Ids of other lengths never come from the request path; if one did, it is cut, not overrun.
  const std::string long_id(500, 'a');
  const TraceparentText text(long_id, valid_span, true);
  const std::string_view cut = text.view();
  EXPECT_LE(cut.size(), TraceparentText::kLength + 16);
  EXPECT_EQ(cut.substr(0, 3), "00-");
}

TEST(Traceparent, ValidHexId) {
  EXPECT_TRUE(is_valid_hex_id(valid_span, 16));
  EXPECT_FALSE(is_valid_hex_id(valid_span, 32));
  EXPECT_FALSE(is_valid_hex_id("0000000000000000", 16));
  EXPECT_FALSE(is_valid_hex_id("00F067AA0BA902B7", 16));
}

// ---- OTLP JSON -------------------------------------------------------------------------------

const json::value& attribute_value(const json::array& attributes, std::string_view key) {
  for (const auto& attribute : attributes) {
    if (attribute.at("key").as_string() == key) return attribute.at("value");
  }
  ADD_FAILURE() << "no attribute " << key;
  static const json::value none;
  return none;
}

Span sample_root() {
  Span span;
  span.trace_id = valid_trace;
  span.span_id = valid_span;
  span.name = "gateway \"receive\"\nline two\ttab \\ é 日本 😀 \x01";
  span.kind = SpanKind::server;
  span.start_unix_ns = 1'700'000'000'123'456'789;
  span.end_unix_ns = 1'700'000'000'223'456'789;
  span.attributes = {
      {"http.route", std::string("/v2/models/\"digits\"/infer\r\n")},
      {"unicode", std::string("naïve – ✓ 🚀")},
      {"count", std::int64_t{-42}},
      {"big", std::numeric_limits<std::int64_t>::max()},
      {"ratio", 0.25},
      {"not.a.number", std::numeric_limits<double>::quiet_NaN()},
      {"cold", true},
  };
  return span;
}

Span sample_child() {
  Span span;
  span.trace_id = valid_trace;
  span.span_id = "b7ad6b7169203331";
  span.parent_span_id = valid_span;
  span.name = "upstream call";
  span.kind = SpanKind::client;
  span.start_unix_ns = 1'700'000'000'150'000'000;
  span.end_unix_ns = 1'700'000'000'200'000'000;
  span.error = true;
  span.status_message = "worker answered \"503\"\n";
  return span;
}

TEST(OtlpJson, ResourceAndScope) {
  const json::value document =
      json::parse(encode_otlp_json("tandem-gateway", {sample_root()}, "host-1:8080"));
  const auto& resource_spans = document.at("resourceSpans").as_array();
  ASSERT_EQ(resource_spans.size(), 1u);
  const auto& resource_attributes = resource_spans[0].at("resource").at("attributes").as_array();
  ASSERT_EQ(resource_attributes.size(), 2u);
  EXPECT_EQ(attribute_value(resource_attributes, "service.name").at("stringValue"), "tandem-gateway");
  EXPECT_EQ(attribute_value(resource_attributes, "service.instance.id").at("stringValue"), "host-1:8080");
  const auto& scope_spans = resource_spans[0].at("scopeSpans").as_array();
  ASSERT_EQ(scope_spans.size(), 1u);
  EXPECT_EQ(scope_spans[0].at("scope").at("name"), "tandem");
  EXPECT_EQ(scope_spans[0].at("scope").at("version"), TANDEM_VERSION);
  EXPECT_EQ(scope_spans[0].at("spans").as_array().size(), 1u);
}

TEST(OtlpJson, NoInstanceWhenNotGiven) {
  const json::value document = json::parse(encode_otlp_json("svc", {}));
  const auto& resource = document.at("resourceSpans").at(0).at("resource");
  ASSERT_EQ(resource.at("attributes").as_array().size(), 1u);
  EXPECT_EQ(resource.at("attributes").at(0).at("key"), "service.name");
  EXPECT_TRUE(document.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array().empty());
}

TEST(OtlpJson, SpanFieldsRoundTrip) {
  const Span root = sample_root();
  const Span child = sample_child();
  const std::string body = encode_otlp_json("svc", {root, child});
  const json::value document = json::parse(body);
  const auto& spans = document.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array();
  ASSERT_EQ(spans.size(), 2u);

  const auto& first = spans[0].as_object();
  EXPECT_EQ(first.at("traceId"), valid_trace);
  EXPECT_EQ(first.at("spanId"), valid_span);
  EXPECT_FALSE(first.contains("parentSpanId"));       // a root has no parent field at all
  EXPECT_EQ(first.at("name").as_string(), root.name); // quotes, newline, tab, unicode, control
  EXPECT_EQ(first.at("kind"), 2);
  EXPECT_EQ(first.at("startTimeUnixNano"), "1700000000123456789"); // fixed64: a string
  EXPECT_EQ(first.at("endTimeUnixNano"), "1700000000223456789");
  EXPECT_EQ(first.at("status").at("code"), 0);
  EXPECT_FALSE(first.at("status").as_object().contains("message"));

  const auto& attributes = first.at("attributes").as_array();
  ASSERT_EQ(attributes.size(), root.attributes.size());
  EXPECT_EQ(attributes[0].at("key"), "http.route"); // order kept
  EXPECT_EQ(attribute_value(attributes, "http.route").at("stringValue"), "/v2/models/\"digits\"/infer\r\n");
  EXPECT_EQ(attribute_value(attributes, "unicode").at("stringValue"), "naïve – ✓ 🚀");
  EXPECT_EQ(attribute_value(attributes, "count").at("intValue"), "-42"); // int64: a string
  EXPECT_EQ(attribute_value(attributes, "big").at("intValue"), "9223372036854775807");
  EXPECT_EQ(attribute_value(attributes, "ratio").at("doubleValue"), 0.25);
  EXPECT_EQ(attribute_value(attributes, "not.a.number").at("doubleValue"), "NaN");
  EXPECT_EQ(attribute_value(attributes, "cold").at("boolValue"), true);

  const auto& second = spans[1].as_object();
  EXPECT_EQ(second.at("parentSpanId"), valid_span);
  EXPECT_EQ(second.at("spanId"), "b7ad6b7169203331");
  EXPECT_EQ(second.at("kind"), 3);
  EXPECT_EQ(second.at("status").at("code"), 2);
  EXPECT_EQ(second.at("status").at("message"), "worker answered \"503\"\n");
  EXPECT_TRUE(second.at("attributes").as_array().empty());

  // The raw text escapes what JSON requires (no raw newline or control byte inside strings).
  EXPECT_EQ(body.find('\n'), std::string::npos);
  EXPECT_EQ(body.find('\x01'), std::string::npos);
  EXPECT_NE(body.find("\\u0001"), std::string::npos);
}

TEST(OtlpJson, InternalKindAndClampedTimes) {
  Span span;
  span.trace_id = valid_trace;
  span.span_id = valid_span;
  span.name = "x";
  span.start_unix_ns = -5; // a clock before 1970 is a bug upstream; never send a negative fixed64
  span.attributes = {{"inf", -std::numeric_limits<double>::infinity()}};
  const json::value document = json::parse(encode_otlp_json("svc", {span}));
  const auto& encoded = document.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").at(0);
  EXPECT_EQ(encoded.at("kind"), 1);
  EXPECT_EQ(encoded.at("startTimeUnixNano"), "0");
  EXPECT_EQ(encoded.at("attributes").at(0).at("value").at("doubleValue"), "-Infinity");
}

TEST(OtlpJson, InvalidUtf8BecomesReplacementCharacters) {
  Span span;
  span.trace_id = valid_trace;
  span.span_id = valid_span;
  span.name = std::string("ok \xC3\xA9 bad \xFF end \xC3"); // valid é, a stray byte, a cut sequence
  span.attributes = {{"overlong \xC0\xAF", std::string("surrogate \xED\xA0\x80")}};
  const json::value document = json::parse(encode_otlp_json("svc", {span}));
  const auto& encoded = document.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").at(0);
  EXPECT_EQ(encoded.at("name").as_string(), "ok \u00e9 bad \ufffd end \ufffd");
  EXPECT_EQ(encoded.at("attributes").at(0).at("key").as_string(), "overlong \ufffd\ufffd");
  EXPECT_EQ(encoded.at("attributes").at(0).at("value").at("stringValue").as_string(),
            "surrogate \ufffd\ufffd\ufffd");
}

// ---- OTLP JSON against the previous DOM encoder ------------------------------------------------

// The encoder used to build a Boost.JSON DOM per span and serialize it. It is kept here, as it
// was, as the reference the streaming encoder must agree with.
namespace reference {

std::size_t utf8_sequence_length(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

json::string text_value(std::string_view text) {
  json::string out;
  std::size_t at = 0;
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
    out["intValue"] = std::to_string(*integer);
  } else if (const auto* number = std::get_if<double>(&value)) {
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

json::object encode_span(const Span& span) {
  json::object out;
  out["traceId"] = text_value(span.trace_id);
  out["spanId"] = text_value(span.span_id);
  if (!span.parent_span_id.empty()) out["parentSpanId"] = text_value(span.parent_span_id);
  out["name"] = text_value(span.name);
  out["kind"] = static_cast<int>(span.kind);
  out["startTimeUnixNano"] = std::to_string(span.start_unix_ns < 0 ? 0 : span.start_unix_ns);
  out["endTimeUnixNano"] = std::to_string(span.end_unix_ns < 0 ? 0 : span.end_unix_ns);
  json::array attributes;
  for (const auto& [key, value] : span.attributes) attributes.push_back(key_value(key, value));
  out["attributes"] = std::move(attributes);
  json::object status;
  if (span.error) {
    status["code"] = 2;
    status["message"] = text_value(span.status_message);
  } else {
    status["code"] = 0;
  }
  out["status"] = std::move(status);
  return out;
}

std::string encode_otlp_json(std::string_view service_name, const std::vector<Span>& spans,
                             std::string_view service_instance = {}) {
  json::array resource_attributes;
  resource_attributes.push_back(key_value("service.name", std::string(service_name)));
  if (!service_instance.empty()) {
    resource_attributes.push_back(key_value("service.instance.id", std::string(service_instance)));
  }
  json::array encoded_spans;
  for (const auto& span : spans) encoded_spans.push_back(encode_span(span));
  json::object scope_spans{{"scope", {{"name", "tandem"}, {"version", TANDEM_VERSION}}},
                           {"spans", std::move(encoded_spans)}};
  json::object resource_spans{{"resource", {{"attributes", std::move(resource_attributes)}}},
                              {"scopeSpans", json::array{std::move(scope_spans)}}};
  json::object request{{"resourceSpans", json::array{std::move(resource_spans)}}};
  return json::serialize(request);
}

} // namespace reference

/// Random text that exercises every path of the string encoder: plain ASCII, characters JSON
/// must escape, every control byte, valid 2-4 byte UTF-8 (boundary code points included), and
/// invalid bytes (stray continuations, cut sequences, overlongs, surrogates, above U+10FFFF).
std::string random_text(std::mt19937_64& random) {
  static const std::vector<std::string> pieces = {"\"",
                                                  "\\",
                                                  "/",
                                                  "\x7f",
                                                  "\xC2\x80",
                                                  "\xDF\xBF",
                                                  "\xE0\xA0\x80",
                                                  "\xEF\xBF\xBF",
                                                  "\xED\x9F\xBF",
                                                  "\xF0\x90\x80\x80",
                                                  "\xF4\x8F\xBF\xBF",
                                                  "é",
                                                  "日本",
                                                  "😀",
                                                  "\xC0\xAF",
                                                  "\xC1\xBF",
                                                  "\xE0\x80\xAF",
                                                  "\xED\xA0\x80",
                                                  "\xF4\x90\x80\x80",
                                                  "\xF5\x80\x80\x80",
                                                  "\xF8",
                                                  "\xFF",
                                                  "\x80",
                                                  "\xBF",
                                                  "\xC3",
                                                  "\xE2\x82",
                                                  "\xF0\x9F\x98",
                                                  "\xE2\x28\xA1"};
  std::string text;
  const std::size_t length = random() % 24;
  for (std::size_t i = 0; i < length; ++i) {
    switch (random() % 4) {
    case 0: text.push_back(static_cast<char>(random() % 0x20)); break;
    case 1: text += pieces[random() % pieces.size()]; break;
    case 2: text.push_back(static_cast<char>(random() % 256)); break;
    default: text.push_back(static_cast<char>(0x20 + random() % 0x5f)); break;
    }
  }
  return text;
}

double random_double(std::mt19937_64& random) {
  static const std::vector<double> special = {0.0,
                                              -0.0,
                                              1.0,
                                              -1.0,
                                              0.1,
                                              1e300,
                                              -1e-300,
                                              1e22,
                                              123456789012345678.0,
                                              std::numeric_limits<double>::min(),
                                              std::numeric_limits<double>::denorm_min(),
                                              std::numeric_limits<double>::max(),
                                              std::numeric_limits<double>::lowest(),
                                              std::numeric_limits<double>::epsilon(),
                                              std::numeric_limits<double>::infinity(),
                                              -std::numeric_limits<double>::infinity(),
                                              std::numeric_limits<double>::quiet_NaN()};
  switch (random() % 4) {
  case 0: return special[random() % special.size()];
  case 1: return static_cast<double>(static_cast<std::int64_t>(random() % 2'000'001) - 1'000'000);
  case 2: return std::uniform_real_distribution<double>(-1e6, 1e6)(random);
  default: {
    const std::uint64_t bits = random(); // any bit pattern: NaNs, infinities and subnormals too
    double value = 0;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }
  }
}

std::int64_t random_int(std::mt19937_64& random) {
  static const std::vector<std::int64_t> special = {0, -1, 1, std::numeric_limits<std::int64_t>::min(),
                                                    std::numeric_limits<std::int64_t>::max()};
  if (random() % 4 == 0) return special[random() % special.size()];
  return static_cast<std::int64_t>(random()) >> (random() % 64);
}

Span random_span(std::mt19937_64& random, bool with_doubles) {
  Span span;
  const bool ids_are_hex = random() % 8 != 0; // ids are hex in practice, but any text must encode
  span.trace_id = ids_are_hex ? std::string(valid_trace) : random_text(random);
  span.span_id = ids_are_hex ? std::string("b7ad6b7169203331") : random_text(random);
  if (random() % 2) span.parent_span_id = ids_are_hex ? std::string(valid_span) : random_text(random);
  span.name = random_text(random);
  span.kind = static_cast<SpanKind>(1 + random() % 3);
  span.start_unix_ns = random_int(random);
  span.end_unix_ns = random_int(random);
  const std::size_t attributes = random() % 8;
  for (std::size_t i = 0; i < attributes; ++i) {
    AttributeValue value;
    switch (random() % (with_doubles ? 4 : 3)) {
    case 0: value = random_text(random); break;
    case 1: value = random_int(random); break;
    case 2: value = random() % 2 == 0; break;
    default: value = random_double(random); break;
    }
    span.attributes.emplace_back(random_text(random), std::move(value));
  }
  span.error = random() % 3 == 0;
  if (span.error || random() % 2) span.status_message = random_text(random); // sent only with error
  return span;
}

/// The same document: same keys in the same order, same values. The two encoders spell doubles
/// differently ("2.5E-1" and "0.25") but both texts must read back as the same value.
void expect_same_document(const json::value& actual, const json::value& expected, const std::string& where) {
  ASSERT_EQ(actual.kind(), expected.kind()) << where << ": " << actual << " vs " << expected;
  if (actual.is_object()) {
    const auto& a = actual.as_object();
    const auto& e = expected.as_object();
    ASSERT_EQ(a.size(), e.size()) << where;
    auto ai = a.begin();
    for (auto ei = e.begin(); ei != e.end(); ++ei, ++ai) {
      ASSERT_EQ(ai->key(), ei->key()) << where; // key order kept, too
      expect_same_document(ai->value(), ei->value(), where + "." + std::string(ei->key()));
    }
  } else if (actual.is_array()) {
    const auto& a = actual.as_array();
    const auto& e = expected.as_array();
    ASSERT_EQ(a.size(), e.size()) << where;
    for (std::size_t i = 0; i < a.size(); ++i)
      expect_same_document(a[i], e[i], where + "[" + std::to_string(i) + "]");
  } else {
    EXPECT_EQ(actual, expected) << where;
  }
}

TEST(OtlpJson, MatchesTheDomEncoderByteForByteWithoutDoubles) {
  // Without double attributes the text is the same as before, escapes and key order included.
  std::mt19937_64 random(20261128);
  for (int round = 0; round < 500; ++round) {
    std::vector<Span> spans;
    const std::size_t count = random() % 6;
    for (std::size_t i = 0; i < count; ++i) spans.push_back(random_span(random, false));
    const std::string service = random() % 4 == 0 ? random_text(random) : "tandem";
    const std::string instance = random() % 2 == 0 ? random_text(random) : "";
    ASSERT_EQ(encode_otlp_json(service, spans, instance),
              reference::encode_otlp_json(service, spans, instance))
        << "round " << round;
  }
}

TEST(OtlpJson, ParsesToTheSameDocumentAsTheDomEncoder) {
  std::mt19937_64 random(42);
  for (int round = 0; round < 500; ++round) {
    std::vector<Span> spans;
    const std::size_t count = random() % 6;
    for (std::size_t i = 0; i < count; ++i) spans.push_back(random_span(random, true));
    const std::string instance = random() % 2 == 0 ? random_text(random) : "";
    const std::string body = encode_otlp_json("svc", spans, instance);
    boost::system::error_code ec;
    const json::value actual = json::parse(body, ec);
    ASSERT_FALSE(ec) << "round " << round << ": " << ec.message() << "\n" << body;
    const json::value expected = json::parse(reference::encode_otlp_json("svc", spans, instance));
    expect_same_document(actual, expected, "round " + std::to_string(round));
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(OtlpJson, DoublesRoundTripExactlyAndStayDoubles) {
  // The text of each finite double reads back (correctly rounded, std::from_chars) as the same
  // bits, and always has an exponent, so that a parser does not turn it into an integer.
  std::mt19937_64 random(7);
  for (int i = 0; i < 20'000; ++i) {
    const double value = random_double(random);
    if (!std::isfinite(value)) continue;
    Span span;
    span.trace_id = valid_trace;
    span.span_id = valid_span;
    span.attributes = {{"d", value}};
    const std::string body = encode_otlp_json("svc", {span});
    const std::string marker = "\"doubleValue\":";
    const std::size_t at = body.find(marker);
    ASSERT_NE(at, std::string::npos);
    const char* first = body.data() + at + marker.size();
    const std::size_t length = body.find('}', at) - (at + marker.size());
    const std::string_view text(first, length);
    double parsed = 0;
    const auto result = std::from_chars(first, first + length, parsed);
    ASSERT_EQ(result.ec, std::errc()) << text;
    ASSERT_EQ(result.ptr, first + length) << text;
    // Bit for bit (the sign of zero included).
    EXPECT_EQ(std::bit_cast<std::uint64_t>(parsed), std::bit_cast<std::uint64_t>(value))
        << text << " for " << value;
    EXPECT_NE(text.find('e'), std::string_view::npos) << text;
    EXPECT_TRUE(json::parse(body)
                    .at("resourceSpans")
                    .at(0)
                    .at("scopeSpans")
                    .at(0)
                    .at("spans")
                    .at(0)
                    .at("attributes")
                    .at(0)
                    .at("value")
                    .at("doubleValue")
                    .is_double())
        << text;
  }
}

// ---- exporter: options -----------------------------------------------------------------------

OtlpExporter::Options options_for(const std::string& url) {
  OtlpExporter::Options options;
  options.url = url;
  options.service_name = "tandem-test";
  options.flush_interval_ms = 20;
  options.timeout_ms = 2000;
  options.retry_backoff_ms = 5;
  return options;
}

TEST(OtlpExporterOptions, RejectsBadUrlsAndLimits) {
  auto rejects = [](const std::string& url, const std::string& fragment) {
    auto exporter = OtlpExporter::create(options_for(url));
    ASSERT_FALSE(exporter.ok()) << url;
    EXPECT_EQ(exporter.error().code, ErrorCode::invalid_request);
    EXPECT_NE(exporter.error().message.find(fragment), std::string::npos) << exporter.error().message;
  };
  rejects("https://collector:4318/v1/traces", "https is not supported");
  rejects("HTTPS://collector:4318/v1/traces", "https is not supported");
  rejects("collector:4318", "http://");
  rejects("grpc://collector:4317", "http://");
  rejects("http://:4318/v1/traces", "no host");
  rejects("http://collector:/v1/traces", "empty port");
  rejects("http://collector:0/v1/traces", "port");
  rejects("http://collector:65536/v1/traces", "port");
  rejects("http://collector:43x8/v1/traces", "port");
  rejects("http://[::1/v1/traces", "[");

  auto options = options_for("http://127.0.0.1:4318");
  options.batch_max = 0;
  EXPECT_FALSE(OtlpExporter::create(options).ok());
  options = options_for("http://127.0.0.1:4318");
  options.queue_max = 0;
  EXPECT_FALSE(OtlpExporter::create(options).ok());
  options = options_for("http://127.0.0.1:4318");
  options.timeout_ms = 0;
  EXPECT_FALSE(OtlpExporter::create(options).ok());
  options = options_for("http://127.0.0.1:4318");
  options.max_retries = -1;
  EXPECT_FALSE(OtlpExporter::create(options).ok());
}

TEST(OtlpExporterOptions, AcceptsHttpUrls) {
  EXPECT_TRUE(OtlpExporter::create(options_for("http://127.0.0.1:4318/v1/traces")).ok());
  EXPECT_TRUE(OtlpExporter::create(options_for("http://localhost")).ok());
  EXPECT_TRUE(OtlpExporter::create(options_for("http://[::1]:4318/v1/traces")).ok());
}

// ---- exporter against a real receiver ----------------------------------------------------------

std::string span_id_for(std::size_t index) {
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016zx", index + 1); // + 1: an all-zero id is invalid
  return buffer;
}

Span numbered_span(std::size_t index) {
  Span span;
  span.trace_id = valid_trace;
  span.span_id = span_id_for(index);
  span.name = "span " + std::to_string(index);
  span.start_unix_ns = 1'700'000'000'000'000'000 + static_cast<std::int64_t>(index);
  span.end_unix_ns = span.start_unix_ns + 1000;
  span.attributes = {{"index", static_cast<std::int64_t>(index)}};
  return span;
}

std::unique_ptr<OtlpExporter> make_exporter(const OtlpExporter::Options& options) {
  auto created = OtlpExporter::create(options);
  EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.error().message);
  return created.ok() ? std::move(created.value()) : nullptr;
}

TEST(OtlpExporter, EverySpanArrivesOnceInBoundedBatches) {
  OtlpReceiver receiver;
  auto options = options_for(receiver.url());
  options.batch_max = 50;
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);

  constexpr std::size_t total = 1000;
  for (std::size_t i = 0; i < total; ++i) exporter->submit(numbered_span(i));
  ASSERT_TRUE(receiver.wait_for_spans(total, 10s)) << receiver.span_count();
  ASSERT_TRUE(wait_until([&] { return exporter->spans_exported() == total; }, 5s));

  std::set<std::string> seen;
  for (const auto& span : receiver.spans()) {
    EXPECT_TRUE(seen.insert(std::string(span.at("spanId").as_string())).second) << "duplicate";
    EXPECT_EQ(span.at("traceId"), valid_trace);
  }
  EXPECT_EQ(seen.size(), total);
  for (std::size_t i = 0; i < total; ++i) EXPECT_TRUE(seen.count(span_id_for(i))) << i;

  const auto requests = receiver.requests();
  EXPECT_GE(requests.size(), total / options.batch_max);
  for (const auto& request : requests) {
    EXPECT_LE(request.span_count, options.batch_max);
    EXPECT_GT(request.span_count, 0u);
    EXPECT_EQ(request.content_type, "application/json");
    EXPECT_EQ(request.target, "/v1/traces");
    EXPECT_EQ(request.status, 200);
  }
  for (const auto& received : receiver.received_spans()) EXPECT_EQ(received.service_name, "tandem-test");
  EXPECT_EQ(receiver.malformed_bodies(), 0u);
  EXPECT_EQ(receiver.connections(), 1u); // keep-alive: one connection for every batch

  EXPECT_EQ(exporter->spans_submitted(), total);
  EXPECT_EQ(exporter->spans_dropped(), 0u);
  EXPECT_EQ(exporter->spans_failed(), 0u);
  EXPECT_EQ(exporter->export_requests(), requests.size());
  EXPECT_EQ(exporter->export_failures(), 0u);
  EXPECT_EQ(exporter->queue_depth(), 0u);
}

TEST(OtlpExporter, QueueSmallerThanABatchStillSendsFullQueuesAtOnce) {
  OtlpReceiver receiver;
  auto options = options_for(receiver.url());
  options.flush_interval_ms = 60'000; // only a full batch can trigger a send
  options.queue_max = 10;
  options.batch_max = 512;
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);
  for (std::size_t i = 0; i < 10; ++i) exporter->submit(numbered_span(i));
  ASSERT_TRUE(receiver.wait_for_spans(10, 5s));
  EXPECT_EQ(exporter->spans_dropped(), 0u);
}

TEST(OtlpExporter, PartialBatchIsSentAfterTheFlushInterval) {
  OtlpReceiver receiver;
  auto options = options_for(receiver.url());
  options.batch_max = 512;
  options.flush_interval_ms = 30;
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);
  for (std::size_t i = 0; i < 3; ++i) exporter->submit(numbered_span(i));
  ASSERT_TRUE(receiver.wait_for_spans(3, 5s));
  EXPECT_EQ(receiver.requests().front().span_count, 3u);
}

TEST(OtlpExporter, DefaultPathIsV1Traces) {
  OtlpReceiver receiver;
  auto exporter = make_exporter(options_for("http://127.0.0.1:" + std::to_string(receiver.port())));
  ASSERT_TRUE(exporter);
  exporter->submit(numbered_span(0));
  ASSERT_TRUE(receiver.wait_for_spans(1, 5s));
  EXPECT_EQ(receiver.requests().front().target, "/v1/traces");
}

TEST(OtlpExporter, RetriesAfter503) {
  OtlpReceiver receiver;
  receiver.fail_next(1, 503);
  auto exporter = make_exporter(options_for(receiver.url()));
  ASSERT_TRUE(exporter);
  for (std::size_t i = 0; i < 10; ++i) exporter->submit(numbered_span(i));
  ASSERT_TRUE(receiver.wait_for_spans(10, 5s));
  ASSERT_TRUE(wait_until([&] { return exporter->spans_exported() == 10; }, 5s));
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].status, 503);
  EXPECT_EQ(requests[1].status, 200);
  EXPECT_EQ(requests[0].body, requests[1].body); // the same batch again
  EXPECT_EQ(receiver.span_count(), 10u);
  EXPECT_EQ(exporter->export_requests(), 2u);
  EXPECT_EQ(exporter->export_failures(), 1u);
  EXPECT_EQ(exporter->spans_failed(), 0u);
}

TEST(OtlpExporter, RetriesAfter429) {
  OtlpReceiver receiver;
  receiver.fail_next(2, 429);
  auto exporter = make_exporter(options_for(receiver.url()));
  ASSERT_TRUE(exporter);
  exporter->submit(numbered_span(0));
  ASSERT_TRUE(wait_until([&] { return exporter->spans_exported() == 1; }, 5s));
  EXPECT_EQ(exporter->export_requests(), 3u);
  EXPECT_EQ(receiver.span_count(), 1u);
}

TEST(OtlpExporter, GivesUpAfterMaxRetries) {
  OtlpReceiver receiver;
  receiver.fail_next(100, 500);
  auto options = options_for(receiver.url());
  options.max_retries = 2;
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);
  for (std::size_t i = 0; i < 5; ++i) exporter->submit(numbered_span(i));
  ASSERT_TRUE(wait_until([&] { return exporter->spans_failed() == 5; }, 5s));
  EXPECT_EQ(exporter->export_requests(), 3u); // one try and two retries
  EXPECT_EQ(exporter->export_failures(), 3u);
  EXPECT_EQ(exporter->spans_exported(), 0u);
  EXPECT_EQ(receiver.requests().size(), 3u);
}

TEST(OtlpExporter, ClientErrorIsNotRetried) {
  OtlpReceiver receiver;
  receiver.fail_next(1, 400);
  auto exporter = make_exporter(options_for(receiver.url()));
  ASSERT_TRUE(exporter);
  for (std::size_t i = 0; i < 4; ++i) exporter->submit(numbered_span(i));
  ASSERT_TRUE(wait_until([&] { return exporter->spans_failed() == 4; }, 5s));
  EXPECT_EQ(exporter->export_requests(), 1u);
  EXPECT_EQ(exporter->export_failures(), 1u);
  // The next batch goes through: a dropped batch does not poison the exporter.
  exporter->submit(numbered_span(10));
  ASSERT_TRUE(receiver.wait_for_spans(1, 5s));
  EXPECT_EQ(receiver.spans().front().at("spanId").as_string(), span_id_for(10));
}

TEST(OtlpExporter, ReconnectsWhenTheReceiverClosesEachConnection) {
  OtlpReceiver receiver;
  receiver.close_after_each(true);
  auto options = options_for(receiver.url());
  options.batch_max = 10;
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);
  for (std::size_t i = 0; i < 30; ++i) exporter->submit(numbered_span(i));
  ASSERT_TRUE(receiver.wait_for_spans(30, 5s));
  ASSERT_TRUE(wait_until([&] { return exporter->spans_exported() == 30; }, 5s));
  EXPECT_EQ(receiver.connections(), receiver.requests().size());
  EXPECT_EQ(exporter->export_failures(), 0u);
}

TEST(OtlpExporter, ReceiverDownCountsFailuresAndDoesNotHang) {
  unsigned short port = 0;
  {
    OtlpReceiver receiver; // take a port, then close it: connects are refused
    port = receiver.port();
  }
  auto options = options_for("http://127.0.0.1:" + std::to_string(port) + "/v1/traces");
  options.max_retries = 1;
  options.timeout_ms = 500;
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);
  for (std::size_t i = 0; i < 5; ++i) exporter->submit(numbered_span(i));
  ASSERT_TRUE(wait_until([&] { return exporter->spans_failed() == 5; }, 5s));
  EXPECT_EQ(exporter->export_requests(), 2u);
  EXPECT_EQ(exporter->export_failures(), 2u);
  EXPECT_EQ(exporter->spans_exported(), 0u);
  const auto started = Clock::now();
  exporter->shutdown(2s);
  EXPECT_LT(elapsed_ms(started), 500);
}

TEST(OtlpExporter, FailsCleanlyWhenTheReceiverGoesAway) {
  // The exporter's connection dies with the first receiver; the next batch reconnects.
  auto first = std::make_unique<OtlpReceiver>();
  auto options = options_for(first->url());
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);
  exporter->submit(numbered_span(0));
  ASSERT_TRUE(first->wait_for_spans(1, 5s));
  ASSERT_TRUE(wait_until([&] { return exporter->spans_exported() == 1; }, 5s));
  first->stop();
  exporter->submit(numbered_span(1));
  ASSERT_TRUE(wait_until([&] { return exporter->spans_failed() == 1; }, 5s));
  EXPECT_EQ(exporter->spans_exported(), 1u);
}

TEST(OtlpExporter, FullQueueDropsWithoutBlocking) {
  // A collector that accepts TCP (the kernel's backlog does) but never answers.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor stalled(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  auto options = options_for("http://127.0.0.1:" + std::to_string(stalled.local_endpoint().port()));
  options.queue_max = 1000;
  options.batch_max = 100;
  options.timeout_ms = 10'000;
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);

  constexpr std::size_t total = 100'000;
  std::vector<Span> spans;
  spans.reserve(total);
  for (std::size_t i = 0; i < total; ++i) spans.push_back(numbered_span(i));
  const auto started = Clock::now();
  for (auto& span : spans) exporter->submit(std::move(span));
  const auto submit_ms = elapsed_ms(started);
  EXPECT_LT(submit_ms, 500) << "100k submits took " << submit_ms << " ms";

  EXPECT_EQ(exporter->spans_submitted(), total);
  EXPECT_LE(exporter->queue_depth(), options.queue_max);
  // At most a queue and one batch in flight were kept; everything else was dropped.
  EXPECT_GE(exporter->spans_dropped(), total - options.queue_max - options.batch_max);
  EXPECT_EQ(exporter->spans_exported(), 0u);

  // Shutdown gives up on the stalled POST after its grace, not after timeout_ms.
  const auto stopping = Clock::now();
  exporter->shutdown(100ms);
  EXPECT_LT(elapsed_ms(stopping), 1000);
  EXPECT_EQ(exporter->queue_depth(), 0u);
  EXPECT_EQ(exporter->spans_exported() + exporter->spans_dropped() + exporter->spans_failed(), total);
}

TEST(OtlpExporter, ShutdownFlushesWhatIsQueued) {
  OtlpReceiver receiver;
  auto options = options_for(receiver.url());
  options.flush_interval_ms = 60'000; // only shutdown can send these
  options.batch_max = 40;
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);
  for (std::size_t i = 0; i < 100; ++i) exporter->submit(numbered_span(i));
  exporter->shutdown(5s);
  // The receiver records a body before it answers, so no waiting is needed here.
  EXPECT_EQ(receiver.span_count(), 100u);
  EXPECT_EQ(exporter->spans_exported(), 100u);
  for (const auto& request : receiver.requests()) EXPECT_LE(request.span_count, 40u);

  exporter->submit(numbered_span(200)); // after shutdown: dropped, counted, no crash
  EXPECT_EQ(exporter->spans_dropped(), 1u);
  exporter->shutdown(1s); // idempotent
}

TEST(OtlpExporter, DestructorFlushesPendingSpans) {
  OtlpReceiver receiver;
  auto options = options_for(receiver.url());
  options.flush_interval_ms = 60'000;
  {
    auto exporter = make_exporter(options);
    ASSERT_TRUE(exporter);
    exporter->submit(numbered_span(0));
  }
  EXPECT_EQ(receiver.span_count(), 1u);
}

TEST(OtlpExporter, SubmitFromManyThreads) {
  OtlpReceiver receiver;
  auto options = options_for(receiver.url());
  options.batch_max = 64;
  auto exporter = make_exporter(options);
  ASSERT_TRUE(exporter);
  constexpr std::size_t threads = 4;
  constexpr std::size_t each = 500;
  std::vector<std::thread> submitters;
  for (std::size_t t = 0; t < threads; ++t) {
    submitters.emplace_back([&, t] {
      for (std::size_t i = 0; i < each; ++i) exporter->submit(numbered_span(t * each + i));
    });
  }
  for (auto& thread : submitters) thread.join();
  ASSERT_TRUE(receiver.wait_for_spans(threads * each, 10s));
  std::set<std::string> seen;
  for (const auto& span : receiver.spans()) seen.insert(std::string(span.at("spanId").as_string()));
  EXPECT_EQ(seen.size(), threads * each);
  EXPECT_EQ(receiver.span_count(), threads * each);
}

} // namespace
} // namespace tandem::telemetry
