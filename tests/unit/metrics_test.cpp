#include "telemetry/metrics.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tandem {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Metrics, EmptyRegistryRendersNothing) {
  MetricsRegistry registry;
  EXPECT_EQ(registry.render(), "");
}

TEST(Metrics, CounterHasHelpTypeAndSample) {
  MetricsRegistry registry;
  auto& requests = registry.counter("tandem_requests_total", "Requests received.", {"endpoint", "code"});
  requests.with({"digits", "200"}).inc();
  requests.with({"digits", "200"}).inc(2);
  requests.with({"digits", "400"}).inc();
  EXPECT_EQ(registry.render(), "# HELP tandem_requests_total Requests received.\n"
                               "# TYPE tandem_requests_total counter\n"
                               "tandem_requests_total{endpoint=\"digits\",code=\"200\"} 3\n"
                               "tandem_requests_total{endpoint=\"digits\",code=\"400\"} 1\n");
}

TEST(Metrics, FamilyWithoutChildrenStillHasHeader) {
  MetricsRegistry registry;
  registry.counter("tandem_errors_total", "Errors.", {"code"});
  EXPECT_EQ(registry.render(), "# HELP tandem_errors_total Errors.\n"
                               "# TYPE tandem_errors_total counter\n");
}

TEST(Metrics, GaugeWithoutLabelsAndFractionalValue) {
  MetricsRegistry registry;
  auto& gauge = registry.gauge("tandem_up", "Whether the server is up.", {});
  gauge.with({}).set(2.5);
  gauge.with({}).dec(0.25);
  EXPECT_EQ(registry.render(), "# HELP tandem_up Whether the server is up.\n"
                               "# TYPE tandem_up gauge\n"
                               "tandem_up 2.25\n");
}

TEST(Metrics, FamiliesRenderInRegistrationOrder) {
  MetricsRegistry registry;
  registry.gauge("tandem_b", "b", {}).with({}).set(1);
  registry.counter("tandem_a", "a", {}).with({}).inc();
  auto text = registry.render();
  auto b = text.find("# HELP tandem_b");
  auto a = text.find("# HELP tandem_a");
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(a, std::string::npos);
  EXPECT_LT(b, a);
}

TEST(Metrics, LabelValuesAreEscaped) {
  MetricsRegistry registry;
  auto& family = registry.counter("tandem_x_total", "x", {"path"});
  family.with({"a\\b \"quoted\"\nnext"}).inc();
  auto lines = lines_of(registry.render());
  ASSERT_EQ(lines.size(), 3u) << "a raw newline would split the sample over two lines";
  EXPECT_EQ(lines[2], R"(tandem_x_total{path="a\\b \"quoted\"\nnext"} 1)");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInf) {
  MetricsRegistry registry;
  auto& family = registry.histogram("tandem_latency_seconds", "Latency.", {"endpoint"}, {0.25, 0.5, 1});
  auto& h = family.with({"digits"});
  h.observe(0.125); // <= 0.25
  h.observe(0.25);  // a boundary value belongs to its own bucket (le is inclusive)
  h.observe(0.375); // <= 0.5
  h.observe(2);     // +Inf only
  EXPECT_EQ(h.count(), 4u);
  EXPECT_DOUBLE_EQ(h.sum(), 2.75);
  EXPECT_EQ(registry.render(), "# HELP tandem_latency_seconds Latency.\n"
                               "# TYPE tandem_latency_seconds histogram\n"
                               "tandem_latency_seconds_bucket{endpoint=\"digits\",le=\"0.25\"} 2\n"
                               "tandem_latency_seconds_bucket{endpoint=\"digits\",le=\"0.5\"} 3\n"
                               "tandem_latency_seconds_bucket{endpoint=\"digits\",le=\"1\"} 3\n"
                               "tandem_latency_seconds_bucket{endpoint=\"digits\",le=\"+Inf\"} 4\n"
                               "tandem_latency_seconds_sum{endpoint=\"digits\"} 2.75\n"
                               "tandem_latency_seconds_count{endpoint=\"digits\"} 4\n");
}

TEST(Metrics, HistogramWithoutLabels) {
  MetricsRegistry registry;
  registry.histogram("tandem_h", "h", {}, {1}).with({}).observe(3);
  EXPECT_EQ(registry.render(), "# HELP tandem_h h\n"
                               "# TYPE tandem_h histogram\n"
                               "tandem_h_bucket{le=\"1\"} 0\n"
                               "tandem_h_bucket{le=\"+Inf\"} 1\n"
                               "tandem_h_sum 3\n"
                               "tandem_h_count 1\n");
}

TEST(Metrics, LatencyBucketsAreSortedAndSpanTheDocumentedRange) {
  const auto& buckets = latency_buckets_seconds();
  ASSERT_FALSE(buckets.empty());
  EXPECT_DOUBLE_EQ(buckets.front(), 0.00025);
  EXPECT_DOUBLE_EQ(buckets.back(), 30);
  for (std::size_t i = 1; i < buckets.size(); ++i) EXPECT_LT(buckets[i - 1], buckets[i]);
}

TEST(Metrics, WithReturnsTheSameChildForTheSameLabels) {
  MetricsRegistry registry;
  auto& family = registry.counter("tandem_c_total", "c", {"k"});
  Counter& first = family.with({"v"});
  Counter& again = family.with({"v"});
  Counter& other = family.with({"w"});
  EXPECT_EQ(&first, &again);
  EXPECT_NE(&first, &other);
  EXPECT_EQ(family.children().size(), 2u);
}

TEST(Metrics, RegisteringANameTwiceReturnsTheFirstFamily) {
  MetricsRegistry registry;
  auto& first = registry.counter("tandem_pool_events_total", "Pool events.", {"pool"});
  auto& again = registry.counter("tandem_pool_events_total", "Pool events.", {"pool"});
  EXPECT_EQ(&first, &again);
  first.with({"a"}).inc();
  again.with({"b"}).inc();
  auto text = registry.render();
  std::size_t headers = 0;
  for (auto at = text.find("# TYPE"); at != std::string::npos; at = text.find("# TYPE", at + 1)) ++headers;
  EXPECT_EQ(headers, 1u) << "one family, rendered once:\n" << text;
  EXPECT_THROW(registry.counter("tandem_pool_events_total", "Pool events.", {"endpoint"}), std::logic_error);
}

TEST(Metrics, OnCollectRunsBeforeEachRender) {
  MetricsRegistry registry;
  auto& workers = registry.gauge("tandem_workers", "Workers by state.", {"state"});
  int scrapes = 0;
  registry.on_collect([&] {
    ++scrapes;
    workers.clear();
    workers.with({scrapes == 1 ? "starting" : "ready"}).set(scrapes);
  });
  auto first = registry.render();
  EXPECT_EQ(scrapes, 1);
  EXPECT_NE(first.find("tandem_workers{state=\"starting\"} 1\n"), std::string::npos) << first;
  auto second = registry.render();
  EXPECT_EQ(scrapes, 2);
  EXPECT_NE(second.find("tandem_workers{state=\"ready\"} 2\n"), std::string::npos) << second;
  EXPECT_EQ(second.find("starting"), std::string::npos) << "clear() drops stale children";
}

TEST(Metrics, HelpTextIsEscaped) {
  // The text format requires backslash and newline to be escaped in HELP lines.
  MetricsRegistry registry;
  registry.counter("tandem_y_total", "first line\nsecond \\ line", {});
  EXPECT_EQ(registry.render(), "# HELP tandem_y_total first line\\nsecond \\\\ line\n"
                               "# TYPE tandem_y_total counter\n");
}

} // namespace
} // namespace tandem
