#include "worker/worker_server.hpp"

#include "http/server.hpp"
#include "protocol/v2_codec.hpp"
#include "protocol/v2_path.hpp"
#include "model/model_manifest.hpp"
#include "telemetry/metrics.hpp"
#include "telemetry/otlp_exporter.hpp"
#include "telemetry/trace_context.hpp"
#include "worker/batcher.hpp"
#include "worker/onnx_engine.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>

namespace tandem::worker {
namespace {

namespace asio = boost::asio;
using http::bhttp::verb;

class WorkerApp {
public:
  WorkerApp(asio::io_context& io, const WorkerOptions& options, ModelManifest manifest,
            std::unique_ptr<OnnxEngine> engine, telemetry::OtlpExporter* tracer)
      : io_(io), options_(options), manifest_(std::move(manifest)), engine_(std::move(engine)), tracer_(tracer),
        rng_(options.seed != 0 ? options.seed : static_cast<std::uint64_t>(::getpid())),
        inferences_(metrics_.counter("tandem_worker_inferences_total",
                                     "Inference requests answered by this worker, by HTTP status.",
                                     {"model", "code"})),
        inference_seconds_(metrics_.histogram("tandem_worker_inference_duration_seconds",
                                              "Engine time per inference request.", {"model"},
                                              latency_buckets_seconds())
                               .with({manifest_.name})),
        batch_rows_(metrics_.counter("tandem_worker_rows_total", "Rows (batch entries) inferred.",
                                     {"model"})
                        .with({manifest_.name})) {
    if (manifest_.batching)
      batcher_ = std::make_unique<DynamicBatcher>(
          io_, *manifest_.batching,
          [this](const v2::DecodedRequest& request, const std::vector<std::string>& requested) {
            return run_engine(request, requested);
          },
          metrics_, manifest_.name);
  }

  MetricsRegistry& metrics() { return metrics_; }

