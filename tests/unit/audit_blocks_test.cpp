#include "state/audit_blocks.hpp"

#include "support/audit_record.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace tandem::registry {
namespace {

AuditRecord plain_record() { return tandem::testing::audit_record("req-1", 1'795'900'000'123, "digits", 200); }

std::string block_of(const AuditRecord& r) {
  std::string json = "[";
  append_audit_record_json(r, json);
  return json + "]";
}

/// Whether SQLite's own JSON functions accept the text (users query blocks with json_each).
bool sqlite_reads_as_json(const std::string& text) {
  sqlite3* db = nullptr;
  sqlite3_open(":memory:", &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT json_valid(?)", -1, &s, nullptr);
  sqlite3_bind_text(s, 1, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  const bool valid = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1;
  sqlite3_finalize(s);
  sqlite3_close(db);
  return valid;
}

TEST(AuditBlocks, ARecordIsOneJsonArrayInColumnOrder) {
  EXPECT_EQ(block_of(plain_record()),
            "[[\"req-1\",\"" + std::string(32, 'a') + "\",1795900000123,\"digits\",\"digits@0123456789ab\",\"" +
                std::string(64, 'c') + "\",\"dedicated\",\"w-1\",200,\"\",1,0.25,0,1.5,2.125,1.097e-06,\"\"]]");
}

TEST(AuditBlocks, BlocksWrittenBeforeClientIdsReadWithNone) {
  // Sixteen columns: no client_request_id, as stores written before it hold.
  auto back = parse_audit_block_json("[[\"req-1\",\"t\",1,\"d\",\"v\",\"h\",\"t\",\"w\",200,\"\",1,0,0,0,0,0]]");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ((*back)[0].request_id, "req-1");
  EXPECT_EQ((*back)[0].client_request_id, "");
  AuditRecord r = plain_record();
  r.client_request_id = "mine-7";
  auto again = parse_audit_block_json(block_of(r));
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ((*again)[0].client_request_id, "mine-7");
}

TEST(AuditBlocks, AClientsIdIsIndexedBesideTheRecordsOwn) {
  AuditRecord own = plain_record();
  own.request_id = "019a2241a278933f8a0c677f67227b63";
  own.time_unix_ms = 0x019a2241a278LL;
  own.client_request_id = "mine-7";
  AuditRecord foreign = plain_record();
  foreign.time_unix_ms = own.time_unix_ms;
  const std::vector<AuditRecord> records = {own, foreign};
  const auto blocks = make_audit_blocks(records);
  ASSERT_EQ(blocks.size(), 1u);
  std::vector<std::string> ids;
  for (const auto& [id, r] : blocks[0].indexed_ids) ids.emplace_back(id);
  EXPECT_EQ(ids, (std::vector<std::string>{"mine-7", "req-1"}));
}

TEST(AuditBlocks, TextThatNeedsEscapingRoundTripsAndIsValidJsonForSqlite) {
  AuditRecord r = plain_record();
  r.request_id = "quote\" backslash\\ tab\t newline\n nul" + std::string(1, '\0') + " del\x7f";
  r.endpoint = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"; // two-, three- and four-byte UTF-8
  r.error_code = std::string(300, 'e');
  const std::string json = block_of(r);
  EXPECT_TRUE(sqlite_reads_as_json(json)) << json;
  auto back = parse_audit_block_json(json);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].request_id, r.request_id);
  EXPECT_EQ((*back)[0].endpoint, r.endpoint);
  EXPECT_EQ((*back)[0].error_code, r.error_code);
}

TEST(AuditBlocks, ASpecialByteIsEscapedWhereverItFallsInAWordOfEight) {
  // Plain runs are scanned eight bytes at a time: put each kind of byte at every place.
  for (const char special : {'"', '\\', '\n', '\x1f', '\x7f', ' ', '~'}) {
    for (std::size_t at = 0; at < 24; ++at) {
      AuditRecord r = plain_record();
      r.trace_id = std::string(24, 'f');
      r.trace_id[at] = special;
      const std::string json = block_of(r);
      ASSERT_TRUE(sqlite_reads_as_json(json)) << json;
      auto back = parse_audit_block_json(json);
      ASSERT_TRUE(back.ok()) << back.error().message;
      ASSERT_EQ((*back)[0].trace_id, r.trace_id) << int{special} << " at " << at;
    }
  }
}

TEST(AuditBlocks, BytesThatAreNotUtf8BecomeTheReplacementCharacter) {
  AuditRecord r = plain_record();
  // A lone continuation byte, an overlong '/', a UTF-16 surrogate, a code point past U+10FFFF
  // and a sequence cut short by the end of the text.
  r.worker = std::string("a\x80") + "b\xC0\xAF" + "c\xED\xA0\x80" + "d\xF4\x90\x80\x80" + "e\xE2\x82";
  const std::string json = block_of(r);
  EXPECT_TRUE(sqlite_reads_as_json(json)) << json;
  auto back = parse_audit_block_json(json);
  ASSERT_TRUE(back.ok()) << back.error().message;
  const std::string bad = "\xEF\xBF\xBD";
  EXPECT_EQ((*back)[0].worker, "a" + bad + "b" + bad + bad + "c" + bad + bad + bad + "d" + bad + bad + bad +
                                   bad + "e" + bad + bad);
}

TEST(AuditBlocks, EveryDoubleReadsBackExactlyAndNonFiniteOnesAsNaN) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> ms(0, 120'000);
  std::uniform_real_distribution<double> exponent(-12, 2);
  for (int i = 0; i < 2000; ++i) {
    AuditRecord r = plain_record();
    r.queue_ms = ms(rng);
    r.cold_start_ms = std::nextafter(ms(rng), 0.0);
    r.upstream_ms = ms(rng) / 3;
    r.total_ms = -ms(rng);
    r.cost_usd = std::pow(10.0, exponent(rng));
    auto back = parse_audit_block_json(block_of(r));
    ASSERT_TRUE(back.ok()) << back.error().message;
    const AuditRecord& b = (*back)[0];
    ASSERT_EQ(b.queue_ms, r.queue_ms);
    ASSERT_EQ(b.cold_start_ms, r.cold_start_ms);
    ASSERT_EQ(b.upstream_ms, r.upstream_ms);
    ASSERT_EQ(b.total_ms, r.total_ms);
    ASSERT_EQ(b.cost_usd, r.cost_usd);
  }
  // Durations are whole nanoseconds in milliseconds: those take a cheaper path, exact too.
  std::uniform_int_distribution<std::int64_t> ns(-5'000'000'000'000, 5'000'000'000'000);
  for (int i = 0; i < 20000; ++i) {
    const double value = static_cast<double>(ns(rng)) / 1e6;
    AuditRecord r = plain_record();
    r.queue_ms = value;
    r.total_ms = static_cast<double>(i) / 1e6;
    auto back = parse_audit_block_json(block_of(r));
    ASSERT_TRUE(back.ok()) << back.error().message;
    ASSERT_EQ((*back)[0].queue_ms, value) << block_of(r);
    ASSERT_EQ((*back)[0].total_ms, r.total_ms) << block_of(r);
  }
  AuditRecord zeros = plain_record();
  zeros.queue_ms = -0.0;
  zeros.cold_start_ms = 0.000001;
  zeros.upstream_ms = -2.5;
  zeros.total_ms = 1e300;
  EXPECT_NE(block_of(zeros).find(",-0,0.000001,-2.5,1e+300,"), std::string::npos) << block_of(zeros);
  auto back_zeros = parse_audit_block_json(block_of(zeros));
  ASSERT_TRUE(back_zeros.ok());
  EXPECT_TRUE(std::signbit((*back_zeros)[0].queue_ms));

  AuditRecord r = plain_record();
  r.queue_ms = std::numeric_limits<double>::infinity();
  r.cost_usd = std::numeric_limits<double>::quiet_NaN();
  const std::string json = block_of(r);
  EXPECT_TRUE(sqlite_reads_as_json(json)) << json;
  auto back = parse_audit_block_json(json);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(std::isnan((*back)[0].queue_ms));
  EXPECT_TRUE(std::isnan((*back)[0].cost_usd));
}

TEST(AuditBlocks, TextThatIsNotABlockIsAnErrorSayingWhatIsWrong) {
  const std::string record = block_of(plain_record());
  const std::string one = record.substr(1, record.size() - 2);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "incomplete"},
      {"{}", "object"},
      {"[" + one, "incomplete"},
      {"[[\"a\",\"b\",1]]", "3 columns, not 17"},
      {"[" + one.substr(0, one.size() - 1) + ",7]]", "too many columns"},
      {"[[1" + one.substr(one.find(',')) + "]", "column request_id holds a number"},
      {"[[[\"nested\"]]]", "a record holds an array"},
      {"[\"loose\"]", "outside any record"},
      {"[[\"a\",\"b\",12.5,\"d\",\"v\",\"h\",\"t\",\"w\",200,\"\",1,0,0,0,0,0]]", "time_unix_ms holds 12.5"},
      {"[[\"a\",\"b\",1,\"d\",\"v\",\"h\",\"t\",\"w\",true,\"\",1,0,0,0,0,0]]", "status holds a boolean"},
      {"[[\"a\",\"b\",1,\"d\",\"v\",\"h\",\"t\",\"w\",99999999999,\"\",1,0,0,0,0,0]]",
       "status holds 99999999999"},
      {"[[\"a\",null,1,\"d\",\"v\",\"h\",\"t\",\"w\",200,\"\",1,0,0,0,0,0]]", "trace_id holds null"},
  };
  for (const auto& [text, expected] : cases) {
    auto parsed = parse_audit_block_json(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_NE(parsed.error().message.find(expected), std::string::npos)
        << text << " gave: " << parsed.error().message;
  }
}

