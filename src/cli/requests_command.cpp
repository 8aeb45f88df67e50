// `tandem requests list|show|tail`: the audit trail, over the admin API.
#include "cli/admin_client.hpp"
#include "cli/commands.hpp"
#include "http/query.hpp"

#include <boost/json.hpp>

#include <csignal>
#include <cstdio>
#include <memory>
#include <set>
#include <thread>

namespace tandem::cli {
namespace {

namespace json = boost::json;

struct RequestsArgs {
  std::string server;
  bool as_json = false;
  std::string endpoint;
  std::string since;
  std::string status;
  std::string client_request_id;
  int limit = 50;
  int timeout_s = 30;
  std::string id;
  int interval_ms = 1000;
  int max_records = 0;  // tail: stop after this many (0: until interrupted)
};

volatile std::sig_atomic_t interrupted = 0;

std::string str(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "-";
  return json::serialize(v);
}

std::string encode(const std::string& text) { return http::url_encode(text); }

std::string query(const RequestsArgs& a, const std::string& since, bool oldest_first, int limit) {
  std::string q = "?limit=" + std::to_string(limit);
  if (!a.endpoint.empty()) q += "&endpoint=" + encode(a.endpoint);
  if (!a.client_request_id.empty()) q += "&client_request_id=" + encode(a.client_request_id);
  if (!since.empty()) q += "&since=" + encode(since);
  if (!a.status.empty()) q += "&status=" + encode(a.status);
  if (oldest_first) q += "&order=asc";
  return q;
}

void print_header() {
  std::printf("%-24s %-32s %-12s %-12s %-10s %-16s %6s %9s %12s\n", "TIME", "REQUEST_ID", "ENDPOINT", "VERSION",
              "TIER", "WORKER", "STATUS", "TOTAL_MS", "COST_USD");
}

void print_row(const json::object& r) {
  const auto& d = r.at("duration_ms").as_object();
  std::printf("%-24s %-32s %-12s %-12s %-10s %-16s %6s %9.2f %12.9f\n", str(r.at("time")).c_str(),
              str(r.at("request_id")).c_str(), str(r.at("endpoint")).c_str(), str(r.at("model_version")).c_str(),
              str(r.at("tier")).c_str(), str(r.at("worker")).c_str(), str(r.at("status")).c_str(),
              d.at("total").to_number<double>(), r.at("cost_usd").to_number<double>());
}

int failed(const char* what, const Error& e) {
  std::fprintf(stderr, "tandem requests %s: %s\n", what, e.message.c_str());
  return e.code == ErrorCode::invalid_request ? 2 : 1;
}

int failed_http(const char* what, const AdminResponse& r) {
  std::fprintf(stderr, "tandem requests %s: HTTP %d: %s\n", what, r.status, error_message(r).c_str());
  return 1;
}

int run_list(const RequestsArgs& a) {
  auto client = AdminClient::create(a.server, std::chrono::seconds(a.timeout_s));
  if (!client) return failed("list", client.error());
  auto res = client->request("GET", "/admin/v1/requests" + query(a, a.since, false, a.limit));
  if (!res) return failed("list", res.error());
  if (res->status != 200) return failed_http("list", *res);
  if (a.as_json) {
    std::printf("%s\n", res->body.c_str());
    return 0;
  }
  print_header();
  const auto page = json::parse(res->body);
  for (const auto& r : page.as_object().at("requests").as_array()) print_row(r.as_object());
  return 0;
}

int run_show(const RequestsArgs& a) {
  auto client = AdminClient::create(a.server, std::chrono::seconds(a.timeout_s));
  if (!client) return failed("show", client.error());
  auto res = client->request("GET", "/admin/v1/requests/" + encode(a.id));
  if (!res) return failed("show", res.error());
  if (res->status == 409) {
    // Several requests were sent with this client id: list them, choose none.
    std::fprintf(stderr, "tandem requests show: %s\n", error_message(*res).c_str());
    boost::system::error_code ec;
    const auto page = json::parse(res->body, ec);
    if (!ec && page.is_object())
      if (const auto* matches = page.as_object().if_contains("matches"); matches && matches->is_array()) {
        print_header();
        for (const auto& r : matches->as_array()) print_row(r.as_object());
      }
    return 1;
  }
  if (res->status != 200) return failed_http("show", *res);
  if (a.as_json) {
    std::printf("%s\n", res->body.c_str());
    return 0;
  }
  const auto r = json::parse(res->body).as_object();
  const auto& d = r.at("duration_ms").as_object();
  std::printf("request:     %s\n", str(r.at("request_id")).c_str());
  if (const auto* client = r.if_contains("client_request_id"); client && client->is_string())
    std::printf("client id:   %s\n", str(*client).c_str());
  std::printf("trace:       %s\n", str(r.at("trace_id")).c_str());
  std::printf("time:        %s\n", str(r.at("time")).c_str());
  std::printf("endpoint:    %s (model version %s)\n", str(r.at("endpoint")).c_str(), str(r.at("model_version")).c_str());
  const std::string input_sha256 = str(r.at("input_sha256"));
  std::printf("input:       %s\n", input_sha256.empty() ? "not recorded (server.audit.input_digest: none)"
                                                         : ("sha256:" + input_sha256).c_str());
  std::printf("served by:   %s tier, worker %s, %s attempt(s)\n", str(r.at("tier")).c_str(), str(r.at("worker")).c_str(),
              str(r.at("attempts")).c_str());
  std::printf("status:      %s%s\n", str(r.at("status")).c_str(),
              r.at("error").is_null() ? "" : (" (" + str(r.at("error")) + ")").c_str());
  std::printf("durations:   total %.3f ms = queue %.3f + upstream %.3f + gateway; cold start %.3f ms\n",
              d.at("total").to_number<double>(), d.at("queue").to_number<double>(),
              d.at("upstream").to_number<double>(), d.at("cold_start").to_number<double>());
  std::printf("cost:        $%.9f\n", r.at("cost_usd").to_number<double>());
  return 0;
}

int run_tail(const RequestsArgs& a) {
  auto client = AdminClient::create(a.server, std::chrono::seconds(a.timeout_s));
  if (!client) return failed("tail", client.error());
  std::signal(SIGINT, [](int) { interrupted = 1; });
  std::signal(SIGTERM, [](int) { interrupted = 1; });
  // Start from now (or --since), then ask for what is newer than the last record seen. Records
  // written late within the same millisecond are caught by keeping the ids seen at that time.
  std::string since = a.since;
  std::int64_t last_ms = -1;
  std::set<std::string> seen_at_last;
  if (since.empty()) {
    // Follow from the newest record there is: records arrive late (they are written in
    // batches), so "now" would skip them.
    auto newest = client->request("GET", "/admin/v1/requests" + query(a, "", false, 1));
    if (!newest) return failed("tail", newest.error());
    if (newest->status != 200) return failed_http("tail", *newest);
    const auto page = json::parse(newest->body);
    const auto& rows = page.at("requests").as_array();
    if (rows.empty()) {
      since = "0";
    } else {
      last_ms = rows[0].at("time_unix_ms").to_number<std::int64_t>();
      seen_at_last.insert(str(rows[0].at("request_id")));
    }
  }
  int printed = 0;
  if (!a.as_json) print_header();
  std::fflush(stdout);
  while (!interrupted) {
    const std::string from = last_ms < 0 ? since : std::to_string(last_ms);
    auto res = client->request("GET", "/admin/v1/requests" + query(a, from, true, 1000));
    if (!res) return failed("tail", res.error());
    if (res->status != 200) return failed_http("tail", *res);
    const auto page = json::parse(res->body);
    for (const auto& v : page.as_object().at("requests").as_array()) {
      const auto& r = v.as_object();
      const std::int64_t t = r.at("time_unix_ms").to_number<std::int64_t>();
      const std::string id = str(r.at("request_id"));
      if (t == last_ms && seen_at_last.count(id)) continue;
      if (t != last_ms) {
        seen_at_last.clear();
        last_ms = t;
      }
      seen_at_last.insert(id);
      if (a.as_json) std::printf("%s\n", json::serialize(r).c_str());
      else print_row(r);
      if (a.max_records > 0 && ++printed >= a.max_records) {
        std::fflush(stdout);
        return 0;
      }
    }
    std::fflush(stdout);
    // Polling: the audit trail is written in batches anyway (every flush interval).
    for (int waited = 0; waited < a.interval_ms && !interrupted; waited += 50)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

void add_common(CLI::App* cmd, RequestsArgs& a) {
  cmd->add_option("--server", a.server, "tandem server URL (default: $TANDEM_SERVER, else http://127.0.0.1:8080)");
  cmd->add_flag("--json", a.as_json, "Print JSON instead of a table");
  cmd->add_option("--timeout", a.timeout_s, "Seconds to wait for the server")->capture_default_str()->check(
      CLI::Range(1, 3600));
}

void add_filters(CLI::App* cmd, RequestsArgs& a) {
  cmd->add_option("--endpoint", a.endpoint, "Only this endpoint");
  cmd->add_option("--since", a.since, "Unix ms, an RFC 3339 UTC time, or a duration ago (15m, 2h, 7d)");
  cmd->add_option("--status", a.status, "An HTTP status (429) or a class (5xx)");
}

} // namespace

void add_requests_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<RequestsArgs>();
  auto* requests = app.add_subcommand("requests", "The audit trail: one record per inference request");
  requests->require_subcommand(1);
  auto* list = requests->add_subcommand("list", "Recent requests, newest first");
  add_common(list, *a);
  add_filters(list, *a);
  list->add_option("--client-request-id", a->client_request_id,
                   "Only requests the client sent with this x-request-id (takes no other filter)");
  list->add_option("--limit", a->limit, "At most this many (1-1000)")->capture_default_str()->check(CLI::Range(1, 1000));
  list->callback([a, &exit_code] { exit_code = run_list(*a); });

  auto* show = requests->add_subcommand("show", "One request's record");
  show->add_option("id", a->id,
                   "The request's id (its x-request-id answer header), or the id the client sent (when one "
                   "request alone was sent with it)")
      ->required();
  add_common(show, *a);
  show->callback([a, &exit_code] { exit_code = run_show(*a); });

  auto* tail = requests->add_subcommand("tail", "Follow requests as they are recorded (Ctrl-C stops)");
  add_common(tail, *a);
  add_filters(tail, *a);
  tail->add_option("--interval-ms", a->interval_ms, "Poll interval")->capture_default_str()->check(CLI::Range(50, 60'000));
  tail->add_option("--max", a->max_records, "Stop after this many records (0: never)")->capture_default_str();
  tail->callback([a, &exit_code] { exit_code = run_tail(*a); });
}

} // namespace tandem::cli
