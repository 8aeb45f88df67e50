#include "config/config.hpp"
#include "cli/worker_args.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tandem {
namespace {

using std::chrono::milliseconds;

const std::filesystem::path kBase = "/etc/tandem/conf";
// What `tandem serve` passes: the reference worker's own parser checks its arguments.
const ConfigChecks kChecks{.worker_args = cli::worker_args_error};

Config parsed(const std::string& yaml) {
  auto result = parse_config(yaml, kBase, kChecks);
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
  return result.ok() ? *result : Config{};
}

std::string error_of(const std::string& yaml) {
  auto result = parse_config(yaml, kBase, kChecks);
  EXPECT_FALSE(result.ok()) << "accepted:\n" << yaml;
  if (result.ok()) return {};
  EXPECT_EQ(result.error().code, ErrorCode::invalid_request);
  return result.error().message;
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

constexpr const char* kMinimal = R"(
endpoints:
  digits:
    model: ../models/digits
)";

TEST(ParseConfig, MinimalConfigGetsDefaults) {
  Config config = parsed(kMinimal);
  EXPECT_EQ(config.config_dir, kBase);
  EXPECT_EQ(config.server.listen, "127.0.0.1:8080");
  EXPECT_EQ(config.server.state_dir, std::filesystem::path("/etc/tandem/conf/var"));
  EXPECT_EQ(config.server.limits.max_body_bytes, 16u * 1024 * 1024);
  ASSERT_EQ(config.endpoints.size(), 1u);
  const auto& ep = config.endpoints[0];
  EXPECT_EQ(ep.name, "digits");
  EXPECT_EQ(ep.slo.timeout_ms, milliseconds(2000));
  EXPECT_EQ(ep.slo.p95_ms, milliseconds(0));
  EXPECT_EQ(ep.routing, "dedicated-first");
  EXPECT_EQ(ep.retries, 1);
  EXPECT_TRUE(ep.worker.args.empty());
  EXPECT_TRUE(ep.worker.command.empty());
  EXPECT_FALSE(ep.serverless.has_value());
  // Neither pool given: a dedicated pool with its defaults.
  ASSERT_TRUE(ep.dedicated.has_value());
  EXPECT_EQ(ep.dedicated->replicas, 1);
  EXPECT_EQ(ep.dedicated->max_concurrency_per_worker, 4);
}

TEST(ParseConfig, RelativePathsResolveAgainstBaseDir) {
  Config config = parsed(R"(
server:
  state: ./state/here
endpoints:
  digits:
    model: ../models/digits
  abs:
    model: /opt/models/abs
)");
  EXPECT_EQ(config.server.state_dir, std::filesystem::path("/etc/tandem/conf/state/here"));
  ASSERT_EQ(config.endpoints.size(), 2u);
  EXPECT_EQ(config.endpoints[0].model_dir, std::filesystem::path("/etc/tandem/models/digits"));
  EXPECT_EQ(config.endpoints[1].model_dir, std::filesystem::path("/opt/models/abs"));
}

TEST(ParseConfig, FullShapeFromTheDesign) {
  Config config = parsed(R"(
server:
  listen: 0.0.0.0:9090
  limits: {max_body_bytes: 4096, max_header_bytes: 2048, max_connections: 10, idle_timeout: 5s}
endpoints:
  digits:
    model: ../models/digits
    slo: {p95_ms: 50, timeout_ms: 750}
    routing: serverless-first
    retries: 2
    worker:
      args: ["--fault-delay-ms", "0"]
      command: ["tritonserver", "--model={model}"]
      model_name: mnist
      start_timeout: 1m
    dedicated: {replicas: 3, gpu: H100, price_per_hour: 3.49, max_concurrency_per_worker: 8, queue_max: 10}
    serverless: {min: 0, max: 4, target_concurrency: 2, scaledown_window: 60s, gpu: H100}
)");
  EXPECT_EQ(config.server.listen, "0.0.0.0:9090");
  EXPECT_EQ(config.server.limits.max_body_bytes, 4096u);
  EXPECT_EQ(config.server.limits.max_header_bytes, 2048u);
  EXPECT_EQ(config.server.limits.max_connections, 10u);
  EXPECT_EQ(config.server.limits.idle_timeout_ms, milliseconds(5000));
  ASSERT_EQ(config.endpoints.size(), 1u);
  const auto& ep = config.endpoints[0];
  EXPECT_EQ(ep.slo.p95_ms, milliseconds(50));
  EXPECT_EQ(ep.slo.timeout_ms, milliseconds(750));
  EXPECT_EQ(ep.routing, "serverless-first");
  EXPECT_EQ(ep.retries, 2);
  EXPECT_EQ(ep.worker.args, (std::vector<std::string>{"--fault-delay-ms", "0"}));
  EXPECT_EQ(ep.worker.command, (std::vector<std::string>{"tritonserver", "--model={model}"}));
  EXPECT_EQ(ep.worker.model_name, "mnist");
  EXPECT_EQ(ep.worker.start_timeout_ms, milliseconds(60'000));
  ASSERT_TRUE(ep.dedicated.has_value());
  EXPECT_EQ(ep.dedicated->replicas, 3);
  EXPECT_EQ(ep.dedicated->gpu, "H100");
  EXPECT_DOUBLE_EQ(ep.dedicated->price_per_hour, 3.49) << "an explicit price wins over the list price";
  EXPECT_EQ(ep.dedicated->max_concurrency_per_worker, 8);
  EXPECT_EQ(ep.dedicated->queue_max, 10);
  ASSERT_TRUE(ep.serverless.has_value());
  EXPECT_EQ(ep.serverless->min, 0);
  EXPECT_EQ(ep.serverless->max, 4);
  EXPECT_DOUBLE_EQ(ep.serverless->target_concurrency, 2.0);
  EXPECT_EQ(ep.serverless->scaledown_window_ms, milliseconds(60'000));
  EXPECT_EQ(ep.serverless->gpu, "H100");
  EXPECT_DOUBLE_EQ(ep.serverless->price_per_second, 0.001097) << "the list price for H100";
}

TEST(ParseConfig, ServerlessOnlyHasNoDedicatedPool) {
  Config config = parsed(R"(
endpoints:
  digits:
    model: m
    serverless: {max: 2}
)");
  ASSERT_EQ(config.endpoints.size(), 1u);
  ASSERT_TRUE(config.endpoints[0].serverless.has_value());
  EXPECT_EQ(config.endpoints[0].serverless->max, 2);
  EXPECT_FALSE(config.endpoints[0].dedicated.has_value());
}

TEST(ParseConfig, ListPricesFillInForAKnownGpu) {
  Config config = parsed("endpoints: {d: {model: m, dedicated: {gpu: L40S}}}\n");
  ASSERT_TRUE(config.endpoints.at(0).dedicated.has_value());
  EXPECT_DOUBLE_EQ(config.endpoints[0].dedicated->price_per_hour, 0.79);
  EXPECT_EQ(list_price_per_second("A100-80GB"), 0.000694);
  EXPECT_EQ(list_price_per_hour("H100"), 2.69);
  EXPECT_FALSE(list_price_per_hour("T4").has_value()) << "no dedicated list price for a T4";
  auto message = error_of("endpoints: {d: {model: m, dedicated: {gpu: TPUv9}}}\n");
  EXPECT_TRUE(starts_with(message, "endpoints.d.dedicated.price_per_hour:")) << message;
}

TEST(ParseConfig, ServerlessPoolIsValidated) {
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, serverless: {min: 5, max: 2}}}\n"),
                          "endpoints.d.serverless.min:"));
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, serverless: {maxx: 2}}}\n"),
                          "endpoints.d.serverless.maxx: unknown key"));
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, serverless: [1]}}\n"),
                          "endpoints.d.serverless: expected a mapping"));
}

