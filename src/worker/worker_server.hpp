#pragma once
// The reference worker: one model over the Open Inference Protocol v2 REST API.
#include "config/config.hpp"

#include <cstdint>
#include <filesystem>
#include <string>

namespace tandem::worker {

struct WorkerOptions {
  std::filesystem::path model_dir;
  std::string listen = "127.0.0.1:0";
  int ready_fd = -1;  // when set: "READY HOST:PORT\n" is written here once serving, then closed
  std::string worker_id;
  int threads = 1;    // engine threads; one worker per core is the scale-out unit
  // Fault injection, for chaos and overload tests only.
  std::int64_t fault_delay_ms = 0;
  double fault_error_rate = 0.0;
  int fault_error_status = 500;  // the status of an injected fault: 5xx a failure, 4xx a refusal
  std::uint64_t seed = 0;  // 0: derived from the pid
  HttpLimits limits;
  std::string otlp_endpoint;  // when set: a span per sampled inference, exported over OTLP/HTTP
  // Dynamic batching overrides of the manifest's `batching:` section; -1 keeps the manifest's.
  // batch_max_size 0 turns batching off; > 0 turns it on even without a `batching:` section.
  std::int64_t batch_max_size = -1;
  std::int64_t batch_max_queue_delay_us = -1;
  std::int64_t batch_max_queue_size = -1;
};

/// Runs until SIGTERM/SIGINT. Returns the process exit code.
int run_worker(const WorkerOptions& options);

} // namespace tandem::worker
