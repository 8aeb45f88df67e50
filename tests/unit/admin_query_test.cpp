// Query strings, time bounds and model references of the admin API, the configuration sections
// that go with them (server.tracing, server.audit, `model: NAME@VERSION`), and the admin
// API's /admin/v1/requests parameters, driven directly against a real store.
#include "config/config.hpp"
#include "base/duration.hpp"
#include "gateway/admin_api.hpp"
#include "http/query.hpp"
#include "state/sqlite_store.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Pairs = std::vector<std::pair<std::string, std::string>>;

// --- parse_query / url_encode -----------------------------------------------------------

Pairs query_ok(std::string_view text) {
  auto parsed = http::parse_query(text);
  EXPECT_TRUE(parsed.has_value()) << "refused: " << text;
  return parsed.value_or(Pairs{});
}

TEST(ParseQuery, SplitsPairsAndDecodesPercentEscapes) {
  EXPECT_EQ(query_ok("a=1&b=x%20y"), (Pairs{{"a", "1"}, {"b", "x y"}}));
  EXPECT_EQ(query_ok("%41%42=%7e%7E"), (Pairs{{"AB", "~~"}}));
  EXPECT_EQ(query_ok("x=%41"), (Pairs{{"x", "A"}})); // an escape that ends the text
  EXPECT_EQ(query_ok("p=%2B%26%3D"), (Pairs{{"p", "+&="}}));
}

TEST(ParseQuery, PlusIsASpace) {
  EXPECT_EQ(query_ok("q=a+b+c"), (Pairs{{"q", "a b c"}}));
  EXPECT_EQ(query_ok("a+key=v"), (Pairs{{"a key", "v"}}));
}