TEST(ParseConfig, OnlyRoutingNeedsItsPool) {
  EXPECT_TRUE(starts_with(
      error_of("endpoints: {d: {model: m, routing: serverless-only, dedicated: {replicas: 1}}}\n"),
      "endpoints.d.routing: serverless-only needs a serverless pool"));
  EXPECT_TRUE(
      starts_with(error_of("endpoints: {d: {model: m, routing: dedicated-only, serverless: {max: 1}}}\n"),
                  "endpoints.d.routing: dedicated-only needs a dedicated pool"));
}

TEST(ParseConfig, UnknownKeyNamesItsFullPath) {
  auto message = error_of(R"(
endpoints:
  digits:
    model: m
    dedicated: {replcas: 2}
)");
  EXPECT_TRUE(starts_with(message, "endpoints.digits.dedicated.replcas: unknown key")) << message;
  EXPECT_NE(message.find("replicas"), std::string::npos) << "lists the known keys: " << message;

  EXPECT_TRUE(starts_with(error_of("servr: {}\nendpoints: {d: {model: m}}\n"), "(root).servr:"));
  EXPECT_TRUE(starts_with(error_of("server: {lisen: x}\nendpoints: {d: {model: m}}\n"), "server.lisen:"));
  EXPECT_TRUE(
      starts_with(error_of("endpoints: {d: {model: m, slo: {p99_ms: 5}}}\n"), "endpoints.d.slo.p99_ms:"));
  EXPECT_TRUE(
      starts_with(error_of("endpoints: {d: {model: m, worker: {argz: []}}}\n"), "endpoints.d.worker.argz:"));
  EXPECT_TRUE(starts_with(error_of("server: {limits: {max_body: 1}}\nendpoints: {d: {model: m}}\n"),
                          "server.limits.max_body:"));
}

