// Workers die; clients do not notice. The gateway leaves no worker behind when it stops.
#include "harness.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <thread>

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;

struct LoadResult {
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::string first_failure;
  std::mutex mutex;
};

// Closed-loop load from `threads` clients until `stop` is set.
std::vector<std::thread> start_load(ServerProcess& server, int threads, std::atomic<bool>& stop, LoadResult& result) {
  auto rows = load_heldout();
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&server, &stop, &result, rows, t] {
      auto c = server.client();
      std::size_t i = static_cast<std::size_t>(t);
      while (!stop.load()) {
        // Batches of 1 to 4 rows, starting where a batch of 4 still fits.
        auto res = c.post("/v2/models/digits/infer", infer_body(rows, i % (rows.size() - 3), 1 + i % 4));
        if (res.status == 200) {
          ++result.ok;
        } else {
          if (result.failed++ == 0) {
            std::lock_guard lock(result.mutex);
            result.first_failure = std::to_string(res.status) + " " + res.body + " " + res.error;
          }
        }
        ++i;
      }
    });
  }
  return clients;
}

void kill_worker_under_load(int replicas) {
  ServerProcess server(digits_endpoint(replicas));
  ASSERT_TRUE(server.wait_ready(static_cast<std::size_t>(replicas))) << server.logs();
  std::atomic<bool> stop{false};
  LoadResult result;
  auto clients = start_load(server, 4, stop, result);
  ASSERT_TRUE(wait_until([&] { return result.ok.load() > 200; }, 20s));

  auto before = server.workers();
  pid_t victim = before.at(0).pid;
  ASSERT_GT(victim, 0);
  int ok_before_kill = result.ok.load();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  auto killed_at = std::chrono::steady_clock::now();

  // The worker comes back: a new pid in state ready.
  bool back = wait_until(
      [&] {
        auto now = server.workers();
        return !now.empty() && now.at(0).state == "ready" && now.at(0).pid != victim && now.at(0).pid > 0;
      },
      5s);
  auto back_after = std::chrono::steady_clock::now() - killed_at;
  // Keep the load on a little longer, across the restart.
  int ok_at_restart = result.ok.load();
  wait_until([&] { return result.ok.load() > ok_at_restart + 200; }, 10s);
  stop = true;
  for (auto& t : clients) t.join();

  ASSERT_TRUE(back) << server.logs();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(back_after).count();
  std::printf("replicas=%d: worker back in %lld ms; %d requests ok, %d failed\n", replicas,
              static_cast<long long>(ms), result.ok.load(), result.failed.load());
  EXPECT_LT(ms, 1000) << "the worker must be back within 1 s";
  EXPECT_EQ(result.failed.load(), 0) << result.first_failure << "\n" << server.logs();
  EXPECT_GT(result.ok.load(), ok_before_kill);
  EXPECT_FALSE(process_alive(victim));
  auto after = server.workers();
  EXPECT_EQ(after.at(0).restarts, 1);
  auto metrics = server.client().get("/metrics").body;
  EXPECT_NE(metrics.find("tandem_worker_restarts_total{endpoint=\"digits\",tier=\"dedicated\"} 1"), std::string::npos)
      << metrics;
}

TEST(Resilience, KillingAWorkerUnderLoadFailsNoRequestTwoReplicas) { kill_worker_under_load(2); }

TEST(Resilience, KillingTheOnlyWorkerUnderLoadFailsNoRequest) { kill_worker_under_load(1); }

TEST(Resilience, SigtermStopsEveryWorkerNoOrphans) {
  ServerProcess server(digits_endpoint(3));
  ASSERT_TRUE(server.wait_ready(3)) << server.logs();
  std::vector<pid_t> pids;
  for (const auto& w : server.workers()) pids.push_back(w.pid);
  ASSERT_EQ(pids.size(), 3u);
  auto status = server.stop(SIGTERM);
  ASSERT_TRUE(status.has_value()) << "tandem serve did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  for (pid_t pid : pids) EXPECT_TRUE(wait_until([&] { return !process_alive(pid); }, 5s)) << "orphan " << pid;
}

