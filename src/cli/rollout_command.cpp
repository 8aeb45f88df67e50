// `tandem rollout start|status|approve|pause|resume|abort|rollback|history ENDPOINT`.
#include "cli/admin_client.hpp"
#include "cli/commands.hpp"
#include "http/query.hpp"

#include <boost/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace tandem::cli {
namespace {

namespace json = boost::json;

struct RolloutArgs {
  std::string server;
  bool as_json = false;
  std::string endpoint;
  std::string to;
  std::string strategy = "canary";
  std::string steps;
  std::string step_duration;
  std::int64_t min_requests = 0;
  bool require_approval = false;
  double max_error_rate_increase = -1;
  double max_p95_ratio = -1;
  double max_divergence = -1;
  double p95_slack_ms = -1;
  std::string rollback_window;
  std::string warmup_timeout;
  std::vector<std::string> worker_args;
  std::string actor;
  int limit = 50;
};

std::string who(const RolloutArgs& a) {
  if (!a.actor.empty()) return a.actor;
  const char* user = std::getenv("USER");
  return user && *user ? user : "unknown";
}

std::string str(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "-";
  return json::serialize(v);
}

void print_status(const json::object& s) {
  std::printf("endpoint:   %s (rollout %s)\n", str(s.at("endpoint")).c_str(), str(s.at("rollout_id")).c_str());
  std::printf("strategy:   %s, %s -> %s\n", str(s.at("strategy")).c_str(), str(s.at("from_version")).c_str(),
              str(s.at("to")).c_str());
  std::printf("phase:      %s, %s%% of traffic on the new version", str(s.at("phase")).c_str(),
              str(s.at("canary_percent")).c_str());
  if (s.at("strategy").as_string() == "canary")
    std::printf(", step %s of %zu", str(s.at("step")).c_str(), s.at("steps").as_array().size());
  std::printf("\nreason:     %s\n", str(s.at("reason")).c_str());
  const auto& arms = s.at("arms").as_object();
  for (const char* arm : {"baseline", "canary"}) {
    const auto& a = arms.at(arm).as_object();
    std::printf("%-10s  %s requests, %s errors, p95 %.1f ms\n", arm, str(a.at("requests")).c_str(),
                str(a.at("errors")).c_str(), a.at("p95_ms").to_number<double>());
  }
  if (const auto* analysis = s.if_contains("analysis"))
    std::printf("analysis:   %s: %s\n", str(analysis->at("verdict")).c_str(), str(analysis->at("reason")).c_str());
  if (const auto* approved = s.if_contains("approved"))
    std::printf("approved:   by %s at %s\n", str(approved->at("by")).c_str(), str(approved->at("at")).c_str());
}

int fail(const std::string& what, const Error& e) {
  std::fprintf(stderr, "tandem rollout %s: %s\n", what.c_str(), e.message.c_str());
  return e.code == ErrorCode::invalid_request ? 2 : 1;
}

int call(const RolloutArgs& a, const std::string& what, const std::string& method, const std::string& target,
         const std::string& body) {
  auto client = AdminClient::create(a.server, std::chrono::seconds(60));
  if (!client) return fail(what, client.error());
  auto res = client->request(method, target, body);
  if (!res) return fail(what, res.error());
  if (res->status >= 300) {
    std::fprintf(stderr, "tandem rollout %s: HTTP %d: %s\n", what.c_str(), res->status, error_message(*res).c_str());
    return 1;
  }
  if (a.as_json) {
    std::printf("%s\n", res->body.c_str());
    return 0;
  }
  const auto value = json::parse(res->body);
  if (what == "history") {
    std::printf("%-24s %-22s %-18s %4s  %-10s %s\n", "TIME", "ROLLOUT", "EVENT", "PCT", "ACTOR", "DETAIL");
    for (const auto& e : value.at("events").as_array())
      std::printf("%-24s %-22s %-18s %4s  %-10s %s\n", str(e.at("time")).c_str(), str(e.at("rollout_id")).c_str(),
                  str(e.at("event")).c_str(), str(e.at("canary_percent")).c_str(), str(e.at("actor")).c_str(),
                  str(e.at("detail")).c_str());
    return 0;
  }
  print_status(value.as_object());
  return 0;
}

int run_start(const RolloutArgs& a) {
  json::object body{{"endpoint", a.endpoint}, {"to", a.to}, {"strategy", a.strategy}, {"actor", who(a)}};
  if (!a.steps.empty()) body["steps"] = a.steps;
  if (!a.step_duration.empty()) body["step_duration"] = a.step_duration;
  if (a.min_requests > 0) body["min_requests"] = a.min_requests;
  if (a.require_approval) body["require_approval"] = true;
  if (a.max_error_rate_increase >= 0) body["max_error_rate_increase"] = a.max_error_rate_increase;
  if (a.max_p95_ratio >= 0) body["max_p95_ratio"] = a.max_p95_ratio;
  if (a.max_divergence >= 0) body["max_divergence"] = a.max_divergence;
  if (a.p95_slack_ms >= 0) body["p95_slack_ms"] = a.p95_slack_ms;
  if (!a.rollback_window.empty()) body["rollback_window"] = a.rollback_window;
  if (!a.warmup_timeout.empty()) body["warmup_timeout"] = a.warmup_timeout;
  if (!a.worker_args.empty()) {
    json::array args;
    for (const auto& w : a.worker_args) args.emplace_back(w);
    body["worker_args"] = std::move(args);
  }
  return call(a, "start", "POST", "/admin/v1/rollouts", json::serialize(body));
}

} // namespace