TEST(ParseConfig, InvalidRoutingName) {
  auto message = error_of("endpoints: {d: {model: m, routing: cheapest}}\n");
  EXPECT_TRUE(starts_with(message, "endpoints.d.routing: unknown policy \"cheapest\"")) << message;
  EXPECT_NE(message.find("cost-optimal"), std::string::npos) << message;
}

TEST(ParseConfig, EveryKnownRoutingPolicyIsAccepted) {
  for (const char* policy :
       {"dedicated-first", "serverless-first", "dedicated-only", "serverless-only", "cost-optimal"}) {
    Config config = parsed(std::string("endpoints: {d: {model: m, routing: ") + policy +
                           ", dedicated: {}, serverless: {}}}\n");
    ASSERT_EQ(config.endpoints.size(), 1u);
    EXPECT_EQ(config.endpoints[0].routing, policy);
  }
}

TEST(ParseConfig, InvalidEndpointName) {
  for (const char* name : {"-leading-dash", "\"has space\"", "\"a/b\"", "_under"}) {
    auto message = error_of(std::string("endpoints:\n  ") + name + ":\n    model: m\n");
    EXPECT_NE(message.find("endpoint names use letters"), std::string::npos) << name << ": " << message;
  }
  std::string long_name(64, 'a');
  EXPECT_NE(error_of("endpoints: {" + long_name + ": {model: m}}\n").find("at most 63"), std::string::npos);
  // 63 characters and the allowed punctuation are fine.
  Config config = parsed("endpoints: {" + std::string(63, 'b') + ": {model: m}, a.b_c-1: {model: m}}\n");
  EXPECT_EQ(config.endpoints.size(), 2u);
}

TEST(ParseConfig, ReplicasOutOfRange) {
  auto message = error_of("endpoints: {d: {model: m, dedicated: {replicas: 257}}}\n");
  EXPECT_TRUE(starts_with(message, "endpoints.d.dedicated.replicas: expected an integer in [0, 256]"))
      << message;
  EXPECT_NE(message.find("\"257\""), std::string::npos) << message;
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, dedicated: {replicas: -1}}}\n"),
                          "endpoints.d.dedicated.replicas:"));
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, dedicated: {replicas: 1.5}}}\n"),
                          "endpoints.d.dedicated.replicas:"));
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, dedicated: {replicas: many}}}\n"),
                          "endpoints.d.dedicated.replicas:"));
  // The bounds themselves are accepted.
  EXPECT_EQ(
      parsed("endpoints: {d: {model: m, dedicated: {replicas: 0}}}\n").endpoints.at(0).dedicated->replicas,
      0);
  EXPECT_EQ(
      parsed("endpoints: {d: {model: m, dedicated: {replicas: 256}}}\n").endpoints.at(0).dedicated->replicas,
      256);
}

