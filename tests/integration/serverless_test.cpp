// The two tiers with real workers: a serverless pool scales from zero with a cold start, grows
// under load, returns to zero after its scaledown window; the dedicated pool stays put; both
// tiers' metered cost grows.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;

struct TierCounts {
  int dedicated_ready = 0;
  int serverless_live = 0;  // anything but stopped
};

TierCounts count_tiers(ServerProcess& server) {
  TierCounts c;
  for (const auto& w : server.workers()) {
    if (w.tier == "dedicated" && w.state == "ready") ++c.dedicated_ready;
    if (w.tier == "serverless" && w.state != "stopped") ++c.serverless_live;
  }
  return c;
}

TEST(Serverless, ScalesFromZeroGrowsUnderLoadAndReturnsToZero) {
  const auto tick = 250ms;
  ServerProcess server("  digits:\n    model: " + (source_dir() / "models/digits").string() +
                           "\n    routing: serverless-first\n    slo: {timeout_ms: 5000}\n"
                           "    worker: {args: [\"--fault-delay-ms\", \"20\"]}\n"
                           "    dedicated: {replicas: 2, gpu: H100}\n"
                           "    serverless: {min: 0, max: 4, scaledown_window: 2s, gpu: H100}\n",
                       "  autoscaler_tick: 250ms\n");
  ASSERT_TRUE(server.wait_ready(2)) << server.logs();
  EXPECT_EQ(count_tiers(server).serverless_live, 0) << "min 0: no serverless worker before traffic";
  auto rows = load_heldout();

  // First request: a cold start, reported in the header.
  auto first = server.client().post("/v2/models/digits/infer", infer_body(rows, 0, 1));
  ASSERT_EQ(first.status, 200) << first.body << server.logs();
  EXPECT_EQ(first.header("x-tandem-tier"), "serverless");
  ASSERT_FALSE(first.header("x-tandem-cold-start-ms").empty()) << "the first request waited for a cold start";
  double cold_ms = std::stod(first.header("x-tandem-cold-start-ms"));
  EXPECT_GT(cold_ms, 0.0);
  EXPECT_LT(cold_ms, 2000.0);
  EXPECT_FALSE(first.header("x-tandem-cost-usd").empty());
  auto metrics_before = server.client().get("/metrics").body;

  // 16 concurrent clients for a while: the serverless pool grows past one worker.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t)
    clients.emplace_back([&, t] {
      auto c = server.client();
      for (std::size_t i = static_cast<std::size_t>(t); !stop; ++i)
        (c.post("/v2/models/digits/infer", infer_body(rows, i % rows.size(), 1)).status == 200 ? ok : failed)++;
    });
  int max_serverless = 0;
  int min_dedicated = 2;
  wait_until(
      [&] {
        auto counts = count_tiers(server);
        max_serverless = std::max(max_serverless, counts.serverless_live);
        min_dedicated = std::min(min_dedicated, counts.dedicated_ready);
        return max_serverless >= 4 && ok > 200;
      },
      15s);
  stop = true;
  for (auto& c : clients) c.join();
  const auto load_stopped = std::chrono::steady_clock::now();
  EXPECT_EQ(failed.load(), 0) << server.logs();
  EXPECT_GT(max_serverless, 1) << "the serverless pool must grow under 16 concurrent requests";
  EXPECT_LE(max_serverless, 4) << "never above max";

  // Back to zero within the scaledown window plus one tick (and the process's exit).
  bool zero = wait_until(
      [&] {
        auto counts = count_tiers(server);
        min_dedicated = std::min(min_dedicated, counts.dedicated_ready);
        return counts.serverless_live == 0;
      },
      10s);
  auto took = std::chrono::steady_clock::now() - load_stopped;
  ASSERT_TRUE(zero) << server.logs();
  std::printf("serverless: max %d workers under load; back to 0 after %lld ms; %d requests ok\n", max_serverless,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()), ok.load());
  EXPECT_GE(took, 2s - tick) << "not before the scaledown window";
  EXPECT_LE(took, 2s + tick + 300ms) << "within the window plus one tick (plus the worker's exit)";
  EXPECT_EQ(min_dedicated, 2) << "the dedicated pool stays at its replicas throughout";
  EXPECT_EQ(count_tiers(server).dedicated_ready, 2);

  auto metrics = server.client().get("/metrics").body;
  for (const char* tier : {"dedicated", "serverless"}) {
    std::string sample = std::string("tandem_cost_dollars_total{endpoint=\"digits\",tier=\"") + tier + "\"}";
    auto before = metric_value(metrics_before, sample);
    auto after = metric_value(metrics, sample);
    ASSERT_TRUE(before && after) << sample << "\n" << metrics;
    EXPECT_GT(*after, *before) << sample << " must grow";
  }
  auto cold_starts = metric_value(metrics, "tandem_cold_starts_total{endpoint=\"digits\",tier=\"serverless\"}");
  ASSERT_TRUE(cold_starts);
  EXPECT_GE(*cold_starts, 2.0);
  EXPECT_TRUE(metric_value(metrics, "tandem_autoscaler_desired_workers{endpoint=\"digits\",tier=\"serverless\"}"));
  EXPECT_TRUE(metric_value(metrics, "tandem_autoscaler_panic{endpoint=\"digits\",tier=\"serverless\"}"));
  EXPECT_NE(metrics.find("tandem_cold_start_duration_seconds_bucket{endpoint=\"digits\",tier=\"serverless\""),
            std::string::npos);
}

TEST(Serverless, DedicatedFirstSpillsOverToServerlessWhenDedicatedIsFull) {
  // The 200 ms budget holds a spillover only while a serverless cold start fits in it; an
  // instrumented worker starts too slowly, and admission then rightly answers 429.
  if (kSanitized) GTEST_SKIP() << "depends on cold-start speed, which sanitizers slow several times";
  ServerProcess server("  digits:\n    model: " + (source_dir() / "models/digits").string() +
                       "\n    slo: {p95_ms: 200, timeout_ms: 5000}\n    worker: {args: [\"--fault-delay-ms\", \"30\"]}\n"
                       "    dedicated: {replicas: 1, max_concurrency_per_worker: 1}\n"
                       "    serverless: {min: 0, max: 4}\n");
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  auto rows = load_heldout();
  std::atomic<int> dedicated{0}, serverless{0}, failed{0};
  std::mutex mutex;
  std::string failures;
  std::vector<std::thread> clients;
  for (int t = 0; t < 32; ++t)
    clients.emplace_back([&, t] {
      auto res = server.client().post("/v2/models/digits/infer", infer_body(rows, static_cast<std::size_t>(t), 1));
      if (res.status != 200) {
        ++failed;
        std::lock_guard lock(mutex);
        failures += std::to_string(res.status) + " " + res.body + " " + res.error + "\n";
      } else if (res.header("x-tandem-tier") == "dedicated") {
        ++dedicated;
      } else {
        ++serverless;
      }
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0) << failures << server.logs();
  EXPECT_GT(dedicated.load(), 0);
  EXPECT_GT(serverless.load(), 0) << "a burst of 32 on one dedicated slot must spill over";
  auto metrics = server.client().get("/metrics").body;
  auto spilled = metric_value(
      metrics, "tandem_spillovers_total{endpoint=\"digits\",from=\"dedicated\",to=\"serverless\",reason=\"saturated\"}");
  ASSERT_TRUE(spilled) << metrics;
  EXPECT_EQ(*spilled, serverless.load());
}

} // namespace
} // namespace tandem::testing
