// The real engine in simulated time: the gateway's request path, router, pools, autoscaler and
// cost meters, built from a configuration, with the `sim` provider's workers on the event
// loop's clock. An hour of bursty traffic runs in seconds, and a seed fixes the run.
#include "sim/simulation.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <filesystem>

namespace tandem::sim {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string digits_row() {
  std::string data;
  for (int i = 0; i < 64; ++i) data += (i ? "," : "") + std::to_string(i % 17);
  return R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,64],"data":[)" + data + "]}]}";
}

SimulationSpec two_pools() {
  auto parsed = parse_config(R"(
endpoints:
  digits:
    model: ../models/digits
    slo: {p95_ms: 400, timeout_ms: 3000}
    routing: dedicated-first
    dedicated: {replicas: 2, max_concurrency_per_worker: 2, price_per_hour: 2.69, queue_max: 8}
    serverless: {min: 1, max: 8, max_concurrency_per_worker: 2, price_per_second: 0.001097, target_concurrency: 2, scaledown_window: 60s}
)",
                             fs::path(TANDEM_SOURCE_DIR) / "examples");
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  SimulationSpec spec;
  spec.config = *parsed;
  auto manifest = load_model_manifest(spec.config.endpoints[0].model_dir);
  EXPECT_TRUE(manifest.ok()) << manifest.error().message;
  spec.manifests = {*manifest};
  spec.bodies = {{"digits", digits_row()}};
  WorkerModel dedicated;
  dedicated.service = 40ms;
  dedicated.service_cv = 0.25;
  dedicated.cold_start = 20s;
  WorkerModel serverless = dedicated;
  serverless.service = 55ms; // a smaller GPU
  serverless.cold_start = 4s;
  serverless.cold_start_cv = 0.3;
  spec.workers = {{"dedicated", dedicated}, {"serverless", serverless}};
  spec.crashes = {{20min, "digits-ded-0"}};
  spec.seed = 42;
  return spec;
}

std::vector<Arrival> bursty_hour(std::uint64_t seed) {
  TrafficSpec traffic;
  traffic.endpoint = "digits";
  traffic.length = 1h;
  traffic.base_rps = 10;   // a quarter of the dedicated pool's 100 requests a second
  traffic.burst_rps = 150; // half again above it
  traffic.burst_every = 10min;
  traffic.burst_length = 45s;
  return poisson_with_bursts(traffic, seed);
}

double cpu_seconds() {
  return static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
}

struct Quiet {
  Quiet() { spdlog::set_level(spdlog::level::err); }
  ~Quiet() { spdlog::set_level(spdlog::level::info); }
  Quiet(const Quiet&) = delete;
  Quiet& operator=(const Quiet&) = delete;
};

TEST(EngineSim, AnHourOfBurstyTrafficOnTwoPoolsWithACrashRunsInSecondsTheSameEveryTime) {
  Quiet quiet;
  const auto trace = bursty_hour(7);
  ASSERT_GT(trace.size(), 40'000u);
  ReplayReport first;
  double cpu_first = 0;
  {
    Simulation simulation(two_pools());
    const double before = cpu_seconds();
    first = simulation.run(trace);
    cpu_first = cpu_seconds() - before;
    EXPECT_EQ(simulation.fleet().crashed(), 1);
    // The crashed worker was replaced (restart with backoff) and served again afterwards.
    int after_crash = 0;
    for (const RequestRecord& r : first.requests)
      after_crash += r.worker == "digits-ded-0" && r.arrived > 21min ? 1 : 0;
    EXPECT_GT(after_crash, 1000) << first.summary();
  }
  RecordProperty("requests", static_cast<int>(first.requests.size()));
  RecordProperty("cpu_ms", static_cast<int>(cpu_first * 1000));
  std::printf("1 h simulated: %zu requests in %.2f s of CPU; %s\n", first.requests.size(), cpu_first,
              first.summary().c_str());
#ifndef TANDEM_SANITIZED
  EXPECT_LT(cpu_first, 10.0) << "an hour of traffic must simulate in under 10 s of CPU";
#endif
  for (const RequestRecord& r : first.requests) ASSERT_TRUE(r.finished);
  // Bursts spill to serverless, which the autoscaler starts from zero and lets go again.
  const PoolTrack* serverless = first.track("digits", "serverless");
  ASSERT_NE(serverless, nullptr);
  EXPECT_GT(first.count_pool("serverless"), 1000) << first.summary();
  EXPECT_GT(first.count_pool("dedicated"), 30'000) << first.summary();
  EXPECT_GE(serverless->peak_desired, 2);
  EXPECT_LE(serverless->peak_live, 8);
  EXPECT_GT(serverless->metered_cost_usd, 0);
  // Dedicated capacity is billed whether used or not: two workers for an hour at $2.69.
  EXPECT_NEAR(first.track("digits", "dedicated")->metered_cost_usd, 2 * 2.69, 0.1);
  // Only the requests on the crashed worker at that instant can fail, and a retry saves most.
  EXPECT_LE(first.count_at_least(500), 4) << first.summary();
  EXPECT_GT(first.count_status(200), static_cast<int>(first.requests.size() * 99 / 100)) << first.summary();

  // The same seed and trace: the same run, request for request.
  Simulation again(two_pools());
  const ReplayReport second = again.run(trace);
  EXPECT_EQ(first.digest(), second.digest());
  // Another seed for the workers' draws: another run.
  SimulationSpec other = two_pools();
  other.seed = 43;
  Simulation different(std::move(other));
  EXPECT_NE(first.digest(), different.run(trace).digest());
}

} // namespace
} // namespace tandem::sim
