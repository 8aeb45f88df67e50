#include "telemetry/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace tandem {
namespace {

void append_escaped_label(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    append_escaped_label(out, values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_number(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_header(std::string& out, const std::string& name, const std::string& help,
                   std::string_view type) {
  out += "# HELP " + name + " ";
  for (char c : help) {  // the text format escapes backslash and newline in HELP
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  out += "\n# TYPE " + name + " ";
  out += type;
  out += '\n';
}

} // namespace

void Histogram::observe(double value) {
  auto it = std::lower_bound(bounds_->begin(), bounds_->end(), value);
  ++counts_[static_cast<std::size_t>(it - bounds_->begin())];
  sum_ += value;
  ++count_;
}

const std::vector<double>& latency_buckets_seconds() {
  static const std::vector<double> buckets = {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                              0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return buckets;
}

template <typename Metric>
Family<Metric>* MetricsRegistry::find(std::vector<std::unique_ptr<Family<Metric>>>& families, const std::string& name,
                                      const std::vector<std::string>& labels) {
  for (auto& f : families) {
    if (f->name() != name) continue;
    if (f->labels() != labels) throw std::logic_error("metric " + name + " registered with different labels");
    return f.get();
  }
  return nullptr;
}

Family<Counter>& MetricsRegistry::counter(std::string name, std::string help,
                                          std::vector<std::string> labels) {
  if (auto* existing = find(counters_, name, labels)) return *existing;
  counters_.push_back(std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(labels)));
  order_.emplace_back(MetricType::counter, counters_.size() - 1);
  return *counters_.back();
}

Family<Gauge>& MetricsRegistry::gauge(std::string name, std::string help, std::vector<std::string> labels) {
  if (auto* existing = find(gauges_, name, labels)) return *existing;
  gauges_.push_back(std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(labels)));
  order_.emplace_back(MetricType::gauge, gauges_.size() - 1);
  return *gauges_.back();
}

Family<Histogram>& MetricsRegistry::histogram(std::string name, std::string help,
                                              std::vector<std::string> labels,
                                              std::vector<double> bounds) {
  if (auto* existing = find(histograms_, name, labels)) return *existing;
  histograms_.push_back(std::make_unique<Family<Histogram>>(std::move(name), std::move(help),
                                                            std::move(labels), std::move(bounds)));
  order_.emplace_back(MetricType::histogram, histograms_.size() - 1);
  return *histograms_.back();
}

std::string MetricsRegistry::render() {
  for (auto& collect : collectors_) collect();
  std::string out;
  out.reserve(8192);
  for (auto [type, index] : order_) {
    if (type == MetricType::counter) {
      const auto& f = *counters_[index];
      append_header(out, f.name(), f.help(), "counter");
      for (const auto& [values, child] : f.children()) {
        out += f.name();
        append_labels(out, f.labels(), values);
        out += ' ';
        append_number(out, child->value());
        out += '\n';
      }
    } else if (type == MetricType::gauge) {
      const auto& f = *gauges_[index];
      append_header(out, f.name(), f.help(), "gauge");
      for (const auto& [values, child] : f.children()) {
        out += f.name();
        append_labels(out, f.labels(), values);
        out += ' ';
        append_number(out, child->value());
        out += '\n';
      }
    } else {
      const auto& f = *histograms_[index];
      append_header(out, f.name(), f.help(), "histogram");
      for (const auto& [values, child] : f.children()) {
        std::uint64_t cumulative = 0;
        const auto& bounds = child->bounds();
        const auto& counts = child->bucket_counts();
        for (std::size_t b = 0; b <= bounds.size(); ++b) {
          cumulative += counts[b];
          std::string le;
          if (b == bounds.size()) le = "+Inf";
          else append_number(le, bounds[b]);
          out += f.name() + "_bucket";
          append_labels(out, f.labels(), values, "le", le);
          out += ' ' + std::to_string(cumulative) + '\n';
        }
        out += f.name() + "_sum";
        append_labels(out, f.labels(), values);
        out += ' ';
        append_number(out, child->sum());
        out += '\n';
        out += f.name() + "_count";
        append_labels(out, f.labels(), values);
        out += ' ' + std::to_string(child->count()) + '\n';
      }
    }
  }
  return out;
}

} // namespace tandem
