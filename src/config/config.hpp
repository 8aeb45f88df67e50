#pragma once
// The YAML configuration (its shape is a public interface). Parsing is strict: an unknown key is an
// error naming it, so a typo never silently falls back to a default.
#include "base/status.hpp"
#include "config/webhook_target.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tandem {

struct HttpLimits {
  std::size_t max_body_bytes = 16u << 20;
  std::size_t max_header_bytes = 16u << 10;
  std::size_t max_connections = 10'000;
  std::chrono::milliseconds idle_timeout_ms{60'000};  // keep-alive idle and per-request read limit
  std::size_t max_response_bytes = 256u << 20;        // from a worker
  // All request bodies being received or handled at once: 16 bodies of the largest size, or
  // about 190 of the 1.3 MB wide tensor. Never below max_body_bytes (see http/body_budget.hpp).
  std::size_t max_inflight_body_bytes = 256u << 20;
};

struct WorkerSpec {
  std::vector<std::string> args;     // extra arguments for the reference worker
  std::vector<std::string> command;  // any v2 server; {model}, {listen}, {host}, {port} substituted
  std::string model_name;            // name the worker serves; default: the manifest's name
  std::chrono::milliseconds start_timeout_ms{30'000};
};

struct DedicatedPoolSpec {
  int replicas = 1;
  std::string gpu;
  double price_per_hour = 0.0;
  int max_concurrency_per_worker = 4;
  int queue_max = 256;  // requests waiting for a free slot in this pool
};

struct ServerlessPoolSpec {
  int min = 0;
  int max = 4;
  int buffer = 0;  // extra warm workers while there is traffic (Modal's buffer_containers)
  double target_concurrency = 2.0;
  int max_concurrency_per_worker = 4;
  std::chrono::milliseconds scaledown_window_ms{60'000};
  std::chrono::milliseconds stable_window_ms{60'000};
  std::chrono::milliseconds panic_window_ms{6'000};
  double panic_threshold = 2.0;
  std::string gpu;
  double price_per_second = 0.0;
  int queue_max = 256;
};

/// One pool of an endpoint version: one kind of capacity from one provider. The `dedicated:` and
/// `serverless:` keys are a pool each; EndpointConfig::pools() lists every pool.
struct PoolConfig {
  std::string name;  // the pool's metric label and worker-id infix: dedicated, serverless
  std::string provider = "local";
  std::optional<DedicatedPoolSpec> dedicated;  // exactly one of the two is set: the pool's kind
  std::optional<ServerlessPoolSpec> serverless;
};

struct SloSpec {
  std::chrono::milliseconds p95_ms{0};  // 0: none declared
  std::chrono::milliseconds timeout_ms{2'000};
};

/// endpoints.NAME.rollout: a rollout started when the server starts (unless the endpoint
/// already serves `to`). Checked further by the rollout policy; unset numbers keep its defaults.
struct DeclaredRollout {
  std::string to;  // NAME@VERSION or NAME@latest
  std::string strategy = "canary";
  std::vector<int> steps_percent;
  std::optional<std::chrono::milliseconds> step_duration_ms;
  std::optional<std::int64_t> min_requests;
  bool require_approval = false;
  std::optional<std::chrono::milliseconds> rollback_window_ms;
  std::optional<std::chrono::milliseconds> warmup_timeout_ms;  // default 5m: then the rollout aborts
  std::optional<double> max_error_rate_increase;
  std::optional<double> max_p95_ratio;
  std::optional<double> max_divergence;
  std::optional<double> p95_slack_ms;
  std::vector<std::string> worker_args;  // extra arguments for the new version's workers
};

struct EndpointConfig {
  std::string name;
  std::filesystem::path model_dir;  // set when `model` names a directory
  std::string model_ref;            // set when `model` is NAME@VERSION or NAME@latest (registry)
  SloSpec slo;
  std::string routing = "dedicated-first";
  WorkerSpec worker;
  std::optional<DedicatedPoolSpec> dedicated;
  std::optional<ServerlessPoolSpec> serverless;
  int retries = 1;  // extra attempts on another worker after a transport failure, 5xx or timeout
  std::chrono::milliseconds per_try_timeout_ms{0};  // 0: an attempt may use the whole deadline
  double retry_budget_percent = 20;                 // retries at most this share of requests
  int outlier_consecutive_failures = 5;
  std::chrono::milliseconds outlier_base_ejection_ms{30'000};
  int outlier_max_ejected_percent = 50;
  std::optional<DeclaredRollout> rollout;
  /// Pools beyond the two keys. Not read from the YAML yet: the engine serves any number of
  /// pools, and a list in the file is the next step.
  std::vector<PoolConfig> more_pools;
  /// Every pool: `dedicated:` first, then `serverless:`, then `more_pools`.
  [[nodiscard]] std::vector<PoolConfig> pools() const;
};

/// server.tracing: OTLP/HTTP (JSON) export of spans. Off unless otlp_endpoint is set.
struct TracingConfig {
  std::string otlp_endpoint;  // e.g. http://127.0.0.1:4318/v1/traces; empty: tracing off
  double sample_ratio = 1.0;  // for requests that arrive without a sampled traceparent
  std::string service_name = "tandem";
  int queue_max = 8192;  // spans waiting for export; beyond it spans are dropped and counted
  int batch_max = 512;
  std::chrono::milliseconds flush_interval_ms{1000};
};

/// server.audit: one record per inference request in the state store.
struct AuditConfig {
  bool enabled = true;
  std::chrono::milliseconds retention_ms{7LL * 24 * 3600 * 1000};
  int backlog_max = 65'536;  // records waiting to be written; beyond it records are dropped and counted
  int batch_max = 2'000;
  std::chrono::milliseconds flush_interval_ms{200};  // the most a kill -9 can lose
  // `input_digest: sha256` (the default) records the SHA-256 of each request body; `none`
  // records none, for large inputs whose hashing is a full pass over every body.
  bool input_sha256 = true;
};

/// server.jobs: the asynchronous (RunPod-style) job API; see docs/jobs.md.
struct JobsConfig {
  int queue_max = 10'000;                      // queued jobs per endpoint; beyond it `run` answers 429
  std::size_t queue_max_bytes = 512u << 20;    // inputs of queued jobs held in memory, all endpoints
  int concurrency = 0;                         // jobs executing at once per endpoint; 0: the endpoint's capacity
  std::chrono::milliseconds result_retention_ms{30 * 60 * 1000};  // like RunPod: results kept 30 min
  int retained_max = 100'000;                  // finished jobs kept; beyond it the oldest expire early
  std::size_t retained_max_bytes = 256u << 20;  // their outputs in memory; beyond it the oldest expire early
  std::chrono::milliseconds execution_timeout_ms{10 * 60 * 1000};  // default policy.executionTimeout
  std::chrono::milliseconds ttl_ms{24LL * 3600 * 1000};             // default policy.ttl
  int webhook_attempts = 3;
  std::chrono::milliseconds webhook_retry_delay_ms{1000};  // doubles after each failed attempt
  std::chrono::milliseconds webhook_timeout_ms{10'000};
  // Addresses a webhook may reach although they are loopback, private or link-local (CIDRs).
  std::vector<Cidr> webhook_allow;
};

/// server.registry: the model registry's blob store (docs/registry.md).
struct RegistryConfig {
  std::uint64_t max_blob_bytes = 64ULL << 30;  // all uploaded artifacts together; more is 507
  // A blob no version uses is deleted once it is this old (time since its upload): long enough
  // for a push between its upload and its version.
  std::chrono::milliseconds unused_blob_grace_ms{3600 * 1000};
  std::chrono::milliseconds blob_sweep_interval_ms{10 * 60 * 1000};
};

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  std::filesystem::path state_dir = "./var";
  HttpLimits limits;
  std::chrono::milliseconds autoscaler_tick_ms{500};
  TracingConfig tracing;
  AuditConfig audit;
  JobsConfig jobs;
  RegistryConfig registry;
};

/// Published list prices per GPU model, used when a pool names a `gpu` but no explicit price.
std::optional<double> list_price_per_second(const std::string& gpu);  // serverless
std::optional<double> list_price_per_hour(const std::string& gpu);    // dedicated (community)

struct Config {
  std::filesystem::path config_dir;
  ServerConfig server;
  std::vector<EndpointConfig> endpoints;
};

/// Checks the configuration layer cannot make itself: it links nothing above base, so whoever
/// loads a configuration passes them in. worker_args: the reference worker's extra arguments
/// (worker.args, rollout.worker_args) parsed with the worker's own parser; returns the parser's
/// message when they would not parse. Unset: not checked.
struct ConfigChecks {
  std::function<std::optional<std::string>(const std::vector<std::string>&)> worker_args;
};

/// Parses YAML text; relative paths resolve against base_dir. Errors name the key path,
/// e.g. "endpoints.digits.dedicated.replicas: expected an integer >= 0".
Result<Config> parse_config(const std::string& yaml_text, const std::filesystem::path& base_dir,
                            const ConfigChecks& checks = {});
Result<Config> load_config(const std::filesystem::path& file, const ConfigChecks& checks = {});

/// A registry reference NAME@VERSION (VERSION: 6..64 lowercase hex digits, a prefix of the
/// version's sha256) or NAME@latest.
struct ModelRef {
  std::string name;
  std::string version;
};
std::optional<ModelRef> parse_model_ref(std::string_view text);
/// Model and endpoint names: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-' (they
/// become directory names and URL path segments).
bool is_valid_model_name(std::string_view name);

/// Splits "HOST:PORT" (port 0..65535). Errors quote the input.
struct HostPort {
  std::string host;
  unsigned short port = 0;
};
Result<HostPort> parse_host_port(const std::string& text);

} // namespace tandem
