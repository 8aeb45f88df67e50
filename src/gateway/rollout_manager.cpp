#include "gateway/rollout_manager.hpp"

#include "base/duration.hpp"
#include "gateway/admin_api.hpp"
#include "http/error_reply.hpp"
#include "http/query.hpp"
#include "protocol/v2_codec.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <charconv>

namespace tandem::gateway {

namespace json = boost::json;
using http::bhttp::verb;
using http::error_reply;

namespace {

Result<std::chrono::milliseconds> duration_field(const json::value& v, const std::string& name) {
  if (v.is_string()) {
    auto d = parse_duration(std::string(v.as_string()));
    if (!d) return make_error(ErrorCode::invalid_request, name + ": " + d.error().message);
    return *d;
  }
  if (v.is_int64() && v.as_int64() >= 0) return std::chrono::milliseconds(v.as_int64());
  return make_error(ErrorCode::invalid_request, name + ": expected a duration such as \"60s\"");
}

Result<double> number_field(const json::value& v, const std::string& name) {
  if (v.is_number()) return v.to_number<double>();
  return make_error(ErrorCode::invalid_request, name + ": expected a number");
}

bool same_inputs(const ModelSchema& a, const ModelSchema& b) {
  if (a.inputs.size() != b.inputs.size()) return false;
  for (std::size_t i = 0; i < a.inputs.size(); ++i)
    if (a.inputs[i].name != b.inputs[i].name || a.inputs[i].datatype != b.inputs[i].datatype ||
        a.inputs[i].shape != b.inputs[i].shape)
      return false;
  return true;
}

json::object arm_json(const policy::ArmStats& s) {
  return json::object{{"requests", s.requests},
                      {"errors", s.errors},
                      {"error_rate", s.error_rate()},
                      {"p95_ms", s.p95_ms()}};
}

json::object analysis_json(const policy::Analysis& a) {
  return json::object{{"verdict", std::string(policy::to_string(a.verdict))},
                      {"reason", a.reason},
                      {"baseline_requests", a.baseline_requests},
                      {"canary_requests", a.canary_requests},
                      {"baseline_error_rate", a.baseline_error_rate},
                      {"canary_error_rate", a.canary_error_rate},
                      {"baseline_p95_ms", a.baseline_p95_ms},
                      {"canary_p95_ms", a.canary_p95_ms},
                      {"divergence", a.divergence}};
}

} // namespace

Result<RolloutRequest> parse_rollout_request(const std::string& body) {
  boost::system::error_code ec;
  auto value = json::parse(body, ec);
  if (ec) return make_error(ErrorCode::malformed_json, "body: not valid JSON (" + ec.message() + ")");
  if (!value.is_object()) return make_error(ErrorCode::invalid_request, "body: expected a JSON object");
  RolloutRequest r;
  auto& spec = r.spec;
  for (const auto& field : value.as_object()) {
    const std::string key(field.key());
    const json::value& v = field.value();
    auto text = [&]() -> Result<std::string> {
      if (!v.is_string()) return make_error(ErrorCode::invalid_request, key + ": expected a string");
      return std::string(v.as_string());
    };
    if (key == "endpoint" || key == "to" || key == "actor" || key == "strategy") {
      auto t = text();
      if (!t) return t.error();
      if (key == "endpoint") r.endpoint = *t;
      else if (key == "to") r.to = *t;
      else if (key == "actor") r.actor = *t;
      else if (auto s = policy::parse_rollout_strategy(*t)) spec.strategy = *s;
      else return make_error(ErrorCode::invalid_request, "strategy: expected canary or blue-green");
    } else if (key == "steps") {
      spec.steps_percent.clear();
      if (v.is_array()) {
        for (const auto& step : v.as_array()) {
          if (!step.is_int64()) return make_error(ErrorCode::invalid_request, "steps: expected integers");
          spec.steps_percent.push_back(static_cast<int>(step.as_int64()));
        }
      } else if (v.is_string()) {
        std::string_view list = v.as_string();
        while (!list.empty()) {
          auto comma = list.find(',');
          auto part = list.substr(0, comma);
          int p = 0;
          auto [ptr, err] = std::from_chars(part.data(), part.data() + part.size(), p);
          if (err != std::errc{} || ptr != part.data() + part.size())
            return make_error(ErrorCode::invalid_request, "steps: expected a list such as 5,25,50,100");
          spec.steps_percent.push_back(p);
          list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        }
      } else {
        return make_error(ErrorCode::invalid_request, "steps: expected a list such as [5, 25, 50, 100]");
      }
    } else if (key == "step_duration" || key == "rollback_window" || key == "warmup_timeout") {
      auto d = duration_field(v, key);
      if (!d) return d.error();
      (key == "step_duration" ? spec.step_duration : key == "warmup_timeout" ? spec.warmup_timeout : spec.rollback_window) = *d;
    } else if (key == "min_requests") {
      if (!v.is_int64()) return make_error(ErrorCode::invalid_request, "min_requests: expected an integer");
      spec.min_requests = v.as_int64();
    } else if (key == "require_approval") {
      if (!v.is_bool()) return make_error(ErrorCode::invalid_request, "require_approval: expected true or false");
      spec.require_approval = v.as_bool();
    } else if (key == "max_error_rate_increase" || key == "max_p95_ratio" || key == "max_divergence" ||
               key == "p95_slack_ms") {
      auto n = number_field(v, key);
      if (!n) return n.error();
      auto& t = spec.thresholds;
      (key == "max_error_rate_increase" ? t.max_error_rate_increase
       : key == "max_p95_ratio"         ? t.max_p95_ratio
       : key == "max_divergence"        ? t.max_divergence
                                        : t.p95_slack_ms) = *n;
    } else if (key == "worker_args") {
      if (!v.is_array()) return make_error(ErrorCode::invalid_request, "worker_args: expected a list of strings");
      for (const auto& a : v.as_array()) {
        if (!a.is_string()) return make_error(ErrorCode::invalid_request, "worker_args: expected a list of strings");
        r.worker_args.emplace_back(a.as_string());
      }
    } else {
      return make_error(ErrorCode::invalid_request,
                        key + ": unknown field (known: endpoint, to, strategy, steps, step_duration, min_requests, "
                              "require_approval, max_error_rate_increase, max_p95_ratio, p95_slack_ms, "
                              "max_divergence, rollback_window, warmup_timeout, worker_args, actor)");
    }
  }
  if (r.endpoint.empty()) return make_error(ErrorCode::invalid_request, "endpoint: required");
  if (r.to.empty()) return make_error(ErrorCode::invalid_request, "to: required (NAME@VERSION)");
  if (auto problem = policy::validate(spec)) return make_error(ErrorCode::invalid_request, *problem);
  return r;
}

RolloutManager::RolloutManager(Gateway& gateway, registry::StateStore& store, registry::ModelRegistry& models,
                               const Clock& clock)
    : gateway_(gateway), store_(store), models_(models), clock_(clock) {}

Result<std::string> RolloutManager::start(const RolloutRequest& request) {
  EndpointSlot* slot = gateway_.slot(request.endpoint);
  if (slot == nullptr) return make_error(ErrorCode::not_found, "endpoint: no endpoint named " + request.endpoint);
  if (auto it = rollouts_.find(request.endpoint); it != rollouts_.end() && !it->second->machine->finished())
    return make_error(ErrorCode::conflict, "endpoint " + request.endpoint + " already has a rollout in progress (" +
                                               it->second->id + "); abort it first");
  if (auto problem = policy::validate(request.spec)) return make_error(ErrorCode::invalid_request, *problem);
  auto ref = parse_model_ref(request.to);
  if (!ref) return make_error(ErrorCode::invalid_request, "to: expected NAME@VERSION or NAME@latest");
  auto version = models_.resolve(*ref);
  if (!version) return version.error();
  auto manifest = load_model_manifest(models_.version_directory(*version));
  if (!manifest) return manifest.error();
  const EndpointRuntime& stable = *slot->stable;
  if (manifest->digest == stable.manifest.digest)
    return make_error(ErrorCode::invalid_request, "to: endpoint " + request.endpoint + " already serves version " +
                                                      manifest->version);
  if (!same_inputs(manifest->schema, stable.manifest.schema))
    return make_error(ErrorCode::invalid_request,
                      "to: version " + manifest->version + " takes different inputs than the version being served (" +
                          stable.manifest.version + "); its clients would break");

  auto active = std::make_unique<Active>();
  active->id = "r" + std::to_string(now_unix_ms()) + "-" + std::to_string(next_id_++);
  active->endpoint = request.endpoint;
  active->from_version = stable.manifest.version;
  active->to_version = manifest->version;
  active->to_ref = version->name + "@" + version->version;
  active->slot = slot;
  active->started_unix_ms = now_unix_ms();
  // The first output both versions declare as one integer per row (a class label) is compared.
  for (const auto& output : manifest->schema.outputs) {
    const auto* theirs = stable.manifest.schema.find_output(output.name);
    const bool categorical = output.datatype >= DataType::UINT8 && output.datatype <= DataType::INT64 &&
                             output.shape.size() == 1;
    if (categorical && theirs && theirs->datatype == output.datatype && theirs->shape == output.shape) {
      active->categorical_output = output.name;
      break;
    }
  }

  EndpointConfig config = stable.config;
  config.model_dir = models_.version_directory(*version);
  config.model_ref = active->to_ref;
  config.worker.args.insert(config.worker.args.end(), request.worker_args.begin(), request.worker_args.end());
  active->candidate = gateway_.add_runtime(config, std::move(*manifest), request.endpoint + "-" + active->to_version.substr(0, 6));
  active->machine = std::make_unique<policy::RolloutMachine>(request.spec, clock_.now());
  slot->candidate = active->candidate;
  slot->candidate_percent = 0;
  Active* raw = active.get();
  raw->outcomes = gateway_.outcomes().subscribe(request.endpoint, [this, raw](const Outcome& o) { observe(*raw, o); });
  const auto& s = request.spec;
  std::string steps;
  for (int p : s.steps_percent) steps += (steps.empty() ? "" : ",") + std::to_string(p);
  record(*raw, "started",
         std::string(policy::to_string(s.strategy)) + " to " + raw->to_ref +
             (s.strategy == policy::RolloutStrategy::canary ? ", steps " + steps : std::string()) + ", step duration " +
             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(s.step_duration).count()) +
             " ms, min requests " + std::to_string(s.min_requests) +
             (s.require_approval ? ", approval required" : "") +
             (request.worker_args.empty() ? "" : ", extra worker arguments"),
         request.actor.empty() ? "unknown" : request.actor);
  spdlog::info("rollout {}: endpoint {} from {} to {} ({})", raw->id, raw->endpoint, raw->from_version,
               raw->to_version, policy::to_string(s.strategy));
  std::string id = raw->id;
  rollouts_[request.endpoint] = std::move(active);
  return id;
}