TEST(ParseQuery, EmptyTextAndEmptySegmentsGiveNoPairs) {
  EXPECT_EQ(query_ok(""), Pairs{});
  EXPECT_EQ(query_ok("&&&"), Pairs{});
  EXPECT_EQ(query_ok("a=1&&b=2&"), (Pairs{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(query_ok("&a=1"), (Pairs{{"a", "1"}}));
}

TEST(ParseQuery, KeyWithoutEqualsHasAnEmptyValue) {
  EXPECT_EQ(query_ok("flag&x="), (Pairs{{"flag", ""}, {"x", ""}}));
  EXPECT_EQ(query_ok("=v"), (Pairs{{"", "v"}}));
}

TEST(ParseQuery, OnlyTheFirstEqualsSplitsKeyFromValue) {
  EXPECT_EQ(query_ok("a=b=c"), (Pairs{{"a", "b=c"}}));
}

TEST(ParseQuery, RepeatedKeysKeepTheirOrder) {
  EXPECT_EQ(query_ok("k=1&k=2&j=3&k=4"), (Pairs{{"k", "1"}, {"k", "2"}, {"j", "3"}, {"k", "4"}}));
}

TEST(ParseQuery, MalformedPercentEscapesAreRefused) {
  for (const char* text : {"a=%", "a=%4", "a=%zz", "a=%4g", "a=%g4", "%=1", "ok=1&bad=%", "a%2=1", "a=x%"})
    EXPECT_FALSE(http::parse_query(text).has_value()) << text;
}

TEST(UrlEncode, LeavesUnreservedCharactersAlone) {
  const std::string unreserved = "ABCXYZabcxyz0189-._~";
  EXPECT_EQ(http::url_encode(unreserved), unreserved);
  EXPECT_EQ(http::url_encode(""), "");
}

TEST(UrlEncode, EscapesEverythingElseInUppercaseHex) {
  EXPECT_EQ(http::url_encode("a b+c/d?e=f&g"), "a%20b%2Bc%2Fd%3Fe%3Df%26g");
  EXPECT_EQ(http::url_encode("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(http::url_encode(std::string("\0\x7f\xff", 3)), "%00%7F%FF");
}

TEST(UrlEncode, RoundTripsEveryByteThroughParseQuery) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string key = "k&=+ %";
  auto parsed = http::parse_query(http::url_encode(key) + "=" + http::url_encode(all) + "&z=1");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, (Pairs{{key, all}, {"z", "1"}}));
}

// --- parse_time_bound / iso8601_utc -----------------------------------------------------

constexpr std::int64_t kNowMs = 1'795'878'245'123; // 2026-11-28T15:04:05.123Z

TEST(ParseTimeBound, UnixMilliseconds) {
  EXPECT_EQ(gateway::parse_time_bound("1795878245123", kNowMs), 1'795'878'245'123);
  EXPECT_EQ(gateway::parse_time_bound("0", kNowMs), 0);
  EXPECT_EQ(gateway::parse_time_bound("-5", kNowMs), std::nullopt);
}

TEST(ParseTimeBound, Rfc3339UtcWithAndWithoutMillis) {
  EXPECT_EQ(gateway::parse_time_bound("2026-11-28T15:04:05Z", kNowMs), 1'795'878'245'000);
  EXPECT_EQ(gateway::parse_time_bound("2026-11-28T15:04:05.123Z", kNowMs), 1'795'878'245'123);
  EXPECT_EQ(gateway::parse_time_bound("2026-11-28T15:04:05.1Z", kNowMs), 1'795'878'245'100);
  EXPECT_EQ(gateway::parse_time_bound("2026-11-28T15:04:05.123456Z", kNowMs), 1'795'878'245'123);
  EXPECT_EQ(gateway::parse_time_bound("2000-02-29T23:59:59Z", kNowMs), 951'868'799'000);
  EXPECT_EQ(gateway::parse_time_bound("1970-01-01T00:00:00Z", kNowMs), 0);
}

TEST(ParseTimeBound, DurationsCountBackFromNow) {
  EXPECT_EQ(gateway::parse_time_bound("15m", kNowMs), kNowMs - 15 * 60'000);
  EXPECT_EQ(gateway::parse_time_bound("7d", kNowMs), kNowMs - 7LL * 86'400'000);
  EXPECT_EQ(gateway::parse_time_bound("2h", kNowMs), kNowMs - 2 * 3'600'000);
  EXPECT_EQ(gateway::parse_time_bound("30s", kNowMs), kNowMs - 30'000);
  EXPECT_EQ(gateway::parse_time_bound("250ms", kNowMs), kNowMs - 250);
}

TEST(ParseTimeBound, GarbageIsRefused) {
  for (const char* text : {"", "yesterday", "15x", "-15m", "m", "1.5", "2026-11-28", "2026-11-28T15:04:05",
                           "2026-11-28T15:04:05+01:00", "2026-11-28T15:04:05Zjunk", "2026-11-28 15:04:05Z",
                           "2026-13-01T00:00:00Z", "2026-11-28T25:00:00Z"})
    EXPECT_EQ(gateway::parse_time_bound(text, kNowMs), std::nullopt) << text;
}

TEST(Iso8601Utc, FormatsMillisecondsInUtc) {
  EXPECT_EQ(gateway::iso8601_utc(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(gateway::iso8601_utc(1'795'878'245'123), "2026-11-28T15:04:05.123Z");
  EXPECT_EQ(gateway::iso8601_utc(951'868'799'007), "2000-02-29T23:59:59.007Z");
}

TEST(Iso8601Utc, RoundTripsThroughParseTimeBound) {
  for (std::int64_t ms :
       {std::int64_t{0}, std::int64_t{1}, std::int64_t{999}, kNowMs, std::int64_t{4'102'444'800'000}})
    EXPECT_EQ(gateway::parse_time_bound(gateway::iso8601_utc(ms), kNowMs), ms) << ms;
}

// --- parse_duration ---------------------------------------------------------------------

TEST(ParseDurationDays, DaySuffix) {
  EXPECT_EQ(*parse_duration("7d"), std::chrono::milliseconds(7LL * 24 * 3600 * 1000));
  EXPECT_EQ(*parse_duration("1d"), std::chrono::milliseconds(86'400'000));
  EXPECT_EQ(*parse_duration("0d"), std::chrono::milliseconds(0));
  auto too_large = parse_duration("200000000000d");
  ASSERT_FALSE(too_large.ok());
  EXPECT_NE(too_large.error().message.find("too large"), std::string::npos) << too_large.error().message;
  EXPECT_FALSE(parse_duration("7D").ok());
  EXPECT_FALSE(parse_duration("d").ok());
}

// --- model references -------------------------------------------------------------------

TEST(ParseModelRef, AcceptsLatestAndHexPrefixesOfSixToSixtyFourDigits) {
  auto latest = parse_model_ref("digits@latest");
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->name, "digits");
  EXPECT_EQ(latest->version, "latest");

  auto prefix = parse_model_ref("digits@0a1b2c");
  ASSERT_TRUE(prefix.has_value());
  EXPECT_EQ(prefix->name, "digits");
  EXPECT_EQ(prefix->version, "0a1b2c");

  EXPECT_TRUE(parse_model_ref("my.model_v2-x@0123456789ab").has_value());
  EXPECT_TRUE(parse_model_ref("m@" + std::string(64, 'f')).has_value());
}

TEST(ParseModelRef, RefusesMalformedReferences) {
  for (const std::string& text :
       {std::string("digits"), std::string("digits@"), std::string("@latest"), std::string("digits@abcde"),
        std::string("digits@ABCDEF"), std::string("digits@zzzzzz"), std::string("digits@latest2"),
        std::string("digits@Latest"), std::string("m@" + std::string(65, 'f')), std::string("a/b@latest"),
        std::string(".x@latest"), std::string("digits@abc@def"), std::string("digits@ 123456")})
    EXPECT_FALSE(parse_model_ref(text).has_value()) << text;
}

TEST(IsValidModelName, AcceptsLettersDigitsDotsUnderscoresAndDashes) {
  for (const std::string& name : {std::string("digits"), std::string("D1g1ts"), std::string("a.b_c-d"),
                                  std::string("9"), std::string("_x"), std::string(64, 'a')})
    EXPECT_TRUE(is_valid_model_name(name)) << name;
}

TEST(IsValidModelName, RefusesWhatCannotBeADirectoryOrPathSegment) {
  for (const std::string& name :
       {std::string(), std::string("."), std::string(".."), std::string(".hidden"), std::string("-x"),
        std::string("a/b"), std::string("a b"), std::string("a@b"), std::string("a%2F"),
        std::string("caf\xc3\xa9"), std::string(65, 'a')})
    EXPECT_FALSE(is_valid_model_name(name)) << name;
}

// --- configuration: server.tracing, server.audit, endpoint model references -------------

const fs::path kBase = "/etc/tandem/conf";

std::string config_with_server(const std::string& server_lines) {
  return "server:\n" + server_lines + "endpoints:\n  digits:\n    model: ../models/digits\n";
}

TEST(ParseTracingAndAuditConfig, DefaultsWhenAbsent) {
  auto config = parse_config(config_with_server("  listen: 127.0.0.1:0\n"), kBase);
  ASSERT_TRUE(config.ok()) << config.error().message;
  const auto& t = config->server.tracing;
  EXPECT_EQ(t.otlp_endpoint, "");
  EXPECT_DOUBLE_EQ(t.sample_ratio, 1.0);
  EXPECT_EQ(t.service_name, "tandem");
  const auto& a = config->server.audit;
  EXPECT_TRUE(a.enabled);
  EXPECT_EQ(a.retention_ms, std::chrono::milliseconds(7LL * 24 * 3600 * 1000));
  EXPECT_EQ(a.backlog_max, 65'536);
  EXPECT_EQ(a.batch_max, 2'000);
  EXPECT_EQ(a.flush_interval_ms, std::chrono::milliseconds(200));
  EXPECT_TRUE(a.input_sha256);
}

TEST(ParseTracingAndAuditConfig, AcceptsEveryKey) {
  auto config = parse_config(config_with_server(R"(  tracing:
    otlp_endpoint: "http://127.0.0.1:4318/v1/traces"
    sample_ratio: 0.25
    service_name: gateway-eu
    queue_max: 100
    batch_max: 10
    flush_interval: 500ms
  audit: {enabled: false, retention: 30d, backlog_max: 1000, batch_max: 50, flush_interval: 1s, input_digest: none}
)"),
                             kBase);
  ASSERT_TRUE(config.ok()) << config.error().message;
  const auto& t = config->server.tracing;
  EXPECT_EQ(t.otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
  EXPECT_DOUBLE_EQ(t.sample_ratio, 0.25);
  EXPECT_EQ(t.service_name, "gateway-eu");
  EXPECT_EQ(t.queue_max, 100);
  EXPECT_EQ(t.batch_max, 10);
  EXPECT_EQ(t.flush_interval_ms, std::chrono::milliseconds(500));
  const auto& a = config->server.audit;
  EXPECT_FALSE(a.enabled);
  EXPECT_EQ(a.retention_ms, std::chrono::milliseconds(30LL * 24 * 3600 * 1000));
  EXPECT_EQ(a.backlog_max, 1000);
  EXPECT_EQ(a.batch_max, 50);
  EXPECT_EQ(a.flush_interval_ms, std::chrono::milliseconds(1000));
  EXPECT_FALSE(a.input_sha256);
}

TEST(ParseTracingAndAuditConfig, SampleRatioBoundsAreInclusive) {
  for (const char* ratio : {"0", "1", "1.0", "0.5"}) {
    auto config =
        parse_config(config_with_server(std::string("  tracing: {sample_ratio: ") + ratio + "}\n"), kBase);
    EXPECT_TRUE(config.ok()) << ratio << ": " << config.error().message;
  }
}

struct InvalidCase {
  const char* server_lines;
  const char* key_path;
};

class InvalidTracingOrAuditValue : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidTracingOrAuditValue, IsAnErrorNamingTheKeyPath) {
  const auto& c = GetParam();
  auto config = parse_config(config_with_server(c.server_lines), kBase);
  ASSERT_FALSE(config.ok()) << "accepted: " << c.server_lines;
  EXPECT_EQ(config.error().code, ErrorCode::invalid_request);
  EXPECT_EQ(config.error().message.rfind(std::string(c.key_path) + ":", 0), 0u)
      << "expected the message to start with " << c.key_path << ", got: " << config.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    ServerSections, InvalidTracingOrAuditValue,
    ::testing::Values(InvalidCase{"  tracing: {sample_ratio: 1.5}\n", "server.tracing.sample_ratio"},
                      InvalidCase{"  tracing: {sample_ratio: -0.1}\n", "server.tracing.sample_ratio"},
                      InvalidCase{"  tracing: {sample_ratio: half}\n", "server.tracing.sample_ratio"},
                      InvalidCase{"  tracing: {sample_ratio: .nan}\n", "server.tracing.sample_ratio"},
                      InvalidCase{"  tracing: {otlp_endpoint: \"https://collector:4318/v1/traces\"}\n",
                                  "server.tracing.otlp_endpoint"},
                      InvalidCase{"  tracing: {otlp_endpoint: \"127.0.0.1:4318\"}\n",
                                  "server.tracing.otlp_endpoint"},
                      InvalidCase{"  tracing: {otlp_endpoint: [a]}\n", "server.tracing.otlp_endpoint"},
                      InvalidCase{"  tracing: {queue_max: 0}\n", "server.tracing.queue_max"},
                      InvalidCase{"  tracing: {batch_max: 0}\n", "server.tracing.batch_max"},
                      InvalidCase{"  tracing: {flush_interval: 5ms}\n", "server.tracing.flush_interval"},
                      InvalidCase{"  tracing: {flush_interval: soon}\n", "server.tracing.flush_interval"},
                      InvalidCase{"  tracing: {sampler: always}\n", "server.tracing.sampler"},
                      InvalidCase{"  tracing: on\n", "server.tracing"},
                      InvalidCase{"  audit: {enabled: yes}\n", "server.audit.enabled"},
                      InvalidCase{"  audit: {enabled: [true]}\n", "server.audit.enabled"},
                      InvalidCase{"  audit: {retention: 500ms}\n", "server.audit.retention"},
                      InvalidCase{"  audit: {retention: 7w}\n", "server.audit.retention"},
                      InvalidCase{"  audit: {backlog_max: 0}\n", "server.audit.backlog_max"},
                      InvalidCase{"  audit: {backlog_max: 10000001}\n", "server.audit.backlog_max"},
                      InvalidCase{"  audit: {batch_max: 0}\n", "server.audit.batch_max"},
                      InvalidCase{"  audit: {flush_interval: 5ms}\n", "server.audit.flush_interval"},
                      InvalidCase{"  audit: {flush_interval: 2m}\n", "server.audit.flush_interval"},
                      InvalidCase{"  audit: {keep: 7d}\n", "server.audit.keep"},
                      InvalidCase{"  audit: {input_digest: md5}\n", "server.audit.input_digest"},
                      InvalidCase{"  audit: {input_digest: [sha256]}\n", "server.audit.input_digest"},
                      InvalidCase{"  audit: []\n", "server.audit"}));

std::string endpoint_config(const std::string& model) {
  return "endpoints:\n  digits:\n    model: \"" + model + "\"\n";
}

TEST(ParseEndpointModel, RegistryReferenceSetsModelRefAndNoDirectory) {
  for (const std::string& model : {std::string("digits@latest"), std::string("digits@0123456789ab"),
                                   std::string("other-model@abcdef")}) {
    auto config = parse_config(endpoint_config(model), kBase);
    ASSERT_TRUE(config.ok()) << model << ": " << config.error().message;
    EXPECT_EQ(config->endpoints[0].model_ref, model);
    EXPECT_TRUE(config->endpoints[0].model_dir.empty()) << config->endpoints[0].model_dir;
  }
}

TEST(ParseEndpointModel, DirectorySetsModelDirAndNoRef) {
  auto config = parse_config(endpoint_config("../models/digits"), kBase);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->endpoints[0].model_dir, fs::path("/etc/tandem/models/digits"));
  EXPECT_EQ(config->endpoints[0].model_ref, "");
}

TEST(ParseEndpointModel, MalformedReferenceIsAnErrorNamingTheKey) {
  for (const std::string& model :
       {std::string("digits@zz"), std::string("digits@"), std::string("digits@ABCDEF"),
        std::string("@latest"), std::string("digits@12345"), std::string("bad name@latest")}) {
    auto config = parse_config(endpoint_config(model), kBase);
    ASSERT_FALSE(config.ok()) << "accepted " << model;
    EXPECT_EQ(config.error().message.rfind("endpoints.digits.model:", 0), 0u) << config.error().message;
    EXPECT_NE(config.error().message.find(model), std::string::npos) << config.error().message;
  }
}

TEST(ParseEndpointModel, ExistingDirectoryWhoseNameLooksLikeAReferenceIsADirectory) {
  std::string pattern = (fs::temp_directory_path() / "tandem-config-test-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path base = pattern;
  fs::create_directory(base / "digits@abcdef");
  auto config = parse_config(endpoint_config("digits@abcdef"), base);
  auto odd = parse_config(endpoint_config("odd@name"), base);
  fs::create_directory(base / "odd@name");
  auto odd_present = parse_config(endpoint_config("odd@name"), base);
  fs::remove_all(base);

  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->endpoints[0].model_dir, base / "digits@abcdef");
  EXPECT_EQ(config->endpoints[0].model_ref, "");
  EXPECT_FALSE(odd.ok());
  ASSERT_TRUE(odd_present.ok()) << odd_present.error().message;
  EXPECT_EQ(odd_present->endpoints[0].model_dir, base / "odd@name");
}

// --- /admin/v1/requests, driven directly ------------------------------------------------

class AdminRequestsTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tandem-admin-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto opened = registry::open_sqlite_store(registry::sqlite_path(dir_));
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(*opened);
    models_ = std::make_unique<registry::ModelRegistry>(*store_, dir_, [] { return kNowMs; });
    clock_.set(TimePoint(std::chrono::milliseconds(kNowMs)));
    api_ = std::make_unique<gateway::AdminApi>(*store_, *models_, clock_);

    std::vector<registry::AuditRecord> records;
    auto add = [&](const char* id, std::int64_t ago_ms, const char* endpoint, int status) {
      registry::AuditRecord r;
      r.request_id = id;
      r.time_unix_ms = kNowMs - ago_ms;
      r.endpoint = endpoint;
      r.status = status;
      r.tier = "dedicated";
      records.push_back(r);
    };
    add("old", 2 * 3'600'000, "digits", 200);
    add("fail", 10 * 60'000, "digits", 503);
    add("busy", 5 * 60'000, "other", 429);
    add("new", 1'000, "digits", 200);
    ASSERT_TRUE(store_->append_audit(records).ok());
  }

  void TearDown() override {
    api_.reset();
    models_.reset();
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  struct Answer {
    unsigned status = 0;
    boost::json::value body;
  };

  Answer get(const std::string& target) {
    http::Request request{http::bhttp::verb::get, target, 11};
    const auto q = target.find('?');
    const std::string path = target.substr(0, q);
    const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    auto reply = api_->handle(request, path, query);
    EXPECT_TRUE(reply.has_value()) << target;
    if (!reply) return {};
    boost::system::error_code ec;
    auto body = boost::json::parse(reply->body, ec);
    EXPECT_FALSE(ec) << reply->body;
    return {reply->status, body};
  }

  std::vector<std::string> ids(const std::string& target) {
    auto answer = get(target);
    EXPECT_EQ(answer.status, 200u) << target << ": " << boost::json::serialize(answer.body);
    std::vector<std::string> out;
    if (answer.status != 200) return out;
    for (const auto& r : answer.body.at("requests").as_array())
      out.emplace_back(r.at("request_id").as_string());
    return out;
  }

  std::string error_of(const std::string& target) {
    auto answer = get(target);
    EXPECT_EQ(answer.status, 400u) << target;
    return answer.status == 400 ? std::string(answer.body.at("error").as_string()) : std::string();
  }

  fs::path dir_;
  std::unique_ptr<registry::StateStore> store_;
  std::unique_ptr<registry::ModelRegistry> models_;
  ManualClock clock_;
  std::unique_ptr<gateway::AdminApi> api_;
};

using Ids = std::vector<std::string>;

TEST_F(AdminRequestsTest, FiltersByEndpointStatusAndTime) {
  EXPECT_EQ(ids("/admin/v1/requests"), (Ids{"new", "busy", "fail", "old"}));
  EXPECT_EQ(ids("/admin/v1/requests?endpoint=digits&order=asc"), (Ids{"old", "fail", "new"}));
  EXPECT_EQ(ids("/admin/v1/requests?status=5xx"), (Ids{"fail"}));
  EXPECT_EQ(ids("/admin/v1/requests?status=200"), (Ids{"new", "old"}));
  EXPECT_EQ(ids("/admin/v1/requests?since=15m"), (Ids{"new", "busy", "fail"}));
  EXPECT_EQ(ids("/admin/v1/requests?since=15m&before=2m"), (Ids{"busy", "fail"}));
  EXPECT_EQ(ids("/admin/v1/requests?since=" + http::url_encode(gateway::iso8601_utc(kNowMs - 6 * 60'000))),
            (Ids{"new", "busy"}));
  EXPECT_EQ(ids("/admin/v1/requests?limit=1"), (Ids{"new"}));
}

TEST_F(AdminRequestsTest, InvalidParametersAreRefusedNamingTheParameter) {
  EXPECT_EQ(error_of("/admin/v1/requests?limit=0").rfind("limit:", 0), 0u);
  EXPECT_EQ(error_of("/admin/v1/requests?limit=1001").rfind("limit:", 0), 0u);
  EXPECT_EQ(error_of("/admin/v1/requests?limit=ten").rfind("limit:", 0), 0u);
  EXPECT_EQ(error_of("/admin/v1/requests?status=6xx").rfind("status:", 0), 0u);
  EXPECT_EQ(error_of("/admin/v1/requests?status=99").rfind("status:", 0), 0u);
  EXPECT_EQ(error_of("/admin/v1/requests?since=yesterday").rfind("since:", 0), 0u);
  EXPECT_EQ(error_of("/admin/v1/requests?before=soon").rfind("before:", 0), 0u);
  EXPECT_EQ(error_of("/admin/v1/requests?order=up").rfind("order:", 0), 0u);
  EXPECT_EQ(error_of("/admin/v1/requests?tier=dedicated").rfind("tier:", 0), 0u);
  EXPECT_NE(error_of("/admin/v1/requests?endpoint=%zz").find("%-escape"), std::string::npos);
}

TEST_F(AdminRequestsTest, RequestByIdFindsTheRecordOrAnswers404) {
  auto found = get("/admin/v1/requests/fail");
  ASSERT_EQ(found.status, 200u);
  EXPECT_EQ(found.body.at("request_id").as_string(), "fail");
  EXPECT_EQ(found.body.at("status").as_int64(), 503);
  EXPECT_EQ(found.body.at("time").as_string(), gateway::iso8601_utc(kNowMs - 10 * 60'000));

  auto missing = get("/admin/v1/requests/nope");
  EXPECT_EQ(missing.status, 404u);
  EXPECT_TRUE(missing.body.at("error").is_string());
}

} // namespace
} // namespace tandem
