#include "gateway/blob_sweeper.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace tandem::gateway {

namespace asio = boost::asio;

BlobSweeper::BlobSweeper(asio::io_context& io, registry::ModelRegistry& models, MetricsRegistry& metrics,
                         const RegistryConfig& config)
    : models_(models), config_(config), timer_(io) {
  auto& bytes = metrics.gauge("tandem_blob_bytes", "Bytes of model artifacts in the registry's blob store.", {})
                    .with({});
  auto& quota = metrics.gauge("tandem_blob_quota_bytes", "server.registry.max_blob_bytes.", {}).with({});
  auto& count = metrics.gauge("tandem_blobs", "Blobs in the registry's blob store.", {}).with({});
  auto& refused = metrics.counter("tandem_blob_uploads_refused_total",
                                  "Blob uploads refused with 507 because server.registry.max_blob_bytes was reached.",
                                  {})
                      .with({});
  auto& removed =
      metrics.counter("tandem_blobs_removed_total", "Blobs no version used, removed by the sweep or by DELETE.", {})
          .with({});
  auto& removed_bytes =
      metrics.counter("tandem_blob_removed_bytes_total", "Bytes of the blobs counted in tandem_blobs_removed_total.", {})
          .with({});
  metrics.on_collect([&models, &bytes, &quota, &count, &refused, &removed, &removed_bytes] {
    const auto& blobs = models.blobs();
    bytes.set(static_cast<double>(blobs.total_bytes()));
    quota.set(static_cast<double>(blobs.max_total_bytes()));
    count.set(static_cast<double>(blobs.count()));
    refused.advance_to(static_cast<double>(blobs.refused_for_quota()));
    removed.advance_to(static_cast<double>(models.blobs_removed().removed));
    removed_bytes.advance_to(static_cast<double>(models.blobs_removed().removed_bytes));
  });
}

void BlobSweeper::start() {
  sweep_now();
  asio::co_spawn(timer_.get_executor(), loop(), asio::detached);
}

void BlobSweeper::stop() {
  stopping_ = true;
  timer_.cancel();
}

void BlobSweeper::sweep_now() {
  auto swept = models_.sweep_unused_blobs(config_.unused_blob_grace_ms.count());
  if (!swept) {
    spdlog::warn("registry: blob sweep failed: {}", swept.error().message);
    return;
  }
  if (swept->removed > 0 || swept->temporaries_removed > 0)
    spdlog::info("registry: removed {} blob(s) no version uses ({} bytes) and {} stale upload temporaries",
                 swept->removed, swept->removed_bytes, swept->temporaries_removed);
}

asio::awaitable<void> BlobSweeper::loop() {
  while (!stopping_) {
    timer_.expires_after(config_.blob_sweep_interval_ms);
    auto [ec] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || stopping_) co_return;
    sweep_now();
  }
}

} // namespace tandem::gateway
