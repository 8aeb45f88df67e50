// Audit records, traces and structured logs, end to end: the real server and workers, a real
// OTLP/HTTP receiver, the real SQLite file.
#include "harness.hpp"
#include "base/sha256.hpp"
#include "model/model_manifest.hpp"
#include "state/sqlite_store.hpp"
#include "support/otlp_receiver.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <map>
#include <optional>
#include <set>

namespace tandem::testing {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string sha256_of(const std::string& text) { return sha256_hex(text); }

json::array audit_page(HttpClient& client, const std::string& query) {
  auto res = client.get("/admin/v1/requests" + query);
  EXPECT_EQ(res.status, 200) << res.body;
  if (res.status != 200) return {};
  return json::parse(res.body).at("requests").as_array();
}

std::string integrity_check(const fs::path& db_file) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return "cannot open";
  }
  std::string result;
  sqlite3_exec(
      db, "PRAGMA integrity_check",
      [](void* out, int, char** values, char**) {
        *static_cast<std::string*>(out) += values[0] ? values[0] : "";
        return 0;
      },
      &result, nullptr);
  sqlite3_close(db);
  return result;
}

std::int64_t audit_rows(const fs::path& db_file) {
  sqlite3* db = nullptr;
  std::int64_t count = -1;
  if (sqlite3_open_v2(db_file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(SUM(records), 0) FROM audit_blocks", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
      count = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return count;
}

TEST(AuditTest, EveryRequestHasARecordWithVersionTierWorkerAndInputHash) {
  ServerProcess server(digits_endpoint(2));
  ASSERT_TRUE(server.wait_ready(2));
  auto client = server.client();
  const auto version = load_model_manifest(source_dir() / "models/digits")->version;
  auto rows = load_heldout();
  constexpr int kRequests = 40;
  std::map<std::string, std::pair<std::string, std::string>> sent;  // request id -> (input hash, worker)
  for (int i = 0; i < kRequests; ++i) {
    std::string body = infer_body(rows, static_cast<std::size_t>(i), 1 + i % 3);
    // Every fourth body is padded past 4 KiB (up to ~200 KiB), where the digest is taken
    // after the reply is written: the record must hold the same hash all the same.
    if (i % 4 == 3) body.append(4096 + static_cast<std::size_t>(i) * 5000, ' ');
    const std::string id = "audit-" + std::to_string(i);
    auto res = client.post("/v2/models/digits/infer", body, {{"x-request-id", id}});
    ASSERT_EQ(res.status, 200) << res.body;
    sent[id] = {sha256_of(body), res.header("x-tandem-worker")};
  }
  auto bad = client.post("/v2/models/digits/infer", R"({"inputs":[{"name":"pixels"}]})", {{"x-request-id", "audit-bad"}});
  ASSERT_EQ(bad.status, 400);

  json::array records;
  ASSERT_TRUE(wait_until(
      [&] {
        records = audit_page(client, "?endpoint=digits&limit=1000");
        return records.size() >= kRequests + 1;
      },
      10s))
      << records.size();
  EXPECT_EQ(records.size(), static_cast<std::size_t>(kRequests + 1));
  int checked = 0;
  for (const auto& v : records) {
    const auto& r = v.as_object();
    const std::string id(r.at("client_request_id").as_string());
    EXPECT_EQ(r.at("request_id").as_string().size(), 32u) << "a record's own id is made by the gateway";
    EXPECT_EQ(r.at("model_version").as_string(), version);
    EXPECT_EQ(r.at("trace_id").as_string().size(), 32u);
    if (id == "audit-bad") {
      EXPECT_EQ(r.at("status").as_int64(), 400);
      EXPECT_EQ(r.at("error").as_string(), "invalid_request");
      EXPECT_EQ(r.at("tier").as_string(), "none");
      continue;
    }
    ASSERT_TRUE(sent.count(id)) << id;
    EXPECT_EQ(r.at("status").as_int64(), 200);
    EXPECT_EQ(r.at("tier").as_string(), "dedicated");
    EXPECT_EQ(r.at("worker").as_string(), sent[id].second);
    EXPECT_EQ(r.at("input_sha256").as_string(), sent[id].first);
    EXPECT_EQ(r.at("attempts").as_int64(), 1);
    const auto& d = r.at("duration_ms").as_object();
    EXPECT_GT(d.at("upstream").as_double(), 0.0);
    EXPECT_GE(d.at("total").as_double(), d.at("upstream").as_double());
    EXPECT_GE(r.at("cost_usd").as_double(), 0.0);
    ++checked;
  }
  EXPECT_EQ(checked, kRequests);

  // Filters and the single-record lookup.
  EXPECT_EQ(audit_page(client, "?status=4xx").size(), 1u);
  EXPECT_EQ(audit_page(client, "?status=200&limit=5").size(), 5u);
  EXPECT_EQ(audit_page(client, "?endpoint=other").size(), 0u);
  EXPECT_EQ(audit_page(client, "?since=1m").size(), static_cast<std::size_t>(kRequests + 1));
  auto one = client.get("/admin/v1/requests/audit-7");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(json::parse(one.body).at("input_sha256").as_string(), sent["audit-7"].first);
  EXPECT_EQ(client.get("/admin/v1/requests/nope").status, 404);
  auto bad_query = client.get("/admin/v1/requests?limit=0");
  EXPECT_EQ(bad_query.status, 400);
  EXPECT_NE(bad_query.body.find("limit"), std::string::npos) << bad_query.body;
  EXPECT_EQ(client.get("/admin/v1/requests?status=abc").status, 400);
  EXPECT_EQ(client.get("/admin/v1/requests?since=yesterday").status, 400);

  // The CLI shows the same records.
  const std::string url = "http://" + server.host() + ":" + std::to_string(server.port());
  auto list = run_tandem({"requests", "list", "--endpoint", "digits", "--status", "4xx"}, url);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find(bad.header("x-request-id")), std::string::npos) << list.out;
  auto shown = run_tandem({"requests", "show", "audit-3"}, url);
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find(sent["audit-3"].first), std::string::npos) << shown.out;
  auto tail = run_tandem({"requests", "tail", "--since", "1h", "--max", "3", "--json"}, url);
  ASSERT_EQ(tail.exit_code, 0) << tail.err;
  EXPECT_EQ(std::count(tail.out.begin(), tail.out.end(), '\n'), 3) << tail.out;

  // Counted in metrics.
  auto metrics = client.get("/metrics").body;
  EXPECT_EQ(metric_value(metrics, R"(tandem_audit_records_total{outcome="written"})"), kRequests + 1);
  EXPECT_EQ(metric_value(metrics, R"(tandem_audit_records_total{outcome="dropped"})"), 0);
}

