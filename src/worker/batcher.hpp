#pragma once
// Dynamic batching in the worker (Triton style): concurrent requests with compatible inputs are
// queued, merged into one engine call of at most `max_batch_size` rows and split back, so that
// the engine runs matrix-matrix products instead of one matrix-vector product per request.
#include "base/status.hpp"
#include "protocol/v2_codec.hpp"
#include "model/model_manifest.hpp"
#include "telemetry/metrics.hpp"

#include <boost/asio.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tandem::worker {

// ---- pure parts -------------------------------------------------------------------------------

/// Requests with equal keys can share one engine call: the same requested outputs (in order) and,
/// per input, the same shape after the first (batch) dimension.
std::string batch_key(const v2::DecodedRequest& request);

/// One request holding every row of `requests`, in order (inputs concatenated along their first
/// dimension). All requests must have the same batch_key; `requested_outputs` is the first one's.
v2::DecodedRequest merge_rows(const std::vector<const v2::DecodedRequest*>& requests);

/// Splits every output along its first dimension into consecutive ranges of `rows[i]` rows; the
/// i-th result holds request i's outputs. Fails when an output's first dimension is not the sum.
Result<std::vector<std::vector<v2::OutputTensor>>> split_rows(const std::vector<v2::OutputTensor>& outputs,
                                                              const std::vector<std::int64_t>& rows);

// ---- the queue --------------------------------------------------------------------------------

/// Queues requests per batch_key and runs them through `engine` in merged batches: a queue is
/// dispatched as soon as it holds max_batch_size rows, or when its oldest request has waited
/// max_queue_delay_us (one steady_timer for all queues). Lives on the worker's io thread: no
/// locks; the engine runs synchronously on that thread, like unbatched inference.
class DynamicBatcher {
public:
  using Outputs = std::vector<v2::OutputTensor>;
  using Engine = std::function<Result<Outputs>(const v2::DecodedRequest&, const std::vector<std::string>&)>;

  DynamicBatcher(boost::asio::io_context& io, BatchingConfig config, Engine engine, MetricsRegistry& metrics,
                 const std::string& model);
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  [[nodiscard]] const BatchingConfig& config() const { return config_; }

  /// Whether `request` may be queued (otherwise run it alone): its rows fit one batch.
  [[nodiscard]] bool accepts(const v2::DecodedRequest& request) const;

  /// Queues the request and completes with its own outputs once its batch has run. Refuses at
  /// once with `unavailable` (503) when max_queue_size requests are already waiting.
  boost::asio::awaitable<Result<Outputs>> submit(v2::DecodedRequest request);

private:
  struct Pending {
    v2::DecodedRequest request;
    std::chrono::steady_clock::time_point enqueued;
    boost::asio::steady_timer wake; // cancelled when `result` is set
    std::optional<Result<Outputs>> result;
  };
  struct Queue {
    std::deque<Pending*> items; // owned by the waiting coroutines' frames
    std::int64_t rows = 0;
  };
  using Queues = std::map<std::string, Queue>;

  void dispatch_one(Queue& queue);
  void on_timer();
  void arm_timer();

  boost::asio::io_context& io_;
  BatchingConfig config_;
  std::chrono::microseconds delay_;
  Engine engine_;
  Queues queues_;
  std::size_t waiting_ = 0;
  boost::asio::steady_timer timer_;
  std::optional<std::chrono::steady_clock::time_point> armed_until_;
  Histogram& batch_rows_;
  Histogram& queue_delay_seconds_;
  Counter& batches_;
  Counter& rejected_;
  Gauge& queued_;
};

} // namespace tandem::worker
