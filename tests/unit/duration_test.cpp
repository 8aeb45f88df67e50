#include "base/duration.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tandem {
namespace {

using std::chrono::milliseconds;

milliseconds parsed(std::string_view text) {
  auto result = parse_duration(text);
  EXPECT_TRUE(result.ok()) << "\"" << text << "\": " << (result.ok() ? "" : result.error().message);
  return result.ok() ? *result : milliseconds(-1);
}

std::string error_of(std::string_view text) {
  auto result = parse_duration(text);
  EXPECT_FALSE(result.ok()) << "\"" << text << "\" parsed as " << (result.ok() ? result->count() : 0);
  if (result.ok()) return {};
  EXPECT_EQ(result.error().code, ErrorCode::invalid_request);
  return result.error().message;
}

TEST(ParseDuration, AcceptsEachUnit) {
  EXPECT_EQ(parsed("250ms"), milliseconds(250));
  EXPECT_EQ(parsed("60s"), milliseconds(60'000));
  EXPECT_EQ(parsed("5m"), milliseconds(300'000));
  EXPECT_EQ(parsed("1h"), milliseconds(3'600'000));
}

TEST(ParseDuration, BareNumberIsMilliseconds) {
  EXPECT_EQ(parsed("1500"), milliseconds(1500));
  EXPECT_EQ(parsed("0"), milliseconds(0));
  EXPECT_EQ(parsed("0s"), milliseconds(0));
}

TEST(ParseDuration, LargestValuesThatFit) {
  EXPECT_EQ(parsed("9223372036854775807"), milliseconds(9'223'372'036'854'775'807));
  EXPECT_EQ(parsed("9223372036854775ms"), milliseconds(9'223'372'036'854'775));
  EXPECT_EQ(parsed("9223372036854775s"), milliseconds(9'223'372'036'854'775'000));
}

TEST(ParseDuration, RejectsEmpty) {
  auto message = error_of("");
  EXPECT_NE(message.find("empty"), std::string::npos) << message;
}

TEST(ParseDuration, RejectsNegative) {
  auto message = error_of("-5s");
  EXPECT_NE(message.find("\"-5s\""), std::string::npos) << message;
  EXPECT_NE(message.find("non-negative"), std::string::npos) << message;
}

TEST(ParseDuration, RejectsUnknownUnitAndQuotesIt) {
  auto message = error_of("5w");
  EXPECT_NE(message.find("\"5w\""), std::string::npos) << message;
  EXPECT_NE(message.find("unknown unit \"w\""), std::string::npos) << message;
  // Units are case-sensitive and take no space before them.
  EXPECT_NE(error_of("5S").find("unknown unit"), std::string::npos);
  EXPECT_NE(error_of("5 s").find("unknown unit"), std::string::npos);
  EXPECT_NE(error_of("1.5s").find("unknown unit"), std::string::npos);
}

TEST(ParseDuration, RejectsTextWithoutNumber) {
  EXPECT_NE(error_of("ms").find("non-negative integer"), std::string::npos);
  EXPECT_NE(error_of(" 5s").find("non-negative integer"), std::string::npos);
  EXPECT_NE(error_of("+5s").find("non-negative integer"), std::string::npos);
}

TEST(ParseDuration, RejectsOverflow) {
  // Does not fit in 64 bits at all.
  EXPECT_NE(error_of("9223372036854775808").find("too large"), std::string::npos);
  EXPECT_NE(error_of("99999999999999999999ms").find("too large"), std::string::npos);
  // Fits as a number, overflows once multiplied by the unit.
  EXPECT_NE(error_of("9223372036854776s").find("too large"), std::string::npos);
  EXPECT_NE(error_of("153722867280913m").find("too large"), std::string::npos);
  EXPECT_NE(error_of("2562047788016h").find("too large"), std::string::npos);
}

TEST(ParseDuration, ErrorSuggestsTheAcceptedForms) {
  auto message = error_of("soon");
  EXPECT_NE(message.find("250ms"), std::string::npos) << message;
}

} // namespace
} // namespace tandem