TEST(AuditTest, KillNineLosesAtMostTheUnflushedBatchAndNeverCorruptsTheDatabase) {
  const fs::path dir = make_temp_dir();
  const fs::path db_file = registry::sqlite_path(dir / "state");
  // A long flush interval makes "the last unflushed batch" large and easy to see.
  const std::string server_yaml = "  audit: {flush_interval: 2s}\n";
  auto rows = load_heldout();
  constexpr int kFlushed = 30;
  constexpr int kUnflushed = 20;
  {
    ServerProcess server(digits_endpoint(1), server_yaml, dir);
    ASSERT_TRUE(server.wait_ready(1));
    auto client = server.client();
    for (int i = 0; i < kFlushed; ++i)
      ASSERT_EQ(client.post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 200);
    // Written within one flush interval.
    ASSERT_TRUE(wait_until([&] { return audit_rows(db_file) == kFlushed; }, 10s)) << audit_rows(db_file);
    for (int i = 0; i < kUnflushed; ++i)
      ASSERT_EQ(client.post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 200);
    server.stop(SIGKILL);
  }
  // The database opens cleanly, holds every flushed record, and at most the last batch is gone.
  EXPECT_EQ(integrity_check(db_file), "ok");
  const auto after_kill = audit_rows(db_file);
  EXPECT_GE(after_kill, kFlushed);
  EXPECT_LE(after_kill, kFlushed + kUnflushed);

  ServerProcess server(digits_endpoint(1), server_yaml, dir);
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  ASSERT_EQ(client.post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 200);
  // An orderly stop writes everything, the flush interval notwithstanding.
  server.stop(SIGTERM);
  EXPECT_EQ(integrity_check(db_file), "ok");
  EXPECT_EQ(audit_rows(db_file), after_kill + 1);
  std::error_code ec;
  if (!::testing::Test::HasFailure()) fs::remove_all(dir, ec);
}

// Sends one digits request with this request id and waits until its audit record can be read.
std::optional<json::object> audited_request(ServerProcess& server, const std::string& id) {
  auto client = server.client();
  auto rows = load_heldout();
  if (client.post("/v2/models/digits/infer", infer_body(rows, 0, 1), {{"x-request-id", id}}).status != 200)
    return std::nullopt;
  HttpResult found;
  if (!wait_until([&] { return (found = client.get("/admin/v1/requests/" + id)).status == 200; }, 5s))
    return std::nullopt;
  return json::parse(found.body).as_object();
}