TEST(Resilience, SigtermLetsRequestsInFlightFinish) {
  ServerProcess server("  digits:\n    model: " + (source_dir() / "models/digits").string() +
                       "\n    worker: {args: [\"--fault-delay-ms\", \"300\"]}\n    dedicated: {replicas: 1}\n");
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  auto rows = load_heldout();
  HttpResult result;
  std::thread client([&] { result = server.client().post("/v2/models/digits/infer", infer_body(rows, 0, 1)); });
  ASSERT_TRUE(wait_until([&] { return server.logs().find("starting") != std::string::npos; }, 5s));
  // Wait until the request is in flight, then ask the server to stop.
  ASSERT_TRUE(wait_until(
      [&] {
        auto m = server.client().get("/metrics").body;
        return m.find("tandem_requests_in_flight{endpoint=\"digits\"} 1") != std::string::npos;
      },
      5s));
  auto status = server.stop(SIGTERM);
  client.join();
  EXPECT_EQ(result.status, 200) << result.body << result.error << server.logs();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST(Resilience, SigintStopsEveryWorker) {
  ServerProcess server(digits_endpoint(2));
  ASSERT_TRUE(server.wait_ready(2)) << server.logs();
  std::vector<pid_t> pids;
  for (const auto& w : server.workers()) pids.push_back(w.pid);
  ASSERT_TRUE(server.stop(SIGINT).has_value());
  for (pid_t pid : pids) EXPECT_TRUE(wait_until([&] { return !process_alive(pid); }, 5s)) << "orphan " << pid;
}

TEST(Resilience, WorkersDieWithAGatewayKilledOutright) {
  ServerProcess server(digits_endpoint(2));
  ASSERT_TRUE(server.wait_ready(2)) << server.logs();
  std::vector<pid_t> pids;
  for (const auto& w : server.workers()) pids.push_back(w.pid);
  ASSERT_TRUE(server.stop(SIGKILL).has_value());
  for (pid_t pid : pids) EXPECT_TRUE(wait_until([&] { return !process_alive(pid); }, 5s)) << "orphan " << pid;
}

TEST(Resilience, FailingWorkerIsRetriedOnceThenReported) {
  // Every inference fails on both workers: one retry, then 502 naming the worker's error.
  ServerProcess server(digits_endpoint(2, "    worker: {args: [\"--fault-error-rate\", \"1\"]}\n"));
  ASSERT_TRUE(server.wait_ready(2)) << server.logs();
  auto rows = load_heldout();
  auto res = server.client().post("/v2/models/digits/infer", infer_body(rows, 0, 1));
  EXPECT_EQ(res.status, 502) << res.body;
  EXPECT_NE(res.body.find("injected fault"), std::string::npos) << res.body;
  auto metrics = server.client().get("/metrics").body;
  EXPECT_NE(metrics.find("tandem_retries_total{endpoint=\"digits\",reason=\"worker_status\"} 1"), std::string::npos)
      << metrics;
}

TEST(Resilience, AnyV2ServerCanBeAWorkerThroughWorkerCommand) {
  // worker.command with {model} and {listen}: readiness is probed over HTTP, not reported.
  std::string endpoint = "  digits:\n    model: " + (source_dir() / "models/digits").string() +
                         "\n    worker:\n      command: [\"" + tandem_binary().string() +
                         "\", \"worker\", \"--model\", \"{model}\", \"--listen\", \"{listen}\"]\n"
                         "    dedicated: {replicas: 1}\n";
  ServerProcess server(endpoint);
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  auto rows = load_heldout();
  auto res = server.client().post("/v2/models/digits/infer", infer_body(rows, 0, 1));
  EXPECT_EQ(res.status, 200) << res.body << server.logs();
}

TEST(Resilience, AMistypedReferenceWorkerArgumentFailsStartUpNamingIt) {
  // Before, every worker exited with a usage error and was restarted forever.
  std::string failure;
  try {
    ServerProcess server(digits_endpoint(1, "    worker: {args: [--threds, \"2\"]}\n"));
  } catch (const std::runtime_error& e) {
    failure = e.what();
  }
  ASSERT_FALSE(failure.empty()) << "tandem serve started with worker.args [--threds, 2]";
  EXPECT_NE(failure.find("endpoints.digits.worker.args"), std::string::npos) << failure;
  EXPECT_NE(failure.find("--threds"), std::string::npos) << failure;
}

TEST(Resilience, AMissingWorkerBinaryIsLoggedAsCommandNotFound) {
  const std::string missing = "/nonexistent/tandem-no-such-server";
  std::string endpoint = "  digits:\n    model: " + (source_dir() / "models/digits").string() +
                         "\n    worker:\n      command: [\"" + missing +
                         "\", \"{listen}\"]\n"
                         "    dedicated: {replicas: 1}\n";
  ServerProcess server(endpoint);
  EXPECT_TRUE(wait_until(
      [&] { return server.logs().find("command not found: " + missing) != std::string::npos; }, 10s))
      << server.logs();
}

TEST(Resilience, SlowWorkerHitsTheDeadline) {
  ServerProcess server("  digits:\n    model: " + (source_dir() / "models/digits").string() +
                       "\n    slo: {timeout_ms: 200}\n    worker: {args: [\"--fault-delay-ms\", \"1000\"]}\n"
                       "    dedicated: {replicas: 1}\n");
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  auto rows = load_heldout();
  auto started = std::chrono::steady_clock::now();
  auto res = server.client().post("/v2/models/digits/infer", infer_body(rows, 0, 1));
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(res.status, 504) << res.body;
  EXPECT_LT(took, 900ms) << "the gateway must answer at the deadline, not when the worker does";
  // A client may shorten its own deadline.
  auto shorter = server.client().post("/v2/models/digits/infer", infer_body(rows, 0, 1), {{"x-tandem-deadline-ms", "50"}});
  EXPECT_EQ(shorter.status, 504);
}

} // namespace
} // namespace tandem::testing
