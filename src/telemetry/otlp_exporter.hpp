#pragma once
// A bounded, batching OTLP/HTTP (JSON) span exporter that never makes the request path wait.
#include "base/status.hpp"
#include "telemetry/span.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tandem::telemetry {

struct OtlpExporterOptions {
  /// http://host[:port][/path]; no path means /v1/traces. https is refused by create().
  std::string url;
  std::string service_name = "tandem";
  std::string service_instance;          // service.instance.id; omitted when empty
  std::size_t queue_max = 8192;          // spans waiting; beyond this submit() drops
  std::size_t batch_max = 512;           // spans per POST
  std::int64_t flush_interval_ms = 1000; // a partial batch waits at most this long
  std::int64_t timeout_ms = 2000;        // per POST: resolve + connect + write + read
  int max_retries = 2;                   // after the first try, for 429, 5xx and transport errors
  std::int64_t retry_backoff_ms = 100;   // before the first retry; doubles for each next one
};

/// Owns one background thread and one keep-alive HTTP connection to the collector.
///
/// Threading: submit(), the counters and queue_depth() may be called from any thread at any
/// time. submit() only takes a mutex to push into a bounded queue (no I/O, no waiting on the
/// exporter's network work); when the queue is full the span is dropped and counted. The
/// exporter thread sends a batch when batch_max spans are pending or every flush_interval_ms,
/// one POST at a time, retrying 429/5xx/transport failures with a short backoff; other 4xx
/// answers drop the batch (resending cannot fix it).
///
/// Time: every POST attempt is bounded by timeout_ms, every retry sequence by max_retries,
/// and shutdown() by its grace. Times come from steady_clock (this is I/O code, not policy).
class OtlpExporter {
public:
  using Options = OtlpExporterOptions;

  /// Validates the options (URL scheme and form, limits > 0) and starts the exporter thread.
  static Result<std::unique_ptr<OtlpExporter>> create(Options options);

  /// Calls shutdown() with a short grace (200 ms) if the owner did not.
  ~OtlpExporter();
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  /// Queues a finished span. Never blocks on I/O. After shutdown() it drops (and counts).
  void submit(Span span);

  /// Sends what is queued within `grace`, then stops the thread: an export still running at
  /// the end of the grace is cancelled and its spans, with any still queued, count as failed.
  /// Returns within about `grace`. Idempotent; safe from any thread but the exporter's own.
  void shutdown(std::chrono::milliseconds grace);

  std::uint64_t spans_submitted() const { return spans_submitted_.load(std::memory_order_relaxed); }
  std::uint64_t spans_exported() const { return spans_exported_.load(std::memory_order_relaxed); }
  /// Dropped because the queue was full (or the exporter was shut down).
  std::uint64_t spans_dropped() const { return spans_dropped_.load(std::memory_order_relaxed); }
  /// Given up on: retries exhausted, a non-retryable answer, or shutdown's grace ran out.
  std::uint64_t spans_failed() const { return spans_failed_.load(std::memory_order_relaxed); }
  /// POST attempts, retries included.
  std::uint64_t export_requests() const { return export_requests_.load(std::memory_order_relaxed); }
  /// POST attempts that did not get a 2xx.
  std::uint64_t export_failures() const { return export_failures_.load(std::memory_order_relaxed); }
  /// Spans waiting in the queue (not counting the batch being sent).
  std::size_t queue_depth() const { return queue_depth_.load(std::memory_order_relaxed); }

private:
  struct Target {
    std::string host; // without IPv6 brackets
    std::string port;
    std::string path;
    std::string host_header;
  };
  struct Io; // Asio/Beast state, touched only by the exporter thread (and posted aborts)
  struct Attempt;

  OtlpExporter(Options options, Target target);
  void run();
  void export_batch(const std::vector<Span>& batch);
  Attempt post_once(const std::string& body);
  std::chrono::steady_clock::time_point attempt_deadline();
  bool past_stop_deadline();

  const Options options_;
  const Target target_;
  std::unique_ptr<Io> io_;

  std::mutex mutex_;             // guards the fields below up to finished_
  std::condition_variable wake_; // exporter thread: a full batch, shutdown, abort
  std::condition_variable finished_cv_;
  std::deque<Span> queue_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_deadline_ = std::chrono::steady_clock::time_point::max();
  bool finished_ = false;

  std::atomic<bool> abort_{false}; // grace ran out: give up on the export in progress
  std::mutex join_mutex_;
  std::thread thread_;

  std::atomic<std::uint64_t> spans_submitted_{0};
  std::atomic<std::uint64_t> spans_exported_{0};
  std::atomic<std::uint64_t> spans_dropped_{0};
  std::atomic<std::uint64_t> spans_failed_{0};
  std::atomic<std::uint64_t> export_requests_{0};
  std::atomic<std::uint64_t> export_failures_{0};
  std::atomic<std::size_t> queue_depth_{0};
};

} // namespace tandem::telemetry
