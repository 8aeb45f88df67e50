#include "config/config.hpp"

#include "base/duration.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace tandem {
namespace {

struct ConfigError {
  std::string message;
};

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw ConfigError{path + ": " + why};
}

void check_keys(const YAML::Node& node, const std::string& path,
                std::initializer_list<const char*> allowed) {
  if (!node.IsMap()) fail(path, "expected a mapping");
  std::set<std::string> seen;
  for (const auto& item : node) {
    auto key = item.first.as<std::string>();
    std::string key_path = path;
    key_path.append(".").append(key);
    if (!seen.insert(key).second) fail(key_path, "duplicate key");
    bool known = std::any_of(allowed.begin(), allowed.end(),
                             [&](const char* a) { return key == a; });
    if (!known) {
      std::string list;
      for (const char* a : allowed) {
        if (!list.empty()) list += ", ";
        list += a;
      }
      fail(key_path, "unknown key (known: " + list + ")");
    }
  }
}

std::string get_string(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) fail(path, "expected a string");
  return node.as<std::string>();
}

long long get_int(const YAML::Node& node, const std::string& path, long long min, long long max) {
  if (!node.IsScalar()) fail(path, "expected an integer");
  auto text = node.as<std::string>();
  long long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size() || value < min || value > max)
    fail(path, "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                   "], got \"" + text + "\"");
  return value;
}

double get_double(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) fail(path, "expected a number");
  try {
    auto value = node.as<double>();
    if (!std::isfinite(value) || value < 0) fail(path, "expected a finite, non-negative number");
    return value;
  } catch (const YAML::Exception&) {
    fail(path, "expected a number, got \"" + node.as<std::string>() + "\"");
  }
}

std::chrono::milliseconds get_duration(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) fail(path, "expected a duration");
  auto parsed = parse_duration(node.as<std::string>());
  if (!parsed) fail(path, parsed.error().message);
  return *parsed;
}

std::vector<std::string> get_string_list(const YAML::Node& node, const std::string& path) {
  if (!node.IsSequence()) fail(path, "expected a list of strings");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < node.size(); ++i)
    out.push_back(get_string(node[i], path + "[" + std::to_string(i) + "]"));
  return out;
}

bool is_valid_endpoint_name(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  std::filesystem::path path(p);
  return path.is_absolute() ? path : (base / path).lexically_normal();
}

HttpLimits parse_limits(const YAML::Node& node, const std::string& path) {
  check_keys(
      node, path,
      {"max_body_bytes", "max_header_bytes", "max_connections", "idle_timeout", "max_inflight_body_bytes"});
  HttpLimits limits;
  if (node["max_body_bytes"])
    limits.max_body_bytes = static_cast<std::size_t>(
        get_int(node["max_body_bytes"], path + ".max_body_bytes", 1024, 1LL << 32));
  if (node["max_header_bytes"])
    limits.max_header_bytes = static_cast<std::size_t>(
        get_int(node["max_header_bytes"], path + ".max_header_bytes", 1024, 1 << 20));
  if (node["max_connections"])
    limits.max_connections = static_cast<std::size_t>(
        get_int(node["max_connections"], path + ".max_connections", 1, 1'000'000));
  if (node["idle_timeout"])
    limits.idle_timeout_ms = get_duration(node["idle_timeout"], path + ".idle_timeout");
  if (node["max_inflight_body_bytes"]) {
    limits.max_inflight_body_bytes = static_cast<std::size_t>(
        get_int(node["max_inflight_body_bytes"], path + ".max_inflight_body_bytes", 1024, 1LL << 40));
    // A smaller budget would refuse a body that max_body_bytes allows, even on an idle server.
    if (limits.max_inflight_body_bytes < limits.max_body_bytes)
      fail(path + ".max_inflight_body_bytes",
           "must be at least max_body_bytes (" + std::to_string(limits.max_body_bytes) + ")");
  } else {
    limits.max_inflight_body_bytes = std::max(limits.max_inflight_body_bytes, limits.max_body_bytes);
  }
  return limits;
}