TEST(AuditTest, WithInputDigestNoneRecordsCarryNoInputHash) {
  ServerProcess server(digits_endpoint(1), "  audit: {input_digest: none, flush_interval: 50ms}\n");
  ASSERT_TRUE(server.wait_ready(1));
  const auto record = audited_request(server, "unhashed");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->at("input_sha256").as_string(), "");
  EXPECT_EQ(record->at("status").as_int64(), 200);
  EXPECT_EQ(record->at("tier").as_string(), "dedicated");
}

// A request sent with another's id (its client id, or the id the gateway gave it) is recorded
// beside it, never in its place: the id a client got back always finds its own record. Before
// record ids were made by the gateway, the second request replaced the first under "victim-1".
TEST(AuditTest, ARequestSentWithAnotherRequestsIdCannotShadowItsRecord) {
  ServerProcess server(digits_endpoint(1), "  audit: {flush_interval: 50ms}\n");
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  auto victim = client.post("/v2/models/digits/infer", infer_body(rows, 0, 1), {{"x-request-id", "victim-1"}});
  ASSERT_EQ(victim.status, 200) << victim.body;
  EXPECT_EQ(victim.header("x-client-request-id"), "victim-1");
  const std::string victim_id = victim.header("x-request-id");
  ASSERT_EQ(victim_id.size(), 32u);
  ASSERT_TRUE(wait_until([&] { return client.get("/admin/v1/requests/victim-1").status == 200; }, 5s));

  const std::string bad_body = R"({"inputs":[{"name":"pixels"}]})";
  auto reused = client.post("/v2/models/digits/infer", bad_body, {{"x-request-id", "victim-1"}});
  ASSERT_EQ(reused.status, 400);
  EXPECT_NE(reused.header("x-request-id"), victim_id);
  auto forged = client.post("/v2/models/digits/infer", bad_body, {{"x-request-id", victim_id}});
  ASSERT_EQ(forged.status, 400);
  ASSERT_TRUE(wait_until([&] { return audit_page(client, "?client_request_id=victim-1").size() == 2; }, 5s));
  ASSERT_TRUE(wait_until([&] { return audit_page(client, "?client_request_id=" + victim_id).size() == 1; }, 5s));

  // The gateway's id finds the victim's record, whoever else sent that id.
  auto own = client.get("/admin/v1/requests/" + victim_id);
  ASSERT_EQ(own.status, 200) << own.body;
  EXPECT_EQ(json::parse(own.body).at("status").as_int64(), 200);
  EXPECT_EQ(json::parse(own.body).at("client_request_id").as_string(), "victim-1");
  // The client's id, sent twice, names no one record: both are listed, newest first.
  auto shared = client.get("/admin/v1/requests/victim-1");
  ASSERT_EQ(shared.status, 409) << shared.body;
  const auto doc = json::parse(shared.body).as_object();
  EXPECT_EQ(doc.at("code").as_string(), "ambiguous_request_id");
  const auto& matches = doc.at("matches").as_array();
  ASSERT_EQ(matches.size(), 2u);
  EXPECT_EQ(matches[0].at("status").as_int64(), 400);
  EXPECT_EQ(matches[1].at("request_id").as_string(), victim_id);
  // A client id sent once still finds its record.
  auto once = client.get("/admin/v1/requests/" + reused.header("x-request-id"));
  ASSERT_EQ(once.status, 200);
  EXPECT_EQ(json::parse(once.body).at("status").as_int64(), 400);

  // The CLI says the same.
  const auto show_own = run_tandem({"requests", "show", victim_id, "--timeout", "5"}, server.url());
  EXPECT_EQ(show_own.exit_code, 0) << show_own.err;
  EXPECT_NE(show_own.out.find("status:      200"), std::string::npos) << show_own.out;
  EXPECT_NE(show_own.out.find("client id:   victim-1"), std::string::npos) << show_own.out;
  const auto show_shared = run_tandem({"requests", "show", "victim-1"}, server.url());
  EXPECT_EQ(show_shared.exit_code, 1);
  EXPECT_NE(show_shared.err.find("2 requests were sent with x-request-id victim-1"), std::string::npos)
      << show_shared.err;
  EXPECT_NE(show_shared.out.find(victim_id), std::string::npos) << show_shared.out;
  const auto listed = run_tandem({"requests", "list", "--client-request-id", "victim-1", "--json"}, server.url());
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(json::parse(listed.out).at("count").as_int64(), 2);
  EXPECT_EQ(client.get("/admin/v1/requests?client_request_id=victim-1&status=400").status, 400);
}

