#pragma once
// Prometheus metrics: counters, gauges and histograms with fixed label names, rendered in the
// text exposition format. Owned by one io thread: no locking (tandem's gateway and worker run
// their request path on a single thread). Hot paths should keep the child references that
// with() returns instead of looking them up per request.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

class Counter {
public:
  void inc(double by = 1.0) { value_ += by; }
  /// For a counter that mirrors a monotonic total kept elsewhere (e.g. an atomic on another
  /// thread), read at scrape time.
  void advance_to(double total) { value_ = total; }
  [[nodiscard]] double value() const { return value_; }

private:
  double value_ = 0;
};

class Gauge {
public:
  void set(double v) { value_ = v; }
  void inc(double by = 1.0) { value_ += by; }
  void dec(double by = 1.0) { value_ -= by; }
  [[nodiscard]] double value() const { return value_; }

private:
  double value_ = 0;
};

class Histogram {
public:
  explicit Histogram(const std::vector<double>* bounds) : bounds_(bounds), counts_(bounds->size() + 1) {}
  void observe(double value);
  [[nodiscard]] std::uint64_t count() const { return count_; }
  [[nodiscard]] double sum() const { return sum_; }
  [[nodiscard]] const std::vector<std::uint64_t>& bucket_counts() const { return counts_; }
  [[nodiscard]] const std::vector<double>& bounds() const { return *bounds_; }

private:
  const std::vector<double>* bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; last is +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

enum class MetricType { counter, gauge, histogram };

/// A metric name with fixed label names and one child per distinct label-value tuple.
template <typename Metric> class Family {
public:
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)),
        bounds_(std::move(bounds)) {}

  /// Returns the child for these label values (created on first use). The reference stays
  /// valid for the registry's lifetime. Values must match the label names in count.
  Metric& with(const std::vector<std::string>& values) {
    auto it = children_.find(values);
    if (it == children_.end()) {
      std::unique_ptr<Metric> child;
      if constexpr (std::is_same_v<Metric, Histogram>) child = std::make_unique<Histogram>(&bounds_);
      else child = std::make_unique<Metric>();
      it = children_.emplace(values, std::move(child)).first;
    }
    return *it->second;
  }
  /// Drops every child (for gauges recomputed at scrape time).
  void clear() { children_.clear(); }

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& help() const { return help_; }
  [[nodiscard]] const std::vector<std::string>& labels() const { return labels_; }
  [[nodiscard]] const std::map<std::vector<std::string>, std::unique_ptr<Metric>>& children() const {
    return children_;
  }

private:
  std::string name_;
  std::string help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_;
};

/// Buckets for request-path latencies in seconds: 0.25 ms .. 30 s.
const std::vector<double>& latency_buckets_seconds();

/// Registering a name twice returns the family registered first (so every pool of a kind can
/// ask for "its" family); the label names must then match, or std::logic_error is thrown.
class MetricsRegistry {
public:
  Family<Counter>& counter(std::string name, std::string help, std::vector<std::string> labels);
  Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> labels);
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<std::string> labels,
                               std::vector<double> bounds);
  /// Runs before each render, e.g. to refresh gauges that are cheaper to compute on scrape.
  void on_collect(std::function<void()> collector) { collectors_.push_back(std::move(collector)); }
  /// Prometheus text format 0.0.4.
  std::string render();

private:
  template <typename Metric>
  static Family<Metric>* find(std::vector<std::unique_ptr<Family<Metric>>>& families, const std::string& name,
                              const std::vector<std::string>& labels);
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  std::vector<std::pair<MetricType, std::size_t>> order_;
  std::vector<std::function<void()>> collectors_;
};

} // namespace tandem
