#include "worker/batcher.hpp"

#include <algorithm>
#include <utility>

namespace tandem::worker {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

std::string batch_key(const v2::DecodedRequest& request) {
  // Names cannot contain '\n' in a useful manifest; the separators only need to keep
  // ("a","bc") apart from ("ab","c").
  std::string key;
  for (const auto& name : request.requested_outputs) key.append(name).push_back('\n');
  key.push_back('|');
  for (const auto& input : request.inputs) {
    key.append(input.name).push_back('[');
    for (std::size_t d = 1; d < input.shape.size(); ++d)
      key.append(std::to_string(input.shape[d])).push_back(',');
    key.push_back(']');
  }
  return key;
}

v2::DecodedRequest merge_rows(const std::vector<const v2::DecodedRequest*>& requests) {
  v2::DecodedRequest merged;
  if (requests.empty()) return merged;
  const auto& first = *requests.front();
  merged.requested_outputs = first.requested_outputs;
  merged.inputs.resize(first.inputs.size());
  for (std::size_t i = 0; i < first.inputs.size(); ++i) {
    auto& in = merged.inputs[i];
    in.name = first.inputs[i].name;
    in.spec = first.inputs[i].spec;
    in.shape = first.inputs[i].shape;
    std::size_t elements = 0;
    for (const auto* r : requests) elements += r->inputs[i].values.size();
    in.values.reserve(elements);
    in.shape[0] = 0;
    for (const auto* r : requests) {
      in.values.insert(in.values.end(), r->inputs[i].values.begin(), r->inputs[i].values.end());
      in.shape[0] += r->inputs[i].shape[0];
    }
  }
  for (const auto* r : requests) merged.batch_size += r->batch_size;
  return merged;
}

Result<std::vector<std::vector<v2::OutputTensor>>> split_rows(const std::vector<v2::OutputTensor>& outputs,
                                                              const std::vector<std::int64_t>& rows) {
  std::int64_t total = 0;
  for (auto r : rows) total += r;
  std::vector<std::vector<v2::OutputTensor>> parts(rows.size());
  for (auto& part : parts) part.reserve(outputs.size());
  for (const auto& out : outputs) {
    if (out.shape.empty() || out.shape[0] != total || total <= 0 ||
        out.values.size() % static_cast<std::size_t>(total) != 0)
      return make_error(ErrorCode::internal, "batched output \"" + out.name + "\" has shape " +
                                                 v2::shape_to_string(out.shape, false) + ", expected " +
                                                 std::to_string(total) + " rows");
    const std::size_t per_row = out.values.size() / static_cast<std::size_t>(total);
    std::size_t offset = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      v2::OutputTensor piece;
      piece.name = out.name;
      piece.datatype = out.datatype;
      piece.shape = out.shape;
      piece.shape[0] = rows[i];
      const std::size_t count = per_row * static_cast<std::size_t>(rows[i]);
      piece.values.assign(out.values.begin() + static_cast<std::ptrdiff_t>(offset),
                          out.values.begin() + static_cast<std::ptrdiff_t>(offset + count));
      offset += count;
      parts[i].push_back(std::move(piece));
    }
  }
  return parts;
}

namespace {
// Rows per batch: powers of two up to Triton's usual limits.
std::vector<double> row_buckets() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
}
// Queue delay: from 10 µs, as configured delays are typically 100 µs-10 ms.
std::vector<double> delay_buckets_seconds() {
  return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1};
}
} // namespace

DynamicBatcher::DynamicBatcher(asio::io_context& io, BatchingConfig config, Engine engine,
                               MetricsRegistry& metrics, const std::string& model) :
    io_(io),
    config_(config), delay_(config.max_queue_delay_us), engine_(std::move(engine)), timer_(io),
    batch_rows_(metrics
                    .histogram("tandem_worker_batch_rows",
                               "Rows per engine call made by the dynamic batcher.", {"model"}, row_buckets())
                    .with({model})),
    queue_delay_seconds_(metrics
                             .histogram("tandem_worker_batch_queue_delay_seconds",
                                        "Time a request waited in the dynamic batching queue.", {"model"},
                                        delay_buckets_seconds())
                             .with({model})),
    batches_(
        metrics.counter("tandem_worker_batches_total", "Engine calls made by the dynamic batcher.", {"model"})
            .with({model})),
    rejected_(metrics
                  .counter("tandem_worker_batch_queue_rejected_total",
                           "Requests refused because the dynamic batching queue was full.", {"model"})
                  .with({model})),
    queued_(metrics
                .gauge("tandem_worker_batch_queue_requests",
                       "Requests waiting in the dynamic batching queue.", {"model"})
                .with({model})) {}