TEST(AuditTest, RecordsOlderThanTheRetentionPeriodAreDeleted) {
  ServerProcess server(digits_endpoint(1), "  audit: {retention: 2s, flush_interval: 50ms}\n");
  ASSERT_TRUE(server.wait_ready(1));
  ASSERT_TRUE(audited_request(server, "old-one").has_value());
  auto client = server.client();
  // Retention runs every half period; the record is gone within a few seconds.
  EXPECT_TRUE(wait_until([&] { return client.get("/admin/v1/requests/old-one").status == 404; }, 10s));
  EXPECT_GE(metric_value(client.get("/metrics").body, R"(tandem_audit_records_total{outcome="expired"})").value_or(0),
            1);
}

TEST(TracingTest, SpansFromGatewayAndWorkerShareTheCallersTraceWithParentLinksIntact) {
  OtlpReceiver receiver;
  ServerProcess server(digits_endpoint(1), "  tracing: {otlp_endpoint: \"" + receiver.url() +
                                               "\", flush_interval: 50ms}\n");
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string caller_span = "00f067aa0ba902b7";
  auto res = client.post("/v2/models/digits/infer", infer_body(rows, 0, 2),
                         {{"traceparent", "00-" + trace_id + "-" + caller_span + "-01"}, {"x-request-id", "traced-1"}});
  ASSERT_EQ(res.status, 200) << res.body;
  const std::string returned = res.header("traceparent");
  ASSERT_EQ(returned.size(), 55u) << returned;
  EXPECT_EQ(returned.substr(3, 32), trace_id);
  EXPECT_EQ(returned.substr(53), "01");

  // gateway: server, validate, route, upstream; worker: its server span.
  ASSERT_TRUE(receiver.wait_for_spans(5, 10s)) << receiver.span_count();
  std::map<std::string, json::object> by_name;
  std::map<std::string, std::string> service_of;
  std::map<std::string, json::object> by_id;
  for (const auto& received : receiver.received_spans()) {
    const auto& span = received.span;
    if (span.at("traceId").as_string() != trace_id) continue;
    const std::string name(span.at("name").as_string());
    by_name[name] = span;
    service_of[name] = received.service_name;
    by_id[std::string(span.at("spanId").as_string())] = span;
  }
  const std::string root_name = "POST /v2/models/digits/infer";
  ASSERT_TRUE(by_name.count(root_name)) << "spans: " << by_name.size();
  const auto& root = by_name[root_name];
  EXPECT_EQ(root.at("parentSpanId").as_string(), caller_span);
  EXPECT_EQ(root.at("spanId").as_string(), returned.substr(36, 16));  // the response names the gateway's span
  const std::string root_id(root.at("spanId").as_string());
  for (const char* child : {"validate", "route"}) {
    ASSERT_TRUE(by_name.count(child)) << child;
    EXPECT_EQ(by_name[child].at("parentSpanId").as_string(), root_id) << child;
  }
  // The route decision carries its tier, reason and candidates.
  std::map<std::string, std::string> route_attributes;
  for (const auto& a : by_name["route"].at("attributes").as_array())
    route_attributes[std::string(a.at("key").as_string())] = json::serialize(a.at("value"));
  EXPECT_NE(route_attributes["tandem.route.tier"].find("dedicated"), std::string::npos);
  EXPECT_FALSE(route_attributes["tandem.route.reason"].empty());
  EXPECT_NE(route_attributes["tandem.route.candidates"].find("dedicated ready=1"), std::string::npos)
      << route_attributes["tandem.route.candidates"];
  const std::string upstream_name = "upstream /v2/models/digits/infer";
  ASSERT_TRUE(by_name.count(upstream_name));
  const auto& upstream = by_name[upstream_name];
  EXPECT_EQ(upstream.at("parentSpanId").as_string(), root_id);
  EXPECT_EQ(upstream.at("kind").as_int64(), 3);  // client
  EXPECT_EQ(service_of[upstream_name], "tandem");
  // The worker's own span hangs under the gateway's upstream call.
  const std::string worker_name = "worker infer digits";
  ASSERT_TRUE(receiver.wait_for_spans(6, 10s));
  for (const auto& received : receiver.received_spans())
    if (received.span.at("name").as_string() == worker_name) {
      by_name[worker_name] = received.span;
      service_of[worker_name] = received.service_name;
    }
  ASSERT_TRUE(by_name.count(worker_name)) << "no worker span";
  EXPECT_EQ(by_name[worker_name].at("traceId").as_string(), trace_id);
  EXPECT_EQ(by_name[worker_name].at("parentSpanId").as_string(), upstream.at("spanId").as_string());
  EXPECT_EQ(service_of[worker_name], "tandem-worker");
  // Timestamps nest: the worker ran inside the upstream call, which ran inside the request.
  auto ns = [](const json::object& s, const char* key) { return std::stoll(std::string(s.at(key).as_string())); };
  EXPECT_LE(ns(root, "startTimeUnixNano"), ns(upstream, "startTimeUnixNano"));
  EXPECT_GE(ns(root, "endTimeUnixNano"), ns(upstream, "endTimeUnixNano"));

  // The audit record names the same trace.
  ASSERT_TRUE(wait_until([&] { return client.get("/admin/v1/requests/traced-1").status == 200; }, 5s));
  EXPECT_EQ(json::parse(client.get("/admin/v1/requests/traced-1").body).at("trace_id").as_string(), trace_id);

  // An unsampled caller's request produces no spans and keeps its flag.
  const std::size_t before = receiver.span_count();
  auto unsampled = client.post("/v2/models/digits/infer", infer_body(rows, 0, 1),
                               {{"traceparent", "00-" + std::string(31, '1') + "2-" + caller_span + "-00"}});
  ASSERT_EQ(unsampled.status, 200);
  EXPECT_EQ(unsampled.header("traceparent").substr(53), "00");
  // A sampled request sent after it is exported; the unsampled one added nothing in between.
  auto marker = client.post("/v2/models/digits/infer", infer_body(rows, 0, 1));
  ASSERT_EQ(marker.status, 200);
  ASSERT_TRUE(receiver.wait_for_spans(before + 4, 10s));
  for (const auto& span : receiver.spans())
    EXPECT_NE(span.at("traceId").as_string(), std::string(31, '1') + "2");
  auto metrics = client.get("/metrics").body;
  EXPECT_GE(metric_value(metrics, R"(tandem_trace_spans_total{outcome="exported"})").value_or(0), 4);
}