void RolloutManager::tick(TimePoint now) {
  for (auto& [endpoint, rollout] : rollouts_) {
    if (rollout->machine->finished()) continue;
    const EndpointRuntime& c = *rollout->candidate;
    bool ready = false;
    if (rollout->machine->spec().strategy == policy::RolloutStrategy::canary) {
      ready = c.any_ready();
    } else {
      // Blue/green switches only to a fully warm version.
      ready = true;
      for (const PoolRuntime& p : c.pools) ready = ready && p.pool->snapshot().ready_workers >= p.min_ready;
    }
    auto decision = rollout->machine->tick(now, ready, rollout->baseline, rollout->canary, c.last_start_failure());
    apply(*rollout, decision);
  }
}

void RolloutManager::apply(Active& r, const policy::RolloutDecision& d) {
  using Action = policy::RolloutDecision::Action;
  if (d.analysis) {
    r.last_analysis = d.analysis;
    record(r, "analysis", json::serialize(analysis_json(*d.analysis)), "tandem");
  }
  switch (d.action) {
  case Action::none: break;
  case Action::start_step:
    r.slot->candidate_percent = d.canary_percent;
    r.baseline = {};
    r.canary = {};
    r.step_started_unix_ms = now_unix_ms();
    record(r, "step", d.reason, "tandem");
    spdlog::info("rollout {}: {} % of {} to {}: {}", r.id, d.canary_percent, r.endpoint, r.to_version, d.reason);
    break;
  case Action::await_approval:
    record(r, "awaiting_approval", d.reason, "tandem");
    break;
  case Action::promote:
  case Action::rollback:
  case Action::abort: {
    r.slot->candidate_percent = d.canary_percent;  // recorded as it ends: 100 promoted, 0 otherwise
    const char* kind = d.action == Action::promote ? "promoted" : d.action == Action::abort ? "aborted" : "rolled_back";
    record(r, kind, d.reason, "tandem");
    conclude(r);
    spdlog::log(d.action == Action::promote ? spdlog::level::info : spdlog::level::warn, "rollout {}: {}: {}", r.id,
                kind, d.reason);
    break;
  }
  }
}

