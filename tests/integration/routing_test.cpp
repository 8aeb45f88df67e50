// The hybrid router with real workers: fallback across tiers, admission control under
// overload, low priority, outlier ejection.
#include "harness.hpp"
#include "model/model_manifest.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;

std::string model_line() { return "    model: " + (source_dir() / "models/digits").string() + "\n"; }

TEST(Routing, KillingTheDedicatedWorkerFallsBackToServerlessWithoutErrors) {
  ServerProcess server("  digits:\n" + model_line() +
                       "    slo: {p95_ms: 200, timeout_ms: 3000}\n"
                       // 5 ms in the worker keeps requests in flight at the moment of the kill,
                       // however the client threads happen to be scheduled.
                       "    worker: {args: [\"--fault-delay-ms\", \"5\"]}\n"
                       "    dedicated: {replicas: 1, max_concurrency_per_worker: 4}\n"
                       "    serverless: {min: 0, max: 2}\n");
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  auto rows = load_heldout();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, serverless{0};
  std::string first_failure;
  std::mutex mutex;
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&, t] {
      auto c = server.client();
      for (std::size_t i = static_cast<std::size_t>(t); !stop; ++i) {
        auto res = c.post("/v2/models/digits/infer", infer_body(rows, i % rows.size(), 1));
        if (res.status == 200) {
          ++ok;
          if (res.header("x-tandem-tier") == "serverless") ++serverless;
        } else if (failed++ == 0) {
          std::lock_guard lock(mutex);
          first_failure = std::to_string(res.status) + " " + res.body;
        }
      }
    });
  ASSERT_TRUE(wait_until([&] { return ok > 200; }, 10s));
  pid_t victim = 0;
  for (const auto& w : server.workers())
    if (w.tier == "dedicated") victim = w.pid;
  ASSERT_GT(victim, 0);
  ::kill(victim, SIGKILL);
  bool replaced = wait_until(
      [&] {
        for (const auto& w : server.workers())
          if (w.tier == "dedicated" && w.state == "ready" && w.pid != victim && w.pid > 0) return true;
        return false;
      },
      5s);
  int at_restart = ok;
  wait_until([&] { return ok > at_restart + 200; }, 10s);
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_TRUE(replaced) << server.logs();
  EXPECT_EQ(failed.load(), 0) << first_failure << "\n" << server.logs();
  auto metrics = server.client().get("/metrics").body;
  auto fallbacks = metric_value(
      metrics, "tandem_spillovers_total{endpoint=\"digits\",from=\"dedicated\",to=\"serverless\",reason=\"fallback\"}");
  std::printf("fallback: %d ok, %d on serverless, %g fallbacks counted\n", ok.load(), serverless.load(),
              fallbacks.value_or(0));
  EXPECT_TRUE(fallbacks.has_value() && *fallbacks >= 1) << "requests caught by the kill fall back to serverless";
}

TEST(Routing, ABurstAtThreeTimesCapacityOnAColdEndpointIsRefusedWith429AndNo5xx) {
  // Nothing measured yet: the first burst is routed on the worker's own prior (its warm-up run
  // plus the 50 ms it adds), not on a guess. With a 10 ms guess, the gateway admitted far more
  // than 4 slots drain in 300 ms, and the first 300 ms ended in 504s.
  if (kSanitized) GTEST_SKIP() << "timing: sanitizers slow the gateway several times";
  ServerProcess server("  digits:\n" + model_line() +
                       "    slo: {timeout_ms: 300}\n"
                       "    worker: {args: [\"--fault-delay-ms\", \"50\"]}\n"
                       "    dedicated: {replicas: 1, max_concurrency_per_worker: 4}\n");
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  auto rows = load_heldout();
  // 4 slots of 50 ms take 80 requests/s. 48 clients send one request every 200 ms, all at once
  // at the start: 240 requests/s, 3 times what the endpoint can serve.
  constexpr int kClients = 48;
  constexpr int kRounds = 8;
  std::atomic<int> ok{0}, refused{0}, server_errors{0}, other{0}, missing_retry_after{0};
  const auto start = std::chrono::steady_clock::now() + 50ms;
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t)
    clients.emplace_back([&, t] {
      auto c = server.client();
      for (int round = 0; round < kRounds; ++round) {
        // The arrival schedule of an open-loop load, not a wait for a condition.
        std::this_thread::sleep_until(start + round * 200ms);
        auto res = c.post("/v2/models/digits/infer", infer_body(rows, static_cast<std::size_t>(t) % rows.size(), 1));
        if (res.status == 200) {
          ++ok;
        } else if (res.status == 429) {
          ++refused;
          if (res.header("retry-after").empty()) ++missing_retry_after;
        } else if (res.status >= 500) {
          ++server_errors;
        } else {
          ++other;
        }
      }
    });
  for (auto& c : clients) c.join();
  std::printf("cold burst at 3x: %d answered, %d refused (429), %d server errors\n", ok.load(), refused.load(),
              server_errors.load());
  EXPECT_EQ(server_errors.load(), 0) << "no 5xx, the first burst included\n" << server.logs();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(refused.load(), kClients * kRounds / 3) << "3x the capacity: most requests are refused";
  EXPECT_GT(ok.load(), kClients * kRounds / 10) << "and the capacity is used";
  EXPECT_EQ(missing_retry_after.load(), 0);
}