bool DynamicBatcher::accepts(const v2::DecodedRequest& request) const {
  return request.batch_size >= 1 && request.batch_size <= config_.max_batch_size && !request.inputs.empty();
}

asio::awaitable<Result<DynamicBatcher::Outputs>> DynamicBatcher::submit(v2::DecodedRequest request) {
  if (waiting_ >= static_cast<std::size_t>(config_.max_queue_size)) {
    rejected_.inc();
    co_return make_error(ErrorCode::unavailable,
                         "dynamic batching queue is full (" + std::to_string(waiting_) +
                             " requests waiting, batching.max_queue_size " +
                             std::to_string(config_.max_queue_size) + "); retry later");
  }
  Pending pending{std::move(request), Clock::now(), asio::steady_timer(io_), std::nullopt};
  auto& queue = queues_[batch_key(pending.request)];
  queue.items.push_back(&pending);
  queue.rows += pending.request.batch_size;
  ++waiting_;
  queued_.set(static_cast<double>(waiting_));
  if (queue.rows >= config_.max_batch_size) {
    // Full: run now, in this coroutine, rather than wait for the timer.
    while (!queue.items.empty() && queue.rows >= config_.max_batch_size) dispatch_one(queue);
    if (queue.items.empty()) queues_.erase(batch_key(pending.request));
  }
  arm_timer();
  if (!pending.result) {
    pending.wake.expires_at(Clock::time_point::max());
    co_await pending.wake.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return std::move(*pending.result);
}

void DynamicBatcher::dispatch_one(Queue& queue) {
  // Take whole requests from the front while they fit; the first always goes, so a request
  // exactly max_batch_size rows long runs alone.
  std::vector<Pending*> batch;
  std::int64_t rows = 0;
  while (!queue.items.empty()) {
    Pending* next = queue.items.front();
    if (!batch.empty() && rows + next->request.batch_size > config_.max_batch_size) break;
    batch.push_back(next);
    rows += next->request.batch_size;
    queue.items.pop_front();
  }
  queue.rows -= rows;
  waiting_ -= batch.size();
  queued_.set(static_cast<double>(waiting_));

  const auto started = Clock::now();
  for (auto* p : batch)
    queue_delay_seconds_.observe(std::chrono::duration<double>(started - p->enqueued).count());
  batch_rows_.observe(static_cast<double>(rows));
  batches_.inc();

  auto complete = [](Pending* p, Result<Outputs> result) {
    p->result.emplace(std::move(result));
    p->wake.cancel();
  };
  if (batch.size() == 1) {
    // Nothing to merge: skip the copies.
    Pending* only = batch.front();
    complete(only, engine_(only->request, only->request.requested_outputs));
    return;
  }
  std::vector<const v2::DecodedRequest*> requests;
  std::vector<std::int64_t> row_counts;
  requests.reserve(batch.size());
  row_counts.reserve(batch.size());
  for (auto* p : batch) {
    requests.push_back(&p->request);
    row_counts.push_back(p->request.batch_size);
  }
  const auto merged = merge_rows(requests);
  auto outputs = engine_(merged, merged.requested_outputs);
  if (!outputs) {
    for (auto* p : batch) complete(p, outputs.error());
    return;
  }
  auto parts = split_rows(*outputs, row_counts);
  if (!parts) {
    for (auto* p : batch) complete(p, parts.error());
    return;
  }
  for (std::size_t i = 0; i < batch.size(); ++i) complete(batch[i], std::move((*parts)[i]));
}

void DynamicBatcher::on_timer() {
  const auto now = Clock::now();
  for (auto it = queues_.begin(); it != queues_.end();) {
    auto& queue = it->second;
    while (!queue.items.empty() && queue.items.front()->enqueued + delay_ <= now) dispatch_one(queue);
    it = queue.items.empty() ? queues_.erase(it) : std::next(it);
  }
  arm_timer();
}

void DynamicBatcher::arm_timer() {
  std::optional<Clock::time_point> earliest;
  for (const auto& [key, queue] : queues_)
    if (!queue.items.empty()) {
      auto due = queue.items.front()->enqueued + delay_;
      if (!earliest || due < *earliest) earliest = due;
    }
  if (!earliest || (armed_until_ && *armed_until_ == *earliest)) return;
  armed_until_ = earliest;
  // Re-arming cancels the previous wait (its handler sees operation_aborted). A handler that
  // had already fired before the re-arm still runs; on_timer only dispatches what is due, so
  // a spurious run is harmless.
  timer_.expires_at(*earliest);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    armed_until_.reset();
    on_timer();
  });
}

} // namespace tandem::worker