TEST(AuditBlocks, OnlyThirtyTwoLowercaseHexDigitsCarryATime) {
  EXPECT_EQ(time_in_request_id("01a2241a278a933f8a0c677f67227b63"), 0x01a2241a278aLL);
  EXPECT_EQ(time_in_request_id("000000000000ffffffffffffffffffff"), 0);
  EXPECT_FALSE(time_in_request_id("01A2241A278A933F8A0C677F67227B63"));
  EXPECT_FALSE(time_in_request_id("01a2241a278a933f8a0c677f67227b6"));
  EXPECT_FALSE(time_in_request_id("01a2241a278a933f8a0c677f67227b6g"));
  EXPECT_FALSE(time_in_request_id("req-1"));
  EXPECT_FALSE(time_in_request_id(""));
}

TEST(AuditBlocks, EveryByteAtEveryPlaceOfAnIdIsCheckedForHex) {
  // The check reads eight characters at a time: each byte value at each place, against the
  // plain definition.
  const std::string good = "01a2241a278a933f8a0c677f67227b63";
  for (std::size_t place = 0; place < good.size(); ++place) {
    for (int byte = 0; byte < 256; ++byte) {
      std::string id = good;
      id[place] = static_cast<char>(byte);
      const bool hex = (byte >= '0' && byte <= '9') || (byte >= 'a' && byte <= 'f');
      const auto time = time_in_request_id(id);
      ASSERT_EQ(time.has_value(), hex) << "byte " << byte << " at " << place;
      if (hex && place < 12) {
        const std::int64_t digit = byte <= '9' ? byte - '0' : byte - 'a' + 10;
        const int shift = 4 * (11 - static_cast<int>(place));
        const std::int64_t expected = (0x01a2241a278aLL & ~(std::int64_t{0xF} << shift)) | (digit << shift);
        ASSERT_EQ(*time, expected) << "byte " << byte << " at " << place;
      } else if (hex) {
        ASSERT_EQ(*time, 0x01a2241a278aLL);
      }
    }
  }
}

TEST(AuditBlocks, AnEmptyBatchMakesNoBlock) {
  EXPECT_TRUE(make_audit_blocks({}).empty());
}

} // namespace
} // namespace tandem::registry