EndpointConfig parse_endpoint(const std::string& name, const YAML::Node& node,
                              const std::filesystem::path& base, const ConfigChecks& checks) {
  const std::string path = "endpoints." + name;
  if (!is_valid_endpoint_name(name))
    fail(path, "endpoint names use letters, digits, '-', '_' and '.', start with a letter or "
               "digit, and have at most 63 characters");
  check_keys(node, path,
             {"model", "slo", "routing", "worker", "dedicated", "serverless", "retries", "per_try_timeout",
              "retry_budget_percent", "outlier", "rollout"});
  EndpointConfig ep;
  ep.name = name;
  if (!node["model"]) fail(path + ".model", "required (a model directory, or NAME@VERSION from the registry)");
  {
    const std::string model = get_string(node["model"], path + ".model");
    if (auto ref = parse_model_ref(model); ref && !std::filesystem::exists(resolve(base, model))) {
      ep.model_ref = model;
    } else if (model.find('@') != std::string::npos && !std::filesystem::exists(resolve(base, model))) {
      fail(path + ".model", "\"" + model + "\" is neither a directory nor a registry reference NAME@VERSION");
    } else {
      ep.model_dir = resolve(base, model);
    }
  }
  if (auto slo = node["slo"]) {
    check_keys(slo, path + ".slo", {"p95_ms", "timeout_ms"});
    if (slo["p95_ms"])
      ep.slo.p95_ms = std::chrono::milliseconds(get_int(slo["p95_ms"], path + ".slo.p95_ms", 1, 3'600'000));
    if (slo["timeout_ms"])
      ep.slo.timeout_ms =
          std::chrono::milliseconds(get_int(slo["timeout_ms"], path + ".slo.timeout_ms", 1, 3'600'000));
  }
  if (auto routing = node["routing"]) {
    ep.routing = get_string(routing, path + ".routing");
    static const std::set<std::string> known = {"dedicated-first", "serverless-first",
                                                "dedicated-only", "serverless-only",
                                                "cost-optimal"};
    if (!known.count(ep.routing))
      fail(path + ".routing", "unknown policy \"" + ep.routing +
                                  "\" (known: dedicated-first, serverless-first, dedicated-only, "
                                  "serverless-only, cost-optimal)");
  }
  if (node["retries"]) ep.retries = static_cast<int>(get_int(node["retries"], path + ".retries", 0, 3));
  if (node["per_try_timeout"]) ep.per_try_timeout_ms = get_duration(node["per_try_timeout"], path + ".per_try_timeout");
  if (node["retry_budget_percent"]) {
    ep.retry_budget_percent = get_double(node["retry_budget_percent"], path + ".retry_budget_percent");
    if (ep.retry_budget_percent > 100) fail(path + ".retry_budget_percent", "must be at most 100");
  }
  if (auto outlier = node["outlier"]) {
    check_keys(outlier, path + ".outlier", {"consecutive_failures", "base_ejection", "max_ejected_percent"});
    if (outlier["consecutive_failures"])
      ep.outlier_consecutive_failures = static_cast<int>(
          get_int(outlier["consecutive_failures"], path + ".outlier.consecutive_failures", 1, 1000));
    if (outlier["base_ejection"])
      ep.outlier_base_ejection_ms = get_duration(outlier["base_ejection"], path + ".outlier.base_ejection");
    if (outlier["max_ejected_percent"])
      ep.outlier_max_ejected_percent = static_cast<int>(
          get_int(outlier["max_ejected_percent"], path + ".outlier.max_ejected_percent", 0, 100));
  }
  if (auto rollout = node["rollout"]) {
    const std::string at = path + ".rollout";
    check_keys(rollout, at,
               {"to", "strategy", "steps", "step_duration", "min_requests", "require_approval", "rollback_window",
                "warmup_timeout", "max_error_rate_increase", "max_p95_ratio", "max_divergence", "p95_slack_ms", "worker_args"});
    DeclaredRollout r;
    if (!rollout["to"]) fail(at + ".to", "required: the new version, NAME@VERSION or NAME@latest");
    r.to = get_string(rollout["to"], at + ".to");
    if (!parse_model_ref(r.to)) fail(at + ".to", "expected NAME@VERSION or NAME@latest, got \"" + r.to + "\"");
    if (rollout["strategy"]) {
      r.strategy = get_string(rollout["strategy"], at + ".strategy");
      if (r.strategy != "canary" && r.strategy != "blue-green") fail(at + ".strategy", "expected canary or blue-green");
    }
    if (auto steps = rollout["steps"]) {
      if (!steps.IsSequence()) fail(at + ".steps", "expected a list of percentages such as [5, 25, 50, 100]");
      for (std::size_t i = 0; i < steps.size(); ++i)
        r.steps_percent.push_back(static_cast<int>(get_int(steps[i], at + ".steps[" + std::to_string(i) + "]", 1, 100)));
    }
    if (rollout["step_duration"]) r.step_duration_ms = get_duration(rollout["step_duration"], at + ".step_duration");
    if (rollout["min_requests"])
      r.min_requests = get_int(rollout["min_requests"], at + ".min_requests", 1, 100'000'000);
    if (rollout["require_approval"]) {
      const auto text = get_string(rollout["require_approval"], at + ".require_approval");
      if (text != "true" && text != "false") fail(at + ".require_approval", "expected true or false");
      r.require_approval = text == "true";
    }
    if (rollout["rollback_window"])
      r.rollback_window_ms = get_duration(rollout["rollback_window"], at + ".rollback_window");
    if (rollout["warmup_timeout"]) {
      r.warmup_timeout_ms = get_duration(rollout["warmup_timeout"], at + ".warmup_timeout");
      if (r.warmup_timeout_ms->count() < 1000) fail(at + ".warmup_timeout", "must be at least 1s");
    }
    if (rollout["max_error_rate_increase"])
      r.max_error_rate_increase = get_double(rollout["max_error_rate_increase"], at + ".max_error_rate_increase");
    if (rollout["max_p95_ratio"]) r.max_p95_ratio = get_double(rollout["max_p95_ratio"], at + ".max_p95_ratio");
    if (rollout["max_divergence"]) r.max_divergence = get_double(rollout["max_divergence"], at + ".max_divergence");
    if (rollout["p95_slack_ms"]) r.p95_slack_ms = get_double(rollout["p95_slack_ms"], at + ".p95_slack_ms");
    if (rollout["worker_args"]) r.worker_args = get_string_list(rollout["worker_args"], at + ".worker_args");
    ep.rollout = std::move(r);
  }
  if (auto worker = node["worker"]) {
    check_keys(worker, path + ".worker", {"args", "command", "model_name", "start_timeout"});
    if (worker["args"]) ep.worker.args = get_string_list(worker["args"], path + ".worker.args");
    if (worker["command"]) {
      ep.worker.command = get_string_list(worker["command"], path + ".worker.command");
      if (ep.worker.command.empty()) fail(path + ".worker.command", "must not be empty");
    }
    if (worker["model_name"])
      ep.worker.model_name = get_string(worker["model_name"], path + ".worker.model_name");
    if (worker["start_timeout"])
      ep.worker.start_timeout_ms = get_duration(worker["start_timeout"], path + ".worker.start_timeout");
  }
  if (auto ded = node["dedicated"]) {
    const std::string dpath = path + ".dedicated";
    check_keys(ded, dpath,
               {"replicas", "gpu", "price_per_hour", "max_concurrency_per_worker", "queue_max"});
    DedicatedPoolSpec spec;
    if (ded["replicas"]) spec.replicas = static_cast<int>(get_int(ded["replicas"], dpath + ".replicas", 0, 256));
    if (ded["gpu"]) spec.gpu = get_string(ded["gpu"], dpath + ".gpu");
    if (ded["price_per_hour"]) {
      spec.price_per_hour = get_double(ded["price_per_hour"], dpath + ".price_per_hour");
    } else if (!spec.gpu.empty()) {
      auto price = list_price_per_hour(spec.gpu);
      if (!price) fail(dpath + ".price_per_hour", "no list price for a dedicated " + spec.gpu + "; set price_per_hour");
      spec.price_per_hour = *price;
    }
    if (ded["max_concurrency_per_worker"])
      spec.max_concurrency_per_worker = static_cast<int>(
          get_int(ded["max_concurrency_per_worker"], dpath + ".max_concurrency_per_worker", 1, 4096));
    if (ded["queue_max"])
      spec.queue_max = static_cast<int>(get_int(ded["queue_max"], dpath + ".queue_max", 0, 1'000'000));
    ep.dedicated = spec;
  }
  if (auto sl = node["serverless"]) {
    const std::string spath = path + ".serverless";
    check_keys(sl, spath,
               {"min", "max", "buffer", "target_concurrency", "max_concurrency_per_worker", "scaledown_window",
                "stable_window", "panic_window", "panic_threshold", "gpu", "price_per_second", "queue_max"});
    ServerlessPoolSpec spec;
    if (sl["min"]) spec.min = static_cast<int>(get_int(sl["min"], spath + ".min", 0, 256));
    if (sl["max"]) spec.max = static_cast<int>(get_int(sl["max"], spath + ".max", 1, 256));
    if (spec.min > spec.max) fail(spath + ".min", "must not exceed max (" + std::to_string(spec.max) + ")");
    if (sl["buffer"]) spec.buffer = static_cast<int>(get_int(sl["buffer"], spath + ".buffer", 0, 256));
    if (sl["max_concurrency_per_worker"])
      spec.max_concurrency_per_worker = static_cast<int>(
          get_int(sl["max_concurrency_per_worker"], spath + ".max_concurrency_per_worker", 1, 4096));
    spec.target_concurrency = std::max(1.0, spec.max_concurrency_per_worker / 2.0);
    if (sl["target_concurrency"]) {
      spec.target_concurrency = get_double(sl["target_concurrency"], spath + ".target_concurrency");
      if (spec.target_concurrency <= 0) fail(spath + ".target_concurrency", "must be positive");
    }
    if (spec.target_concurrency > spec.max_concurrency_per_worker)
      fail(spath + ".target_concurrency", "must not exceed max_concurrency_per_worker (" +
                                              std::to_string(spec.max_concurrency_per_worker) + ")");
    if (sl["scaledown_window"]) spec.scaledown_window_ms = get_duration(sl["scaledown_window"], spath + ".scaledown_window");
    if (sl["stable_window"]) spec.stable_window_ms = get_duration(sl["stable_window"], spath + ".stable_window");
    if (sl["panic_window"]) spec.panic_window_ms = get_duration(sl["panic_window"], spath + ".panic_window");
    if (spec.stable_window_ms.count() == 0 || spec.panic_window_ms.count() == 0)
      fail(spath, "stable_window and panic_window must be positive");
    if (spec.panic_window_ms > spec.stable_window_ms)
      fail(spath + ".panic_window", "must not be longer than stable_window");
    if (sl["panic_threshold"]) {
      spec.panic_threshold = get_double(sl["panic_threshold"], spath + ".panic_threshold");
      if (spec.panic_threshold < 1.0) fail(spath + ".panic_threshold", "must be at least 1");
    }
    if (sl["gpu"]) spec.gpu = get_string(sl["gpu"], spath + ".gpu");
    if (sl["price_per_second"]) {
      spec.price_per_second = get_double(sl["price_per_second"], spath + ".price_per_second");
    } else if (!spec.gpu.empty()) {
      auto price = list_price_per_second(spec.gpu);
      if (!price) fail(spath + ".price_per_second", "no list price for a serverless " + spec.gpu + "; set price_per_second");
      spec.price_per_second = *price;
    }
    if (sl["queue_max"]) spec.queue_max = static_cast<int>(get_int(sl["queue_max"], spath + ".queue_max", 0, 1'000'000));
    ep.serverless = spec;
  }
  if (!ep.dedicated && !ep.serverless) ep.dedicated = DedicatedPoolSpec{};
  // Only the reference worker's parser is known here; a custom command takes what it takes.
  if (ep.worker.command.empty() && checks.worker_args) {
    if (auto bad = checks.worker_args(ep.worker.args)) fail(path + ".worker.args", *bad);
    if (ep.rollout) {
      // The new version's workers get worker.args followed by these.
      auto combined = ep.worker.args;
      combined.insert(combined.end(), ep.rollout->worker_args.begin(), ep.rollout->worker_args.end());
      if (auto bad = checks.worker_args(combined)) fail(path + ".rollout.worker_args", *bad);
    }
  }
  if (ep.routing == "dedicated-only" && !ep.dedicated)
    fail(path + ".routing", "dedicated-only needs a dedicated pool");
  if (ep.routing == "serverless-only" && !ep.serverless)
    fail(path + ".routing", "serverless-only needs a serverless pool");
  return ep;
}

} // namespace