TEST(TracingTest, AnUnreachableCollectorNeverSlowsRequestsAndFailuresAreCounted) {
  OtlpReceiver receiver;
  const std::string url = receiver.url();
  receiver.stop();  // the port is now closed: every export fails
  ServerProcess server(digits_endpoint(1), "  tracing: {otlp_endpoint: \"" + url +
                                               "\", flush_interval: 20ms, queue_max: 64}\n");
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  for (int i = 0; i < 200; ++i) {
    auto res = client.post("/v2/models/digits/infer", infer_body(rows, 0, 1));
    ASSERT_EQ(res.status, 200) << res.body;
  }
  ASSERT_TRUE(wait_until(
      [&] {
        auto m = client.get("/metrics").body;
        return metric_value(m, R"(tandem_trace_spans_total{outcome="failed"})").value_or(0) +
                   metric_value(m, R"(tandem_trace_spans_total{outcome="dropped"})").value_or(0) >
               0;
      },
      10s));
}

TEST(LoggingTest, LogLinesAreJsonAndCarryTheRequestAndTraceIds) {
  // A worker that always fails makes the gateway log the failed attempt of a request.
  ServerProcess server(digits_endpoint(1, "    worker: {args: [\"--fault-error-rate\", \"1\"]}\n    retries: 0\n"));
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  auto res = client.post("/v2/models/digits/infer", infer_body(rows, 0, 1), {{"x-request-id", "logged-request-1"}});
  EXPECT_EQ(res.status, 502);
  const std::string trace = res.header("traceparent").substr(3, 32);
  std::string line;
  ASSERT_TRUE(wait_until(
      [&] {
        const auto logs = server.logs();
        auto at = logs.find("\"request_id\":\"" + res.header("x-request-id") + "\"");
        if (at == std::string::npos) return false;
        const auto begin = logs.rfind('\n', at) + 1;
        line = logs.substr(begin, logs.find('\n', at) - begin);
        return true;
      },
      5s))
      << server.logs();
  boost::system::error_code ec;
  auto value = json::parse(line, ec);
  ASSERT_FALSE(ec) << line;
  EXPECT_EQ(value.at("level").as_string(), "warning");
  EXPECT_EQ(value.at("trace_id").as_string(), trace);
  EXPECT_FALSE(value.at("time").as_string().empty());
}

} // namespace
} // namespace tandem::testing