void RolloutManager::conclude(Active& r) {
  // All traffic moves at once; the side that lost keeps its in-flight requests and is stopped
  // once they are done.
  EndpointSlot& slot = *r.slot;
  if (r.machine->phase() == policy::RolloutPhase::promoted) {
    EndpointRuntime* old = slot.stable;
    slot.stable = r.candidate;
    gateway_.retire(old);
  } else {
    gateway_.retire(r.candidate);
  }
  slot.candidate = nullptr;
  slot.candidate_percent = 0;
  gateway_.outcomes().unsubscribe(r.outcomes);
}

void RolloutManager::observe(Active& r, const Outcome& o) {
  const bool is_candidate = o.runtime == r.candidate;
  if (!is_candidate && o.runtime != r.slot->stable) return;
  // The client's own errors (4xx) say nothing about the version; 5xx, timeouts and a worker
  // refusing input the gateway accepted do.
  const bool refused_by_worker = o.error == ErrorCode::worker_rejected_input;
  if (o.status >= 400 && o.status < 500 && !refused_by_worker) return;
  auto& arm = is_candidate ? r.canary : r.baseline;
  arm.add(o.status >= 500 || o.status == 0 || refused_by_worker, o.total_ms);
  if (o.status != 200 || r.categorical_output.empty()) return;
  const std::string_view body = o.body;
  // Only while a rollout runs: read the categorical output to compare distributions.
  const std::string& name = r.categorical_output;
  boost::system::error_code ec;
  auto value = json::parse(body, ec);
  if (ec || !value.is_object()) return;
  const auto* outputs = value.as_object().if_contains("outputs");
  if (!outputs || !outputs->is_array()) return;
  for (const auto& o : outputs->as_array()) {
    if (!o.is_object()) continue;
    const auto* n = o.as_object().if_contains("name");
    const auto* data = o.as_object().if_contains("data");
    if (!n || !n->is_string() || n->as_string() != name || !data || !data->is_array()) continue;
    for (const auto& item : data->as_array()) arm.add_output(json::serialize(item));
  }
}