std::optional<double> list_price_per_second(const std::string& gpu) {
  static const std::map<std::string, double> prices = {
      {"H100", 0.001097}, {"A100-80GB", 0.000694}, {"L40S", 0.000542}, {"L4", 0.000222}, {"T4", 0.000164}};
  auto it = prices.find(gpu);
  return it == prices.end() ? std::nullopt : std::optional<double>(it->second);
}

std::optional<double> list_price_per_hour(const std::string& gpu) {
  static const std::map<std::string, double> prices = {
      {"H100", 2.69}, {"A100-80GB", 1.39}, {"L40S", 0.79}, {"L4", 0.44}};
  auto it = prices.find(gpu);
  return it == prices.end() ? std::nullopt : std::optional<double>(it->second);
}

Result<HostPort> parse_host_port(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return make_error(ErrorCode::invalid_request,
                      "invalid listen address \"" + text + "\": expected HOST:PORT");
  HostPort hp;
  hp.host = text.substr(0, colon);
  if (hp.host.size() > 2 && hp.host.front() == '[' && hp.host.back() == ']')
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  unsigned int port = 0;
  auto [ptr, ec] = std::from_chars(text.data() + colon + 1, text.data() + text.size(), port);
  if (ec != std::errc{} || ptr != text.data() + text.size() || port > 65535)
    return make_error(ErrorCode::invalid_request,
                      "invalid listen address \"" + text + "\": port must be 0..65535");
  hp.port = static_cast<unsigned short>(port);
  return hp;
}

