// /metrics is valid Prometheus text (checked by promtool) and counts what happened.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace tandem::testing {
namespace {

std::pair<int, std::string> run_command(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
  int status = ::pclose(pipe);
  return {status, output};
}

TEST(Metrics, PromtoolCheckMetricsIsClean) {
  // Two endpoints: every family must appear once, however many pools use it.
  std::string second = "  other:\n    model: " + (source_dir() / "models/digits").string() +
                       "\n    dedicated: {replicas: 1}\n";
  ServerProcess server(digits_endpoint(2) + second);
  ASSERT_TRUE(server.wait_ready(3)) << server.logs();
  auto c = server.client();
  auto rows = load_heldout();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(c.post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 200);
  EXPECT_EQ(c.post("/v2/models/digits/infer", "{bad").status, 400);
  EXPECT_EQ(c.post("/v2/models/nosuch/infer", "{}").status, 404);

  auto res = c.get("/metrics");
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.header("content-type").rfind("text/plain; version=0.0.4", 0), 0u);
  const std::string& text = res.body;
  for (const char* expected : {
           "tandem_requests_total{endpoint=\"digits\",model_version=\"",
           "tier=\"dedicated\",code=\"200\"} 20",
           "tandem_request_errors_total{endpoint=\"digits\",error=\"malformed_json\"} 1",
           "tandem_request_duration_seconds_bucket{endpoint=\"digits\",model_version=\"",
           "\",tier=\"dedicated\",le=\"+Inf\"} 20",
           "tandem_queue_wait_seconds_count{endpoint=\"digits\",tier=\"dedicated\"} 20",
           "tandem_requests_in_flight{endpoint=\"digits\"} 0",
           "tandem_workers{endpoint=\"digits\",tier=\"dedicated\",state=\"ready\"} 2",
           "tandem_http_unrouted_total{code=\"404\"} 1",
       })
    EXPECT_NE(text.find(expected), std::string::npos) << "missing: " << expected << "\n" << text;

  auto file = server.directory() / "metrics.txt";
  std::ofstream(file) << text;
  auto [status, output] = run_command("promtool check metrics < " + file.string());
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << "promtool reported lint problems:\n" << output;
}

TEST(Metrics, AWorkersRefusalIsCountedAsTheWorkersNotTheClients) {
  // The body passes the gateway's validation; the worker refuses it (an injected 422). The
  // client sees the worker's answer; the count says who refused.
  ServerProcess server("  digits:\n    model: " + (source_dir() / "models/digits").string() +
                       "\n    worker: {args: [\"--fault-error-rate\", \"1\", \"--fault-error-status\", \"422\"]}\n"
                       "    dedicated: {replicas: 1}\n");
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  auto c = server.client();
  auto rows = load_heldout();
  auto res = c.post("/v2/models/digits/infer", infer_body(rows, 0, 1));
  EXPECT_EQ(res.status, 422) << res.body;
  EXPECT_EQ(res.header("x-tandem-attempts"), "") << "a refusal is not retried";
  EXPECT_EQ(c.post("/v2/models/digits/infer", "{bad").status, 400);
  const std::string text = c.get("/metrics").body;
  EXPECT_NE(text.find("tandem_request_errors_total{endpoint=\"digits\",error=\"worker_rejected_input\"} 1"),
            std::string::npos)
      << text;
  // Only the client's own bad body counts as the client's.
  EXPECT_EQ(text.find("error=\"invalid_request\""), std::string::npos) << text;
  EXPECT_NE(text.find("tandem_request_errors_total{endpoint=\"digits\",error=\"malformed_json\"} 1"),
            std::string::npos)
      << text;
}

} // namespace
} // namespace tandem::testing