TEST(Routing, OverloadIsRefusedFastWith429AndAdmittedRequestsStayInTime) {
  const int timeout_ms = 1000;
  ServerProcess server("  digits:\n" + model_line() +
                       "    routing: dedicated-only\n"
                       "    slo: {p95_ms: 100, timeout_ms: " + std::to_string(timeout_ms) + "}\n"
                       "    worker: {args: [\"--fault-delay-ms\", \"20\"]}\n"
                       "    dedicated: {replicas: 1, max_concurrency_per_worker: 1}\n");
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  auto rows = load_heldout();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, refused{0}, server_errors{0}, other{0}, missing_retry_after{0};
  std::mutex mutex;
  std::vector<double> admitted_ms;
  std::vector<std::thread> clients;
  for (int t = 0; t < 24; ++t)
    clients.emplace_back([&, t] {
      auto c = server.client();
      for (std::size_t i = static_cast<std::size_t>(t); !stop; ++i) {
        auto started = std::chrono::steady_clock::now();
        auto res = c.post("/v2/models/digits/infer", infer_body(rows, i % rows.size(), 1));
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
        if (res.status == 200) {
          ++ok;
          std::lock_guard lock(mutex);
          admitted_ms.push_back(ms);
        } else if (res.status == 429) {
          ++refused;
          if (res.header("retry-after").empty()) ++missing_retry_after;
          // A refused client backs off a little, as Retry-After asks, so the run stays bounded.
          std::this_thread::yield();
        } else if (res.status >= 500) {
          ++server_errors;
        } else {
          ++other;
        }
      }
    });
  wait_until([&] { return ok > 60 && refused > 100; }, 15s);
  stop = true;
  for (auto& c : clients) c.join();

  EXPECT_GT(refused.load(), 0) << "24 clients on one 20 ms slot must be refused in part";
  EXPECT_EQ(missing_retry_after.load(), 0);
  EXPECT_EQ(server_errors.load(), 0) << server.logs();
  EXPECT_EQ(other.load(), 0);
  ASSERT_FALSE(admitted_ms.empty());
  std::sort(admitted_ms.begin(), admitted_ms.end());
  double p95 = admitted_ms[admitted_ms.size() * 95 / 100];
  EXPECT_LT(admitted_ms.back(), timeout_ms) << "admitted requests finish inside timeout_ms";

  // Refusals are decided before any queueing: the gateway's own clock says so.
  auto metrics = server.client().get("/metrics").body;
  const std::string version = load_model_manifest(source_dir() / "models/digits")->version;
  const std::string labels = "{endpoint=\"digits\",model_version=\"" + version + "\",tier=\"none\"";
  auto fast = metric_value(metrics, "tandem_request_duration_seconds_bucket" + labels + ",le=\"0.005\"}");
  auto all = metric_value(metrics, "tandem_request_duration_seconds_count" + labels + "}");
  ASSERT_TRUE(fast && all) << metrics;
  std::printf("overload: %d admitted (p95 %.1f ms, max %.1f ms), %d refused, %.1f%% of refusals under 5 ms\n",
              ok.load(), p95, admitted_ms.back(), refused.load(), 100.0 * *fast / *all);
  EXPECT_GE(*fast / *all, 0.95) << "refusals answer in under 5 ms";
  auto rejected = metric_value(metrics, "tandem_rejected_total{endpoint=\"digits\",reason=\"overloaded\"}");
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(static_cast<int>(*rejected), refused.load());
}

TEST(Routing, LowPriorityUsesOnlyIdleCapacity) {
  ServerProcess server("  digits:\n" + model_line() +
                       "    slo: {timeout_ms: 3000}\n"
                       "    worker: {args: [\"--fault-delay-ms\", \"300\"]}\n"
                       "    dedicated: {replicas: 1, max_concurrency_per_worker: 1}\n"
                       "    serverless: {min: 0, max: 2}\n");
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  auto rows = load_heldout();
  const std::map<std::string, std::string> low = {{"x-tandem-priority", "low"}};
  auto idle = server.client().post("/v2/models/digits/infer", infer_body(rows, 0, 1), low);
  EXPECT_EQ(idle.status, 200) << "idle dedicated capacity serves low priority";
  HttpResult busy_result;
  std::thread busy([&] { busy_result = server.client().post("/v2/models/digits/infer", infer_body(rows, 1, 1)); });
  ASSERT_TRUE(wait_until(
      [&] {
        return server.client().get("/metrics").body.find("tandem_requests_in_flight{endpoint=\"digits\"} 1") !=
               std::string::npos;
      },
      5s));
  auto refused = server.client().post("/v2/models/digits/infer", infer_body(rows, 2, 1), low);
  busy.join();
  EXPECT_EQ(busy_result.status, 200);
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());
  for (const auto& w : server.workers()) {
    if (w.tier == "serverless") {
      EXPECT_EQ(w.state, "stopped") << "low priority never scales up";
    }
  }
  EXPECT_EQ(server.client().post("/v2/models/digits/infer", "{}", {{"x-tandem-priority", "urgent"}}).status, 400);
}

TEST(Routing, ConsecutiveFailuresEjectAWorker) {
  ServerProcess server("  digits:\n" + model_line() +
                       "    retries: 0\n    outlier: {consecutive_failures: 2, base_ejection: 30s}\n"
                       "    worker: {args: [\"--fault-error-rate\", \"1\"]}\n"
                       "    dedicated: {replicas: 2}\n");
  ASSERT_TRUE(server.wait_ready(2)) << server.logs();
  auto rows = load_heldout();
  auto c = server.client();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(c.post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 502);
  auto metrics = c.get("/metrics").body;
  auto ejections = metric_value(metrics, "tandem_ejections_total{endpoint=\"digits\",tier=\"dedicated\"}");
  ASSERT_TRUE(ejections.has_value()) << metrics;
  EXPECT_EQ(*ejections, 1.0) << "at most half of the pool is ejected";
}

} // namespace
} // namespace tandem::testing