TEST(ParseConfig, OtherRangeChecks) {
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, retries: 4}}\n"), "endpoints.d.retries:"));
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, slo: {timeout_ms: 0}}}\n"),
                          "endpoints.d.slo.timeout_ms:"));
  EXPECT_TRUE(
      starts_with(error_of("endpoints: {d: {model: m, dedicated: {max_concurrency_per_worker: 0}}}\n"),
                  "endpoints.d.dedicated.max_concurrency_per_worker:"));
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, dedicated: {price_per_hour: -1}}}\n"),
                          "endpoints.d.dedicated.price_per_hour:"));
  EXPECT_TRUE(starts_with(error_of("server: {limits: {max_body_bytes: 10}}\nendpoints: {d: {model: m}}\n"),
                          "server.limits.max_body_bytes:"));
}

TEST(ParseConfig, InflightBodyBudgetIsNeverBelowTheLargestBody) {
  EXPECT_EQ(parsed(kMinimal).server.limits.max_inflight_body_bytes, 256u << 20);
  const auto limits = [](const std::string& yaml) {
    return parsed("server: {limits: " + yaml + "}\nendpoints: {d: {model: m}}\n").server.limits;
  };
  EXPECT_EQ(limits("{max_body_bytes: 1048576, max_inflight_body_bytes: 1048576}").max_inflight_body_bytes,
            1u << 20);
  // Raising max_body_bytes alone raises the default budget with it.
  EXPECT_EQ(limits("{max_body_bytes: 1073741824}").max_inflight_body_bytes, 1u << 30);
  const auto message =
      error_of("server: {limits: {max_body_bytes: 2097152, max_inflight_body_bytes: 1048576}}\n"
               "endpoints: {d: {model: m}}\n");
  EXPECT_TRUE(starts_with(message,
                          "server.limits.max_inflight_body_bytes: must be at least max_body_bytes (2097152)"))
      << message;
}

TEST(ParseConfig, BadDurationNamesTheKey) {
  auto message = error_of("endpoints: {d: {model: m, worker: {start_timeout: 5 days}}}\n");
  EXPECT_TRUE(starts_with(message, "endpoints.d.worker.start_timeout: invalid duration \"5 days\""))
      << message;
}

TEST(ParseConfig, ModelIsRequired) {
  auto message = error_of("endpoints: {d: {routing: dedicated-first}}\n");
  EXPECT_TRUE(starts_with(message, "endpoints.d.model: required")) << message;
}

TEST(ParseConfig, EmptyWorkerCommandIsRejected) {
  auto message = error_of("endpoints: {d: {model: m, worker: {command: []}}}\n");
  EXPECT_TRUE(starts_with(message, "endpoints.d.worker.command: must not be empty")) << message;
}

TEST(ParseConfig, EmptyOrMissingEndpoints) {
  EXPECT_TRUE(starts_with(error_of("endpoints: {}\n"), "endpoints: required"));
  EXPECT_TRUE(starts_with(error_of("server: {listen: 127.0.0.1:1}\n"), "endpoints: required"));
  EXPECT_TRUE(starts_with(error_of("endpoints: [a, b]\n"), "endpoints: required"));
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
}

TEST(ParseConfig, InvalidYaml) {
  auto message = error_of("endpoints: {digits: [unclosed\n");
  EXPECT_TRUE(starts_with(message, "invalid YAML:")) << message;
  EXPECT_TRUE(starts_with(error_of("endpoints:\n  d:\n    model: m\n   bad-indent: 1\n"), "invalid YAML:"));
}

TEST(ParseConfig, InvalidListenAddress) {
  auto message = error_of("server: {listen: localhost}\nendpoints: {d: {model: m}}\n");
  EXPECT_TRUE(starts_with(message, "server.listen: invalid listen address \"localhost\"")) << message;
  EXPECT_TRUE(
      starts_with(error_of("server: {listen: \"h:99999\"}\nendpoints: {d: {model: m}}\n"), "server.listen:"));
}

TEST(ParseConfig, DuplicateKeysAreRejected) {
  auto message = error_of("endpoints:\n  digits: {model: a}\n  digits: {model: b}\n");
  EXPECT_TRUE(starts_with(message, "endpoints.digits:")) << message;
  message = error_of("endpoints: {d: {model: m, dedicated: {replicas: 1, replicas: 2}}}\n");
  EXPECT_TRUE(starts_with(message, "endpoints.d.dedicated.replicas:")) << message;
}