void add_rollout_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<RolloutArgs>();
  auto* rollout = app.add_subcommand("rollout", "Roll an endpoint out to a new model version (canary or blue/green)");
  rollout->require_subcommand(1);
  auto common = [&](CLI::App* cmd) {
    cmd->add_option("endpoint", a->endpoint, "Endpoint name")->required();
    cmd->add_option("--server", a->server, "tandem server URL (default: $TANDEM_SERVER, else http://127.0.0.1:8080)");
    cmd->add_flag("--json", a->as_json, "Print the API's JSON");
  };
  auto* start = rollout->add_subcommand("start", "Start a rollout");
  common(start);
  start->add_option("--to", a->to, "The new version: NAME@VERSION or NAME@latest")->required();
  start->add_option("--strategy", a->strategy, "canary or blue-green")->capture_default_str();
  start->add_option("--steps", a->steps, "Canary traffic percentages, e.g. 5,25,50,100 (default)");
  start->add_option("--step-duration", a->step_duration, "How long each step runs before analysis (default 60s)");
  start->add_option("--min-requests", a->min_requests, "Requests the new version must serve per step (default 50)");
  start->add_flag("--require-approval", a->require_approval,
                  "Wait for `tandem rollout approve` before the final step (blue/green: before the switch)");
  start->add_option("--max-error-rate-increase", a->max_error_rate_increase, "Allowed error-rate increase (0.01)");
  start->add_option("--max-p95-ratio", a->max_p95_ratio, "Allowed p95 latency ratio new/old (1.5)");
  start->add_option("--max-divergence", a->max_divergence, "Allowed output divergence, total variation 0..1 (0.2)");
  start->add_option("--p95-slack-ms", a->p95_slack_ms,
                    "p95 differences below this many ms are never a failure, whatever the ratio (2)");
  start->add_option("--rollback-window", a->rollback_window, "Blue/green: how long the old version stays warm (5m)");
  start->add_option("--warmup-timeout", a->warmup_timeout,
                    "Abort when the new version's workers are not ready by then, with their last failure (5m)");
  start->add_option("--worker-arg", a->worker_args, "Extra argument for the new version's workers (repeatable)");
  start->add_option("--actor", a->actor, "Who starts it (default: $USER)");
  start->callback([a, &exit_code] { exit_code = run_start(*a); });

  auto* status = rollout->add_subcommand("status", "Show the endpoint's current (or last) rollout");
  common(status);
  status->callback([a, &exit_code] {
    exit_code = call(*a, "status", "GET", "/admin/v1/rollouts/" + http::url_encode(a->endpoint), "");
  });
  for (const char* action : {"approve", "pause", "resume", "abort", "rollback"}) {
    auto* cmd = rollout->add_subcommand(action, std::string(action) + " the endpoint's rollout");
    common(cmd);
    cmd->add_option("--actor", a->actor, "Who does it (default: $USER); recorded in the history");
    cmd->callback([a, action, &exit_code] {
      exit_code = call(*a, action, "POST", "/admin/v1/rollouts/" + http::url_encode(a->endpoint) + "/" + action,
                       json::serialize(json::object{{"actor", who(*a)}}));
    });
  }
  auto* history = rollout->add_subcommand("history", "Every rollout event of the endpoint, newest first");
  common(history);
  history->add_option("--limit", a->limit, "At most this many events")->capture_default_str()->check(CLI::Range(1, 1000));
  history->callback([a, &exit_code] {
    exit_code = call(*a, "history", "GET",
                     "/admin/v1/rollouts/" + http::url_encode(a->endpoint) + "/history?limit=" + std::to_string(a->limit),
                     "");
  });
}

} // namespace tandem::cli
