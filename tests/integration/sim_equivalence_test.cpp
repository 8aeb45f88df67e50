// The simulator against the real thing: one short trace played into the engine twice, once
// live (real worker processes, the real clock) and once simulated (the `sim` provider, the
// event loop's clock, calibrated with the service and cold-start times the live run
// measured). The engine's decisions must agree: which pool served each request, and how far
// the autoscaler went.
#include "harness.hpp"

#include "base/asio_timers.hpp"
#include "sim/simulation.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

namespace tandem::sim {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

Config equivalence_config() {
  auto parsed = parse_config(R"(
endpoints:
  digits:
    model: ../models/digits
    slo: {p95_ms: 400, timeout_ms: 3000}
    routing: dedicated-first
    dedicated: {replicas: 1, max_concurrency_per_worker: 2, price_per_hour: 2.69, queue_max: 0}
    serverless: {min: 1, max: 4, max_concurrency_per_worker: 2, price_per_second: 0.001097, target_concurrency: 1, scaledown_window: 30s}
)",
                             tandem::testing::source_dir() / "examples");
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  return *parsed;
}

std::vector<Arrival> short_trace() {
  TrafficSpec traffic;
  traffic.endpoint = "digits";
  traffic.length = 8s;
  traffic.base_rps = 15;
  traffic.burst_rps = 70; // the dedicated worker serves 40 a second: bursts spill over
  traffic.burst_every = 3s;
  traffic.burst_length = 2s;
  return poisson_with_bursts(traffic, 11);
}

struct LiveRun {
  ReplayReport report;
  std::map<std::string, double> service_ms;    // mean upstream time by pool
  std::map<std::string, double> cold_start_ms; // measured by each pool
};

LiveRun run_live(const Config& config, const ModelManifest& manifest, const std::vector<Arrival>& trace,
                 const std::string& body) {
  boost::asio::io_context io;
  SteadyClock clock;
  AsioTimers timers(io, clock);
  MetricsRegistry metrics;
  pool::ChildReaper reaper(io);
  gateway::GatewayOptions options;
  options.self_exe = tandem::testing::tandem_binary().string();
  options.worker_log_args = {"--fault-delay-ms", "50"}; // a model that takes 50 ms
  options.timers = &timers;
  gateway::Gateway engine(io, config, {manifest}, reaper, metrics, clock, options);
  engine.start();
  const auto until_warm = clock.now() + 30s;
  while (!warm(engine) && clock.now() < until_warm) io.run_for(10ms);
  EXPECT_TRUE(warm(engine));
  Replay replay(io, timers, engine, {{"digits", body}});
  replay.schedule(trace, clock.now() + 50ms, 50ms);
  const auto until_done = clock.now() + trace.back().at + 30s;
  while (!replay.done() && clock.now() < until_done) io.run_for(10ms);
  EXPECT_TRUE(replay.done());
  LiveRun out;
  out.report = replay.report();
  std::map<std::string, std::pair<double, int>> upstream;
  for (const RequestRecord& r : out.report.requests)
    if (r.status == 200) {
      upstream[r.pool].first += r.upstream_ms;
      upstream[r.pool].second += 1;
    }
  for (auto& [pool, sum] : upstream) out.service_ms[pool] = sum.first / sum.second;
  for (const gateway::PoolRuntime& p : engine.slot("digits")->stable->pools)
    out.cold_start_ms[p.name] = p.pool->cold_start_ms();
  engine.shutdown();
  const auto until_stopped = clock.now() + 10s;
  while (reaper.watched() > 0 && clock.now() < until_stopped) io.run_for(10ms);
  engine.kill_remaining();
  return out;
}

TEST(SimEquivalence, TheSameTraceLiveAndSimulatedPicksTheSamePoolsAndScalesAsFar) {
  if (tandem::testing::kSanitized) GTEST_SKIP() << "timing: sanitizers slow the live run several times";
  const Config config = equivalence_config();
  auto manifest = load_model_manifest(config.endpoints[0].model_dir);
  ASSERT_TRUE(manifest.ok()) << manifest.error().message;
  const std::vector<tandem::testing::DigitRow> rows = tandem::testing::load_heldout();
  const std::string body = tandem::testing::infer_body(rows, 0, 1);
  const std::vector<Arrival> trace = short_trace();
  ASSERT_GT(trace.size(), 150u);

  const LiveRun live = run_live(config, *manifest, trace, body);

  SimulationSpec spec;
  spec.config = config;
  spec.manifests = {*manifest};
  spec.bodies = {{"digits", body}};
  for (const char* pool : {"dedicated", "serverless"}) {
    WorkerModel model;
    model.service = std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(
        live.service_ms.count(pool) ? live.service_ms.at(pool) : 50.0));
    model.service_cv = 0; // a fixed delay: the live workers take 50 ms and a little more
    model.cold_start = std::chrono::duration_cast<Duration>(
        std::chrono::duration<double, std::milli>(std::max(1.0, live.cold_start_ms.at(pool))));
    model.cold_start_cv = 0.1;
    spec.workers[pool] = model;
  }
  Simulation simulation(std::move(spec));
  spdlog::set_level(spdlog::level::warn);
  const ReplayReport simulated = simulation.run(trace);
  spdlog::set_level(spdlog::level::info);

  ASSERT_EQ(live.report.requests.size(), simulated.requests.size());
  int same = 0;
  for (std::size_t i = 0; i < trace.size(); ++i)
    same += live.report.requests[i].pool == simulated.requests[i].pool ? 1 : 0;
  const double agreement = static_cast<double>(same) / static_cast<double>(trace.size());
  std::printf("live: %s\nsimulated: %s\npool agreement %.1f%% of %zu requests\n",
              live.report.summary().c_str(), simulated.summary().c_str(), agreement * 100, trace.size());
  // The trace must exercise both pools for the comparison to mean anything.
  EXPECT_GT(live.report.count_pool("serverless"), 20) << live.report.summary();
  EXPECT_GT(live.report.count_pool("dedicated"), 20) << live.report.summary();
  EXPECT_GE(agreement, 0.95) << "live: " << live.report.summary() << "\nsimulated: " << simulated.summary();
  EXPECT_EQ(live.report.track("digits", "serverless")->peak_desired,
            simulated.track("digits", "serverless")->peak_desired)
      << "live: " << live.report.summary() << "\nsimulated: " << simulated.summary();
  EXPECT_EQ(live.report.count_at_least(500), 0) << live.report.summary();
  EXPECT_EQ(simulated.count_at_least(500), 0) << simulated.summary();
}

} // namespace
} // namespace tandem::sim