TEST(ParseConfig, NonFiniteNumbersAreRejected) {
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, dedicated: {price_per_hour: .nan}}}\n"),
                          "endpoints.d.dedicated.price_per_hour:"));
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, dedicated: {price_per_hour: .inf}}}\n"),
                          "endpoints.d.dedicated.price_per_hour:"));
  EXPECT_TRUE(starts_with(error_of("endpoints: {d: {model: m, serverless: {target_concurrency: .nan}}}\n"),
                          "endpoints.d.serverless.target_concurrency:"));
}

TEST(ParseHostPort, SplitsHostAndPort) {
  auto hp = parse_host_port("127.0.0.1:8080");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 8080);

  auto zero = parse_host_port("localhost:0");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->host, "localhost");
  EXPECT_EQ(zero->port, 0);

  auto top = parse_host_port("h:65535");
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->port, 65535);
}

TEST(ParseHostPort, BracketedIpv6) {
  auto hp = parse_host_port("[::1]:9000");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 9000);
}

TEST(ParseHostPort, RejectsMalformed) {
  for (const char* text :
       {"", "localhost", ":8080", "localhost:", "h:65536", "h:-1", "h:80x", "h:http", "h: 80"}) {
    auto hp = parse_host_port(text);
    EXPECT_FALSE(hp.ok()) << "accepted \"" << text << "\"";
    if (!hp.ok()) {
      EXPECT_NE(hp.error().message.find(std::string("\"") + text + "\""), std::string::npos)
          << hp.error().message;
    }
  }
}

} // namespace
} // namespace tandem

