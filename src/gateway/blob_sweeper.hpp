#pragma once
// Deletes the registry's unused blobs on a timer (server.registry): at start, then every
// blob_sweep_interval, each blob no version uses that is older than unused_blob_grace. Also
// exports the blob store's gauges and counters. Runs on the io thread, like the admin API
// that uploads and deletes blobs, so the two never race.
#include "config/config.hpp"
#include "state/model_registry.hpp"
#include "telemetry/metrics.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace tandem::gateway {

class BlobSweeper {
public:
  BlobSweeper(boost::asio::io_context& io, registry::ModelRegistry& models, MetricsRegistry& metrics,
              const RegistryConfig& config);
  /// Sweeps once now, then on the interval until stop().
  void start();
  void stop();
  /// One sweep, logged when it removes anything.
  void sweep_now();

private:
  boost::asio::awaitable<void> loop();

  registry::ModelRegistry& models_;
  RegistryConfig config_;
  boost::asio::steady_timer timer_;
  bool stopping_ = false;
};

} // namespace tandem::gateway