namespace {

TracingConfig parse_tracing(const YAML::Node& node, const std::string& path) {
  check_keys(node, path, {"otlp_endpoint", "sample_ratio", "service_name", "queue_max", "batch_max", "flush_interval"});
  TracingConfig t;
  if (node["otlp_endpoint"]) {
    t.otlp_endpoint = get_string(node["otlp_endpoint"], path + ".otlp_endpoint");
    if (t.otlp_endpoint.rfind("http://", 0) != 0)
      fail(path + ".otlp_endpoint", "expected an http:// URL such as http://127.0.0.1:4318/v1/traces (https is not "
                                    "supported; run a local collector)");
  }
  if (node["sample_ratio"]) {
    t.sample_ratio = get_double(node["sample_ratio"], path + ".sample_ratio");
    if (t.sample_ratio > 1.0) fail(path + ".sample_ratio", "expected a number in [0, 1]");
  }
  if (node["service_name"]) t.service_name = get_string(node["service_name"], path + ".service_name");
  if (node["queue_max"]) t.queue_max = static_cast<int>(get_int(node["queue_max"], path + ".queue_max", 1, 1'000'000));
  if (node["batch_max"]) t.batch_max = static_cast<int>(get_int(node["batch_max"], path + ".batch_max", 1, 100'000));
  if (node["flush_interval"]) {
    t.flush_interval_ms = get_duration(node["flush_interval"], path + ".flush_interval");
    if (t.flush_interval_ms.count() < 10) fail(path + ".flush_interval", "must be at least 10ms");
  }
  return t;
}

AuditConfig parse_audit(const YAML::Node& node, const std::string& path) {
  check_keys(node, path, {"enabled", "retention", "backlog_max", "batch_max", "flush_interval", "input_digest"});
  AuditConfig a;
  if (node["enabled"]) {
    const auto text = get_string(node["enabled"], path + ".enabled");
    if (text != "true" && text != "false") fail(path + ".enabled", "expected true or false");
    a.enabled = text == "true";
  }
  if (node["retention"]) {
    a.retention_ms = get_duration(node["retention"], path + ".retention");
    if (a.retention_ms.count() < 1000) fail(path + ".retention", "must be at least 1s");
  }
  if (node["backlog_max"])
    a.backlog_max = static_cast<int>(get_int(node["backlog_max"], path + ".backlog_max", 1, 10'000'000));
  if (node["batch_max"]) a.batch_max = static_cast<int>(get_int(node["batch_max"], path + ".batch_max", 1, 100'000));
  if (node["flush_interval"]) {
    a.flush_interval_ms = get_duration(node["flush_interval"], path + ".flush_interval");
    if (a.flush_interval_ms.count() < 10 || a.flush_interval_ms.count() > 60'000)
      fail(path + ".flush_interval", "must be between 10ms and 60s");
  }
  if (node["input_digest"]) {
    const auto text = get_string(node["input_digest"], path + ".input_digest");
    if (text != "sha256" && text != "none") fail(path + ".input_digest", "expected sha256 or none");
    a.input_sha256 = text == "sha256";
  }
  return a;
}

RegistryConfig parse_registry(const YAML::Node& node, const std::string& path) {
  check_keys(node, path, {"max_blob_bytes", "unused_blob_grace", "blob_sweep_interval"});
  RegistryConfig r;
  if (node["max_blob_bytes"])
    r.max_blob_bytes = static_cast<std::uint64_t>(
        get_int(node["max_blob_bytes"], path + ".max_blob_bytes", 1LL << 20, 1LL << 50));
  if (node["unused_blob_grace"])
    r.unused_blob_grace_ms = get_duration(node["unused_blob_grace"], path + ".unused_blob_grace");
  if (node["blob_sweep_interval"]) {
    r.blob_sweep_interval_ms = get_duration(node["blob_sweep_interval"], path + ".blob_sweep_interval");
    if (r.blob_sweep_interval_ms.count() < 100) fail(path + ".blob_sweep_interval", "must be at least 100ms");
  }
  return r;
}

JobsConfig parse_jobs(const YAML::Node& node, const std::string& path) {
  check_keys(node, path,
             {"queue_max", "queue_max_bytes", "concurrency", "result_retention", "retained_max", "retained_max_bytes",
              "execution_timeout",
              "ttl", "webhook_allow", "webhook_attempts", "webhook_retry_delay", "webhook_timeout"});
  JobsConfig j;
  if (node["queue_max"]) j.queue_max = static_cast<int>(get_int(node["queue_max"], path + ".queue_max", 1, 10'000'000));
  if (node["queue_max_bytes"])
    j.queue_max_bytes = static_cast<std::size_t>(
        get_int(node["queue_max_bytes"], path + ".queue_max_bytes", 1LL << 20, 64LL << 30));
  if (node["concurrency"])
    j.concurrency = static_cast<int>(get_int(node["concurrency"], path + ".concurrency", 0, 100'000));
  auto duration_at_least = [&](const char* key, std::chrono::milliseconds& out, std::int64_t min_ms) {
    if (!node[key]) return;
    out = get_duration(node[key], path + "." + key);
    if (out.count() < min_ms) fail(path + "." + key, "must be at least " + std::to_string(min_ms) + "ms");
  };
  duration_at_least("result_retention", j.result_retention_ms, 1000);
  duration_at_least("execution_timeout", j.execution_timeout_ms, 1);
  duration_at_least("ttl", j.ttl_ms, 1);
  duration_at_least("webhook_retry_delay", j.webhook_retry_delay_ms, 1);
  duration_at_least("webhook_timeout", j.webhook_timeout_ms, 1);
  if (node["retained_max_bytes"])
    j.retained_max_bytes = static_cast<std::size_t>(
        get_int(node["retained_max_bytes"], path + ".retained_max_bytes", 1LL << 20, 64LL << 30));
  if (node["retained_max"])
    j.retained_max = static_cast<int>(get_int(node["retained_max"], path + ".retained_max", 1, 10'000'000));
  if (node["webhook_attempts"])
    j.webhook_attempts = static_cast<int>(get_int(node["webhook_attempts"], path + ".webhook_attempts", 1, 20));
  if (node["webhook_allow"]) {
    const auto ranges = get_string_list(node["webhook_allow"], path + ".webhook_allow");
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      auto cidr = parse_cidr(ranges[i]);
      if (!cidr)
        fail(path + ".webhook_allow[" + std::to_string(i) + "]",
             "expected an address or CIDR such as 127.0.0.1/32 or 10.1.0.0/16, got '" + ranges[i] + "'");
      j.webhook_allow.push_back(*cidr);
    }
  }
  return j;
}

} // namespace

std::optional<ModelRef> parse_model_ref(std::string_view text) {
  const auto at = text.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == text.size()) return std::nullopt;
  ModelRef ref{std::string(text.substr(0, at)), std::string(text.substr(at + 1))};
  if (!is_valid_model_name(ref.name)) return std::nullopt;
  if (ref.version != "latest" &&
      (ref.version.size() < 6 || ref.version.size() > 64 ||
       !std::all_of(ref.version.begin(), ref.version.end(),
                    [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })))
    return std::nullopt;
  return ref;
}

bool is_valid_model_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  if (name.front() == '.' || name.front() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

Result<Config> parse_config(const std::string& yaml_text, const std::filesystem::path& base_dir,
                            const ConfigChecks& checks) {
  try {
    YAML::Node root = YAML::Load(yaml_text);
    Config config;
    config.config_dir = base_dir;
    if (!root || root.IsNull()) fail("(root)", "the configuration is empty");
    check_keys(root, "(root)", {"server", "endpoints"});
    if (auto server = root["server"]) {
      check_keys(server, "server", {"listen", "state", "limits", "tracing", "audit", "jobs", "registry", "autoscaler_tick"});
      if (server["autoscaler_tick"]) {
        config.server.autoscaler_tick_ms = get_duration(server["autoscaler_tick"], "server.autoscaler_tick");
        if (config.server.autoscaler_tick_ms.count() < 10) fail("server.autoscaler_tick", "must be at least 10ms");
      }
      if (server["listen"]) {
        config.server.listen = get_string(server["listen"], "server.listen");
        auto hp = parse_host_port(config.server.listen);
        if (!hp) fail("server.listen", hp.error().message);
      }
      if (server["state"])
        config.server.state_dir = resolve(base_dir, get_string(server["state"], "server.state"));
      else
        config.server.state_dir = resolve(base_dir, "var");
      if (server["limits"]) config.server.limits = parse_limits(server["limits"], "server.limits");
      if (server["tracing"]) config.server.tracing = parse_tracing(server["tracing"], "server.tracing");
      if (server["audit"]) config.server.audit = parse_audit(server["audit"], "server.audit");
      if (server["jobs"]) config.server.jobs = parse_jobs(server["jobs"], "server.jobs");
      if (server["registry"]) config.server.registry = parse_registry(server["registry"], "server.registry");
    } else {
      config.server.state_dir = resolve(base_dir, "var");
    }
    auto endpoints = root["endpoints"];
    if (!endpoints || !endpoints.IsMap() || endpoints.size() == 0)
      fail("endpoints", "required: a mapping of endpoint name to endpoint");
    std::set<std::string> names;
    for (const auto& item : endpoints) {
      auto name = item.first.as<std::string>();
      if (!names.insert(name).second) fail("endpoints." + name, "duplicate endpoint name");
      config.endpoints.push_back(parse_endpoint(name, item.second, base_dir, checks));
    }
    return config;
  } catch (const ConfigError& e) {
    return make_error(ErrorCode::invalid_request, e.message);
  } catch (const YAML::Exception& e) {
    return make_error(ErrorCode::invalid_request, std::string("invalid YAML: ") + e.what());
  }
}

Result<Config> load_config(const std::filesystem::path& file, const ConfigChecks& checks) {
  std::ifstream in(file);
  if (!in)
    return make_error(ErrorCode::not_found, "cannot read configuration file " + file.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto base = std::filesystem::absolute(file).parent_path();
  return parse_config(buffer.str(), base, checks);
}

std::vector<PoolConfig> EndpointConfig::pools() const {
  std::vector<PoolConfig> out;
  if (dedicated) out.push_back({"dedicated", "local", dedicated, std::nullopt});
  if (serverless) out.push_back({"serverless", "local", std::nullopt, serverless});
  out.insert(out.end(), more_pools.begin(), more_pools.end());
  return out;
}

} // namespace tandem