namespace tandem {
namespace {

TEST(ParseConfig, JobsSectionHasRunpodLikeDefaultsAndStrictKeys) {
  Config defaults = parsed(kMinimal);
  EXPECT_EQ(defaults.server.jobs.result_retention_ms, milliseconds(30 * 60 * 1000));
  EXPECT_EQ(defaults.server.jobs.queue_max, 10'000);
  EXPECT_EQ(defaults.server.jobs.concurrency, 0);
  Config c = parsed(std::string("server:\n  jobs: {queue_max: 5, concurrency: 2, result_retention: 5m, ttl: 1h, "
                                "execution_timeout: 30s, webhook_attempts: 4, webhook_retry_delay: 250ms}\n") +
                    kMinimal);
  EXPECT_EQ(c.server.jobs.queue_max, 5);
  EXPECT_EQ(c.server.jobs.concurrency, 2);
  EXPECT_EQ(c.server.jobs.result_retention_ms, milliseconds(300'000));
  EXPECT_EQ(c.server.jobs.ttl_ms, milliseconds(3'600'000));
  EXPECT_EQ(c.server.jobs.execution_timeout_ms, milliseconds(30'000));
  EXPECT_EQ(c.server.jobs.webhook_attempts, 4);
  EXPECT_EQ(c.server.jobs.webhook_retry_delay_ms, milliseconds(250));
  EXPECT_EQ(parsed(std::string("server:\n  jobs: {retained_max_bytes: 2097152}\n") + kMinimal).server.jobs.retained_max_bytes,
            2097152u);
  EXPECT_TRUE(starts_with(error_of(std::string("server:\n  jobs: {queue_maxx: 5}\n") + kMinimal),
                          "server.jobs.queue_maxx"));
  EXPECT_TRUE(starts_with(error_of(std::string("server:\n  jobs: {queue_max: 0}\n") + kMinimal),
                          "server.jobs.queue_max"));
  EXPECT_TRUE(starts_with(error_of(std::string("server:\n  jobs: {result_retention: 10ms}\n") + kMinimal),
                          "server.jobs.result_retention"));
}

TEST(ConfigTest, ReferenceWorkerArgsAreParsedWithTheWorkersOwnParserAtLoad) {
  // A typo would crash-loop every worker; it fails the load, naming the endpoint and the argument.
  const auto typo = error_of("endpoints: {d: {model: m, worker: {args: [--threds, '2']}}}\n");
  EXPECT_TRUE(starts_with(typo, "endpoints.d.worker.args:")) << typo;
  EXPECT_NE(typo.find("--threds"), std::string::npos) << typo;
  // The worker's own range checks apply too.
  const auto range = error_of("endpoints: {d: {model: m, worker: {args: [--threads, '0']}}}\n");
  EXPECT_TRUE(starts_with(range, "endpoints.d.worker.args:")) << range;
  EXPECT_NE(range.find("--threads"), std::string::npos) << range;
  // Rollout arguments are appended to worker.args for the new version's workers.
  const auto rollout = error_of(
      "endpoints: {d: {model: m, worker: {args: [--threads, '2']}, rollout: {to: m@latest, worker_args: [--bach]}}}\n");
  EXPECT_TRUE(starts_with(rollout, "endpoints.d.rollout.worker_args:")) << rollout;
  EXPECT_NE(rollout.find("--bach"), std::string::npos) << rollout;
  // The log level is checked at load too (it was checked only once a worker ran).
  const auto level = error_of("endpoints: {d: {model: m, worker: {args: [--log-level, loud]}}}\n");
  EXPECT_NE(level.find("unknown level loud"), std::string::npos) << level;
  // The configuration layer itself knows no worker: without the check, the arguments pass.
  EXPECT_TRUE(parse_config("endpoints: {d: {model: m, worker: {args: [--threds, '2']}}}\n", kBase).ok());
  EXPECT_EQ(parsed("endpoints: {d: {model: m, worker: {args: [--log-level, warn, --seed, '7']}}}\n")
                .endpoints.at(0)
                .worker.args.size(),
            4u);
  // Valid arguments load; a custom command's arguments are its own business.
  EXPECT_EQ(parsed("endpoints: {d: {model: m, worker: {args: [--threads, '2', --batch-max-size, '8']}}}\n")
                .endpoints.at(0)
                .worker.args.size(),
            4u);
  EXPECT_EQ(parsed("endpoints: {d: {model: m, worker: {command: [srv, '{listen}'], args: [--threds, '2']}}}\n")
                .endpoints.at(0)
                .worker.args.size(),
            2u);
}

} // namespace
} // namespace tandem

namespace tandem {
namespace {

TEST(ConfigTest, RegistryBlobStoreSettingsHaveDefaultsAndBounds) {
  const std::string endpoints = "endpoints: {d: {model: m}}\n";
  const auto defaults = parsed(endpoints).server.registry;
  EXPECT_EQ(defaults.max_blob_bytes, 64ULL << 30);
  EXPECT_EQ(defaults.unused_blob_grace_ms.count(), 3'600'000);
  EXPECT_EQ(defaults.blob_sweep_interval_ms.count(), 600'000);
  const auto set =
      parsed("server: {registry: {max_blob_bytes: 2097152, unused_blob_grace: 30s, blob_sweep_interval: 1s}}\n" +
             endpoints)
          .server.registry;
  EXPECT_EQ(set.max_blob_bytes, 2097152u);
  EXPECT_EQ(set.unused_blob_grace_ms.count(), 30'000);
  EXPECT_EQ(set.blob_sweep_interval_ms.count(), 1'000);
  EXPECT_NE(error_of("server: {registry: {max_blob_bytes: 10}}\n" + endpoints).find("server.registry.max_blob_bytes"),
            std::string::npos);
  EXPECT_NE(error_of("server: {registry: {blob_sweep_interval: 1ms}}\n" + endpoints)
                .find("server.registry.blob_sweep_interval"),
            std::string::npos);
  EXPECT_NE(error_of("server: {registry: {quota: 1}}\n" + endpoints).find("quota"), std::string::npos);
}

TEST(ConfigTest, ARolloutsWarmupTimeoutIsReadAndBounded) {
  const auto ep = parsed("endpoints: {d: {model: m, rollout: {to: m@latest, warmup_timeout: 90s}}}\n").endpoints.at(0);
  ASSERT_TRUE(ep.rollout.has_value());
  ASSERT_TRUE(ep.rollout->warmup_timeout_ms.has_value());
  EXPECT_EQ(ep.rollout->warmup_timeout_ms->count(), 90'000);
  EXPECT_NE(error_of("endpoints: {d: {model: m, rollout: {to: m@latest, warmup_timeout: 10ms}}}\n")
                .find("endpoints.d.rollout.warmup_timeout"),
            std::string::npos);
}

} // namespace
} // namespace tandem
