#include "cli/commands.hpp"
#include "cli/worker_args.hpp"
#include "base/logging.hpp"
#include "worker/worker_server.hpp"

#include <algorithm>
#include <memory>

namespace tandem::cli {

namespace {

constexpr const char* kWorkerDescription = "Run the reference worker: one model over the Open Inference Protocol v2";

// The worker's options, bound to `options` and `log_level`, which must outlive `cmd`'s parse.
void add_worker_options(CLI::App* cmd, worker::WorkerOptions* options, std::string* log_level) {
  cmd->add_option("--model", options->model_dir, "Model directory (with tandem-model.yaml)")->required();
  cmd->add_option("--listen", options->listen, "HOST:PORT to listen on; port 0 picks a free one")
      ->capture_default_str();
  cmd->add_option("--ready-fd", options->ready_fd,
                  "Write 'READY HOST:PORT' to this inherited descriptor once serving (used by tandem serve)");
  cmd->add_option("--worker-id", options->worker_id, "Identity used in logs");
  cmd->add_option("--threads", options->threads, "Engine threads")->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--fault-delay-ms", options->fault_delay_ms,
                  "FAULT INJECTION (tests only): delay every inference by N ms")
      ->check(CLI::Range(0, 3'600'000));
  cmd->add_option("--fault-error-rate", options->fault_error_rate,
                  "FAULT INJECTION (tests only): answer this fraction (0-1) of inferences with HTTP 500")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--fault-error-status", options->fault_error_status,
                  "FAULT INJECTION (tests only): the HTTP status of an injected fault (400-599)")
      ->capture_default_str()
      ->check(CLI::Range(400, 599));
  cmd->add_option("--seed", options->seed, "Seed for fault injection (default: the pid)");
  cmd->add_option("--max-body-bytes", options->limits.max_body_bytes, "Largest request body accepted")
      ->capture_default_str()
      ->check(CLI::Range(1024.0, 4294967296.0));
  cmd->add_option("--max-inflight-body-bytes", options->limits.max_inflight_body_bytes,
                  "Request bodies held at once, all connections together; larger new bodies get 503 "
                  "(never below --max-body-bytes)")
      ->capture_default_str()
      ->check(CLI::Range(1024.0, 1099511627776.0));
  cmd->add_option("--otlp-endpoint", options->otlp_endpoint,
                  "Export a span per sampled inference to this OTLP/HTTP collector (http://HOST:PORT/v1/traces)");
  cmd->add_option("--batch-max-size", options->batch_max_size,
                  "Dynamic batching: rows per merged engine call (overrides the manifest's batching.max_batch_size; "
                  "0 turns batching off)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000}));
  cmd->add_option("--batch-max-queue-delay-us", options->batch_max_queue_delay_us,
                  "Dynamic batching: longest wait of the oldest queued request before its batch runs, in "
                  "microseconds (overrides batching.max_queue_delay_us)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000}));
  cmd->add_option("--batch-max-queue-size", options->batch_max_queue_size,
                  "Dynamic batching: requests allowed to wait; more are refused with 503 (overrides "
                  "batching.max_queue_size)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000}));
  cmd->add_option("--log-level", *log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& level) { return is_log_level(level) ? std::string() : "unknown level " + level; },
          "LEVEL"));
}

} // namespace

void add_worker_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<worker::WorkerOptions>();
  auto log_level = std::make_shared<std::string>("info");
  auto* cmd = app.add_subcommand("worker", kWorkerDescription);
  add_worker_options(cmd, options.get(), log_level.get());
  cmd->callback([options, log_level, &exit_code] {
    if (!init_logging(options->worker_id.empty() ? "worker" : "worker " + options->worker_id, *log_level)) throw CLI::ValidationError("--log-level", "unknown level " + *log_level);
    exit_code = worker::run_worker(*options);
  });
}

std::optional<std::string> worker_args_error(const std::vector<std::string>& args) {
  // The same options and checks as a real start, with no callback: nothing runs. The options
  // live here, beside the parser that writes them.
  worker::WorkerOptions options;
  std::string log_level = "info";
  CLI::App app;
  add_worker_options(app.add_subcommand("worker", kWorkerDescription), &options, &log_level);
  std::vector<std::string> argv{"worker", "--model", "."};  // the pool passes --model itself
  argv.insert(argv.end(), args.begin(), args.end());
  std::reverse(argv.begin(), argv.end());  // CLI11 takes the vector last argument first
  try {
    app.parse(argv);
  } catch (const CLI::Success&) {
    return "--help and --version print and exit: not a worker argument";
  } catch (const CLI::ParseError& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

} // namespace tandem::cli
