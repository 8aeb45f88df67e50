// The tier router and admission control in simulated time, on the real engine: the gateway's
// request path, pools and autoscaler built from a configuration, with the `sim` provider's
// workers (10 ms a request, alone on a worker) on the event loop's clock. A minute of traffic
// runs in milliseconds.
#include "policy/router.hpp"
#include "sim/simulation.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <random>

namespace tandem::policy {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Outcome {
  sim::ReplayReport report;
  int admitted = 0;
  int rejected = 0; // 429
  int on_dedicated = 0;
  int on_serverless = 0;
  int serverless_peak = 0; // live serverless workers at most
  double p95_ms = 0;       // of admitted requests
};

/// `serverless_max` 0: no serverless pool.
Outcome simulate(const std::string& routing, int dedicated, int serverless_max, double rps, Duration length,
                 engine::Priority priority = engine::Priority::normal) {
  std::string yaml =
      "endpoints:\n  digits:\n    model: ../models/digits\n    slo: {p95_ms: 50, timeout_ms: 1000}\n"
      "    routing: " +
      routing + "\n";
  if (dedicated > 0)
    yaml += "    dedicated: {replicas: " + std::to_string(dedicated) + ", max_concurrency_per_worker: 1}\n";
  if (serverless_max > 0)
    yaml += "    serverless: {min: 0, max: " + std::to_string(serverless_max) +
            ", max_concurrency_per_worker: 1, target_concurrency: 1}\n";
  auto parsed = parse_config(yaml, fs::path(TANDEM_SOURCE_DIR) / "examples");
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  sim::SimulationSpec spec;
  spec.config = *parsed;
  auto manifest = load_model_manifest(spec.config.endpoints[0].model_dir);
  EXPECT_TRUE(manifest.ok()) << manifest.error().message;
  spec.manifests = {*manifest};
  std::string pixels = "0";
  for (int i = 1; i < 64; ++i) pixels += ",0";
  spec.bodies = {{"digits", R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,64],"data":[)" +
                                pixels + "]}]}"}};
  spec.default_workers.service = 10ms;
  spec.default_workers.service_cv = 0;
  spec.default_workers.cold_start = 20ms;
  spec.default_workers.cold_start_cv = 0;
  spec.seed = 5;
  sim::TrafficSpec traffic;
  traffic.endpoint = "digits";
  traffic.length = length;
  traffic.base_rps = rps;
  traffic.priority = priority;
  spdlog::set_level(spdlog::level::err);
  sim::Simulation simulation(std::move(spec));
  Outcome out;
  out.report = simulation.run(sim::poisson_with_bursts(traffic, 9));
  spdlog::set_level(spdlog::level::info);
  std::vector<double> latencies;
  for (const sim::RequestRecord& r : out.report.requests) {
    if (r.status == 429) ++out.rejected;
    if (r.status != 200) continue;
    ++out.admitted;
    latencies.push_back(r.total_ms);
    out.on_dedicated += r.tier == "dedicated" ? 1 : 0;
    out.on_serverless += r.tier == "serverless" ? 1 : 0;
  }
  if (const sim::PoolTrack* t = out.report.track("digits", "serverless")) out.serverless_peak = t->peak_live;
  if (!latencies.empty()) {
    std::sort(latencies.begin(), latencies.end());
    out.p95_ms = latencies[latencies.size() * 95 / 100];
  }
  return out;
}

TEST(RoutingSim, SpilloverBeginsWhenDedicatedIsSaturated) {
  // Two dedicated workers at 10 ms: 200 requests/s of capacity.
  auto light = simulate("dedicated-first", 2, 8, 60, 60s);
  EXPECT_EQ(light.on_serverless, 0) << "well below capacity nothing spills: " << light.report.summary();
  EXPECT_EQ(light.rejected, 0);
  auto heavy = simulate("dedicated-first", 2, 8, 400, 60s);
  EXPECT_GT(heavy.on_serverless, heavy.admitted / 4)
      << "at twice the capacity, a large share spills: " << heavy.report.summary();
  EXPECT_GT(heavy.on_dedicated, heavy.admitted / 3) << "dedicated stays busy";
  EXPECT_LE(heavy.rejected, heavy.admitted / 100)
      << "serverless absorbs the burst: " << heavy.report.summary();
  EXPECT_LE(heavy.p95_ms, 50.0);
}

TEST(RoutingSim, CostOptimalAndDedicatedFirstBothKeepSteadyLoadOnDedicated) {
  for (const char* routing : {"dedicated-first", "cost-optimal"}) {
    auto r = simulate(routing, 4, 4, 150, 60s);
    EXPECT_EQ(r.serverless_peak, 0) << routing << ": " << r.report.summary();
    EXPECT_EQ(r.on_serverless, 0) << routing;
  }
}

TEST(RoutingSim, LowPriorityNeverScalesUp) {
  auto r = simulate("dedicated-first", 1, 8, 500, 30s, engine::Priority::low);
  EXPECT_EQ(r.serverless_peak, 0) << r.report.summary();
  EXPECT_EQ(r.on_serverless, 0);
  EXPECT_GT(r.rejected, 0) << "shed under pressure";
  EXPECT_GT(r.on_dedicated, 0) << "idle dedicated capacity is used";
}

TEST(RoutingSim, UnderThreeTimesOverloadAdmittedRequestsMeetTheSlo) {
  // Capacity: 2 workers x 10 ms = 200/s. Offered: 600/s. SLO p95 50 ms.
  auto r = simulate("dedicated-only", 2, 0, 600, 120s);
  const double admitted_share = static_cast<double>(r.admitted) / (r.admitted + r.rejected);
  std::printf("3x overload: admitted %.1f%%, admitted p95 %.1f ms, goodput %.0f/s\n", 100 * admitted_share,
              r.p95_ms, r.admitted / 120.0);
  EXPECT_LE(r.p95_ms, 50.0);
  EXPECT_NEAR(r.admitted / 120.0, 200.0, 20.0) << "goodput holds at capacity";
  EXPECT_GT(r.rejected, r.admitted) << "the excess is refused, not queued";
  EXPECT_EQ(r.report.count_at_least(500), 0) << r.report.summary();
}

TEST(RoutingSim, NoRetryStormWhenHalfOfTheAttemptsFail) {
  RetryBudget budget(0.2, 10, 100);
  std::mt19937_64 rng(3);
  int requests = 0;
  int retries = 0;
  for (int i = 0; i < 100'000; ++i) {
    ++requests;
    budget.on_request();
    bool failed = (rng() % 2) == 0;
    if (failed && budget.try_retry()) ++retries;
  }
  EXPECT_LE(retries, requests / 5 + 10) << "retries stay within 20 % of requests";
  EXPECT_GT(retries, requests / 5 - 100) << "the budget is used when needed";
}

} // namespace
} // namespace tandem::policy