  asio::awaitable<http::Reply> handle(http::Request& request) {
    std::string_view target = v2::strip_query(request.target());
    if (target == "/v2/health/live" || target == "/v2/health/ready") {
      if (request.method() != verb::get) co_return method_not_allowed();
      co_return http::json_response(200, target == "/v2/health/live" ? R"({"live":true})" : R"({"ready":true})");
    }
    if (target == "/v2") {
      if (request.method() != verb::get) co_return method_not_allowed();
      co_return http::json_response(200, R"({"name":"tandem-worker","version":")" TANDEM_VERSION R"(","extensions":[]})");
    }
    if (target == "/metrics") {
      if (request.method() != verb::get) co_return method_not_allowed();
      co_return metrics_response();
    }
    auto path = v2::parse_model_path(target);
    if (!path) co_return not_found("no route for " + std::string(target));
    if (path->name != manifest_.name) co_return not_found("unknown model " + v2::quote_value(path->name));
    if (!path->version.empty() && path->version != manifest_.version)
      co_return not_found("model \"" + manifest_.name + "\" has no version " + v2::quote_value(path->version));
    switch (path->action) {
    case v2::ModelAction::metadata:
      if (request.method() != verb::get) co_return method_not_allowed();
      co_return http::json_response(200, v2::encode_model_metadata(manifest_.name, manifest_.version, "onnx", manifest_.schema));
    case v2::ModelAction::ready:
      if (request.method() != verb::get) co_return method_not_allowed();
      co_return http::json_response(200, R"({"name":")" + manifest_.name + R"(","ready":true})");
    case v2::ModelAction::infer: {
      if (request.method() != verb::post) co_return method_not_allowed();
      auto context = tracer_ ? telemetry::parse_traceparent(request["traceparent"]) : std::nullopt;
      if (!context || !context->sampled) co_return co_await infer(request);
      // The caller (the gateway's upstream call) is this span's parent.
      const std::int64_t started_ns = unix_ns();
      auto reply = co_await infer(request);
      telemetry::Span span;
      span.trace_id = std::move(context->trace_id);
      span.parent_span_id = std::move(context->span_id);
      char id[17];
      std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(rng_() | 1));
      span.span_id = id;
      span.name = "worker infer " + manifest_.name;
      span.kind = telemetry::SpanKind::server;
      span.start_unix_ns = started_ns;
      span.end_unix_ns = unix_ns();
      span.attributes = {{"tandem.worker", options_.worker_id},
                         {"tandem.model", manifest_.name},
                         {"tandem.model_version", manifest_.version},
                         {"http.response.status_code", static_cast<std::int64_t>(reply.status)}};
      if (reply.status >= 500) {
        span.error = true;
        span.status_message = reply.body.substr(0, 200);
      }
      tracer_->submit(std::move(span));
      co_return reply;
    }
    }
    co_return not_found("no route for " + std::string(target));
  }

private:
  asio::awaitable<http::Reply> infer(http::Request& request) {
    if (options_.fault_delay_ms > 0) {
      asio::steady_timer delay(io_, std::chrono::milliseconds(options_.fault_delay_ms));
      co_await delay.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (options_.fault_error_rate > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < options_.fault_error_rate) {
      count(options_.fault_error_status);
      co_return http::json_response(static_cast<unsigned>(options_.fault_error_status),
                                    v2::encode_error("injected fault (--fault-error-rate)"));
    }
    auto decoded = v2::decode_infer_request(request.body(), manifest_.schema, {.keep_values = true});
    if (!decoded) {
      count(http_status(decoded.error().code));
      co_return http::json_response(static_cast<unsigned>(http_status(decoded.error().code)),
                                    v2::encode_error(decoded.error().message));
    }
    // The batcher takes the request; the response needs these.
    const std::string id = decoded->id;
    const std::int64_t rows = decoded->batch_size;
    Result<std::vector<v2::OutputTensor>> outputs = make_error(ErrorCode::internal, "not run");
    if (batcher_ && batcher_->accepts(*decoded))
      outputs = co_await batcher_->submit(std::move(*decoded));
    else
      outputs = run_engine(*decoded, decoded->requested_outputs);
    if (!outputs) {
      const int status = http_status(outputs.error().code);
      count(status);
      co_return http::json_response(static_cast<unsigned>(status), v2::encode_error(outputs.error().message));
    }
    batch_rows_.inc(static_cast<double>(rows));
    count(200);
    co_return http::json_response(200, v2::encode_infer_response(manifest_.name, manifest_.version, id, *outputs));
  }

  // Engine time per engine call: one request, or one merged batch.
  Result<std::vector<v2::OutputTensor>> run_engine(const v2::DecodedRequest& request,
                                                   const std::vector<std::string>& requested) {
    auto started = std::chrono::steady_clock::now();
    auto outputs = engine_->infer(request, requested);
    inference_seconds_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    return outputs;
  }

  void count(int code) { inferences_.with({manifest_.name, std::to_string(code)}).inc(); }
  static std::int64_t unix_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  http::Reply metrics_response() {
    auto res = http::json_response(200, metrics_.render());
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return res;
  }
  static http::Reply not_found(const std::string& message) {
    return http::json_response(404, v2::encode_error(message));
  }
  static http::Reply method_not_allowed() {
    return http::json_response(405, v2::encode_error("method not allowed"));
  }

  asio::io_context& io_;
  const WorkerOptions& options_;
  ModelManifest manifest_;
  std::unique_ptr<OnnxEngine> engine_;
  telemetry::OtlpExporter* tracer_;  // null: tracing off
  std::mt19937_64 rng_;
  MetricsRegistry metrics_;
  Family<Counter>& inferences_;
  Histogram& inference_seconds_;
  Counter& batch_rows_;
  std::unique_ptr<DynamicBatcher> batcher_;  // null: batching off
};

// The manifest's `batching:` section with the command line's overrides applied.
Result<std::optional<BatchingConfig>> resolve_batching(const WorkerOptions& options, const ModelManifest& manifest) {
  std::optional<BatchingConfig> config = manifest.batching;
  if (options.batch_max_size == 0) return std::optional<BatchingConfig>();
  if (options.batch_max_size > 0) {
    if (!config) config = BatchingConfig{};
    config->max_batch_size = options.batch_max_size;
  }
  if (!config) {
    if (options.batch_max_queue_delay_us >= 0 || options.batch_max_queue_size >= 0)
      return make_error(ErrorCode::invalid_request, "--batch-max-queue-delay-us and --batch-max-queue-size need "
                                                    "--batch-max-size or a batching: section in the manifest");
    return config;
  }
  if (options.batch_max_queue_delay_us >= 0) config->max_queue_delay_us = options.batch_max_queue_delay_us;
  if (options.batch_max_queue_size > 0) config->max_queue_size = options.batch_max_queue_size;
  const auto& schema = manifest.schema;
  if (schema.max_batch_size <= 0)
    return make_error(ErrorCode::invalid_request, "--batch-max-size: model " + manifest.name +
                                                      " has no batch dimension (max_batch_size is 0)");
  if (config->max_batch_size > schema.max_batch_size)
    return make_error(ErrorCode::invalid_request, "--batch-max-size: " + std::to_string(config->max_batch_size) +
                                                      " exceeds the model's max_batch_size " +
                                                      std::to_string(schema.max_batch_size));
  for (const auto* list : {&schema.inputs, &schema.outputs})
    for (const auto& tensor : *list)
      if (tensor.shape.empty() || tensor.shape[0] != -1)
        return make_error(ErrorCode::invalid_request, "--batch-max-size: tensor \"" + tensor.name +
                                                          "\" has no variable first (batch) dimension");
  return config;
}

} // namespace

int run_worker(const WorkerOptions& options) {
  auto manifest = load_model_manifest(options.model_dir);
  if (!manifest) {
    spdlog::error("{}", manifest.error().message);
    return 2;
  }
  auto batching = resolve_batching(options, *manifest);
  if (!batching) {
    spdlog::error("{}", batching.error().message);
    return 2;
  }
  manifest->batching = *batching;
  if (manifest->batching)
    spdlog::info("dynamic batching: max_batch_size {} rows, max_queue_delay_us {}, max_queue_size {}",
                 manifest->batching->max_batch_size, manifest->batching->max_queue_delay_us,
                 manifest->batching->max_queue_size);
  auto engine = OnnxEngine::load(*manifest, options.threads);
  if (!engine) {
    spdlog::error("{}", engine.error().message);
    return 2;
  }
  // The gateway's prior for this worker's service time, until it has measured its own: the
  // warm-up run plus what the worker adds to every request on purpose.
  double service_prior_ms = (*engine)->warmup_ms() + static_cast<double>(options.fault_delay_ms);
  if (manifest->batching) service_prior_ms += static_cast<double>(manifest->batching->max_queue_delay_us) / 1000.0;
  auto listen = parse_host_port(options.listen);
  if (!listen) {
    spdlog::error("{}", listen.error().message);
    return 2;
  }
  // One thread runs everything, signals included (asio delivers them through this loop), so
  // the scheduler and reactor need no locks.
  std::unique_ptr<telemetry::OtlpExporter> tracer;
  if (!options.otlp_endpoint.empty()) {
    telemetry::OtlpExporterOptions trace_options;
    trace_options.url = options.otlp_endpoint;
    trace_options.service_name = "tandem-worker";
    trace_options.service_instance = options.worker_id;
    auto created = telemetry::OtlpExporter::create(trace_options);
    if (!created) {
      spdlog::error("--otlp-endpoint: {}", created.error().message);
      return 2;
    }
    tracer = std::move(*created);
  }
  asio::io_context io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE);
  WorkerApp app(io, options, std::move(*manifest), std::move(*engine), tracer.get());
  http::Server server(io, options.limits,
                      [&app](http::Request& r) { return app.handle(r); }, app.metrics());
  auto bound = server.listen(listen->host, listen->port);
  if (!bound) {
    spdlog::error("{}", bound.error().message);
    return 2;
  }
  server.start();
  std::string address = bound->address().to_string() + ":" + std::to_string(bound->port());
  if (options.ready_fd >= 0) {
    char prior[32];
    std::snprintf(prior, sizeof prior, "%.3f", service_prior_ms);
    std::string line = "READY " + address + " service_ms=" + prior + "\n";
    if (::write(options.ready_fd, line.data(), line.size()) < 0) return 2;
    ::close(options.ready_fd);
  } else {
    std::printf("listening on http://%s\n", address.c_str());
    std::fflush(stdout);
  }
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    server.stop();
    io.stop();
  });
  io.run();
  if (tracer) tracer->shutdown(std::chrono::milliseconds(1000));
  return 0;
}

} // namespace tandem::worker