void RolloutManager::record(const Active& r, const std::string& kind, const std::string& detail,
                            const std::string& actor) {
  registry::RolloutEvent e{r.endpoint, r.id, now_unix_ms(), kind, r.from_version, r.to_version,
                           r.slot->candidate_percent, detail, actor};
  if (auto s = store_.append_rollout_event(e); !s) spdlog::error("rollout {}: {}", r.id, s.error().message);
}

std::string RolloutManager::status_json(const Active& r) const {
  const auto& spec = r.machine->spec();
  json::array steps;
  for (int p : spec.steps_percent) steps.push_back(p);
  json::object o{
      {"endpoint", r.endpoint},
      {"rollout_id", r.id},
      {"strategy", std::string(policy::to_string(spec.strategy))},
      {"from_version", r.from_version},
      {"to_version", r.to_version},
      {"to", r.to_ref},
      {"phase", std::string(policy::to_string(r.machine->phase()))},
      {"canary_percent", r.machine->canary_percent()},
      {"step", r.machine->step_index() + 1},
      {"steps", std::move(steps)},
      {"step_duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(spec.step_duration).count()},
      {"min_requests", spec.min_requests},
      {"warmup_timeout_ms", std::chrono::duration_cast<std::chrono::milliseconds>(spec.warmup_timeout).count()},
      {"require_approval", spec.require_approval},
      {"reason", r.machine->last_reason()},
      {"started", iso8601_utc(r.started_unix_ms)},
      {"arms", json::object{{"baseline", arm_json(r.baseline)}, {"canary", arm_json(r.canary)}}},
  };
  if (r.last_analysis) o["analysis"] = analysis_json(*r.last_analysis);
  if (!r.approved_by.empty())
    o["approved"] = json::object{{"by", r.approved_by}, {"at", iso8601_utc(r.approved_unix_ms)}};
  return json::serialize(o);
}

http::Reply RolloutManager::operator_action(Active& r, std::string_view action, const std::string& actor) {
  const TimePoint now = clock_.now();
  std::optional<std::string> refused;
  if (action == "approve") refused = r.machine->approve(now);
  else if (action == "pause") refused = r.machine->pause(now);
  else if (action == "resume") refused = r.machine->resume(now);
  else if (action == "abort") refused = r.machine->abort(now);
  else if (action == "rollback") refused = r.machine->rollback(now);
  else
    return error_reply({ErrorCode::not_found, "no rollout action \"" + std::string(action) +
                                                  "\" (approve, pause, resume, abort, rollback)"});
  if (refused) return error_reply({ErrorCode::conflict, *refused});
  if (action == "approve") {
    r.approved_by = actor;
    r.approved_unix_ms = now_unix_ms();
  }
  const std::string kind = action == "approve" ? "approved"
                           : action == "pause" ? "paused"
                           : action == "resume" ? "resumed"
                           : action == "abort" ? "aborted"
                                               : "rolled_back";
  record(r, kind, "by " + actor, actor);
  if (action == "abort" || action == "rollback") conclude(r);
  spdlog::info("rollout {}: {} by {}", r.id, kind, actor);
  return http::json_response(200, status_json(r));
}

http::Reply RolloutManager::handle(http::Request& request, std::string_view path, std::string_view query) {
  constexpr std::string_view prefix = "/admin/v1/rollouts";
  std::string_view rest = path.substr(prefix.size());
  auto actor_of = [&]() {
    std::string actor = "unknown";
    boost::system::error_code ec;
    auto v = json::parse(request.body(), ec);
    if (!ec && v.is_object())
      if (const auto* a = v.as_object().if_contains("actor"); a && a->is_string()) actor = std::string(a->as_string());
    return actor;
  };
  if (rest.empty() || rest == "/") {
    if (request.method() == verb::post) {
      auto parsed = parse_rollout_request(request.body());
      if (!parsed) return error_reply(parsed.error());
      auto started = start(*parsed);
      if (!started) return error_reply(started.error());
      return http::json_response(201, status_json(*rollouts_[parsed->endpoint]));
    }
    if (request.method() != verb::get && request.method() != verb::head)
      return error_reply({ErrorCode::method_not_allowed, "use GET or POST on /admin/v1/rollouts"});
    std::string body = R"({"rollouts":[)";
    bool first = true;
    for (const auto& [name, r] : rollouts_) {
      body += (first ? "" : ",") + status_json(*r);
      first = false;
    }
    return http::json_response(200, body + "]}");
  }
  rest.remove_prefix(1);
  const auto slash = rest.find('/');
  const std::string endpoint(rest.substr(0, slash));
  const std::string_view action = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  if (gateway_.slot(endpoint) == nullptr) return error_reply({ErrorCode::not_found, "no endpoint named " + endpoint});
  if (action == "history") {
    if (request.method() != verb::get && request.method() != verb::head)
      return error_reply({ErrorCode::method_not_allowed, "use GET on /admin/v1/rollouts/" + endpoint + "/history"});
    int limit = 100;
    if (auto params = http::parse_query(query)) {
      for (const auto& [k, v] : *params) {
        if (k != "limit") return error_reply({ErrorCode::invalid_request, k + ": unknown parameter (known: limit)"});
        auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
        if (ec != std::errc{} || ptr != v.data() + v.size() || limit < 1 || limit > 1000)
          return error_reply({ErrorCode::invalid_request, "limit: expected an integer from 1 to 1000"});
      }
    }
    auto events = store_.list_rollout_events(endpoint, limit);
    if (!events) return error_reply(events.error());
    json::array out;
    for (const auto& e : *events)
      out.push_back(json::object{{"rollout_id", e.rollout_id},
                                 {"time", iso8601_utc(e.time_unix_ms)},
                                 {"event", e.kind},
                                 {"from_version", e.from_version},
                                 {"to_version", e.to_version},
                                 {"canary_percent", e.canary_percent},
                                 {"detail", e.detail},
                                 {"actor", e.actor}});
    return http::json_response(200, json::serialize(json::object{{"endpoint", endpoint}, {"events", std::move(out)}}));
  }
  auto it = rollouts_.find(endpoint);
  if (it == rollouts_.end())
    return error_reply({ErrorCode::not_found, "endpoint " + endpoint + " has had no rollout since the server started"});
  if (action.empty()) {
    if (request.method() != verb::get && request.method() != verb::head)
      return error_reply({ErrorCode::method_not_allowed, "use GET on /admin/v1/rollouts/" + endpoint});
    return http::json_response(200, status_json(*it->second));
  }
  if (request.method() != verb::post)
    return error_reply({ErrorCode::method_not_allowed, "use POST on /admin/v1/rollouts/" + endpoint + "/" +
                                                           std::string(action)});
  return operator_action(*it->second, action, actor_of());
}

} // namespace tandem::gateway
