#include "cli/commands.hpp"
#include "app/deployment.hpp"
#include "cli/worker_args.hpp"
#include "base/clock.hpp"
#include "config/config.hpp"
#include "base/io_inbox.hpp"
#include "base/logging.hpp"
#include "gateway/admin_api.hpp"
#include "gateway/blob_sweeper.hpp"
#include "gateway/gateway.hpp"
#include "gateway/rollout_manager.hpp"
#include "http/server.hpp"
#include "jobs/job_journal.hpp"
#include "jobs/job_manager.hpp"
#include "jobs/runpod_api.hpp"
#include "pool/child_reaper.hpp"
#include "pool/worker_process.hpp"
#include "state/audit_writer.hpp"
#include "state/model_registry.hpp"
#include "state/sqlite_store.hpp"
#include "state/state_lock.hpp"
#include "worker/onnx_engine.hpp"
#include "telemetry/otlp_exporter.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>

namespace tandem::cli {
namespace {

namespace asio = boost::asio;

struct ServeArgs {
  std::filesystem::path config_file;
  std::string listen;
  std::filesystem::path state_dir;
  std::string log_level = "info";
  int shutdown_grace_ms = 5000;
};

int run_serve(const ServeArgs& args) {
  auto config = load_config(args.config_file, {.worker_args = worker_args_error});
  if (!config) {
    std::fprintf(stderr, "tandem serve: %s\n", config.error().message.c_str());
    return 2;
  }
  if (!args.listen.empty()) config->server.listen = args.listen;
  if (!args.state_dir.empty()) config->server.state_dir = std::filesystem::absolute(args.state_dir);
  auto listen = parse_host_port(config->server.listen);
  if (!listen) {
    std::fprintf(stderr, "tandem serve: %s\n", listen.error().message.c_str());
    return 2;
  }
  std::error_code fs_ec;
  std::filesystem::create_directories(config->server.state_dir, fs_ec);
  if (fs_ec) {
    std::fprintf(stderr, "tandem serve: cannot create state directory %s: %s\n",
                 config->server.state_dir.c_str(), fs_ec.message().c_str());
    return 2;
  }
  // Before anything reads the state: a second server must not recover (and so run again) the
  // first one's jobs.
  auto state_lock = registry::lock_state_dir(config->server.state_dir);
  if (!state_lock) {
    std::fprintf(stderr, "tandem serve: %s\n", state_lock.error().message.c_str());
    return 2;
  }
  SteadyClock clock;
  auto store = registry::open_sqlite_store(registry::sqlite_path(config->server.state_dir));
  if (!store) {
    std::fprintf(stderr, "tandem serve: %s\n", store.error().message.c_str());
    return 2;
  }
  registry::ModelRegistry models(**store, config->server.state_dir,
                                 [&clock] { return clock.unix_ns() / 1'000'000; },
                                 config->server.registry.max_blob_bytes);
  models.set_artifact_check(worker::check_model);
  auto manifests = app::deploy_endpoints(*config, models, **store, clock);
  if (!manifests) {
    std::fprintf(stderr, "tandem serve: %s\n", manifests.error().message.c_str());
    return 2;
  }
  std::unique_ptr<registry::AuditWriter> audit;
  if (config->server.audit.enabled) {
    registry::AuditWriterOptions audit_options;
    audit_options.store_file = registry::sqlite_path(config->server.state_dir);
    audit_options.backlog_max = static_cast<std::size_t>(config->server.audit.backlog_max);
    audit_options.batch_max = static_cast<std::size_t>(config->server.audit.batch_max);
    audit_options.flush_interval_ms = config->server.audit.flush_interval_ms;
    audit_options.retention_ms = config->server.audit.retention_ms;
    auto started = registry::AuditWriter::start(audit_options);
    if (!started) {
      std::fprintf(stderr, "tandem serve: server.audit: %s\n", started.error().message.c_str());
      return 2;
    }
    audit = std::move(*started);
  }
  std::unique_ptr<telemetry::OtlpExporter> tracer;
  const auto& tracing = config->server.tracing;
  if (!tracing.otlp_endpoint.empty()) {
    telemetry::OtlpExporterOptions trace_options;
    trace_options.url = tracing.otlp_endpoint;
    trace_options.service_name = tracing.service_name;
    trace_options.queue_max = static_cast<std::size_t>(tracing.queue_max);
    trace_options.batch_max = static_cast<std::size_t>(tracing.batch_max);
    trace_options.flush_interval_ms = tracing.flush_interval_ms.count();
    auto created = telemetry::OtlpExporter::create(trace_options);
    if (!created) {
      std::fprintf(stderr, "tandem serve: server.tracing.otlp_endpoint: %s\n",
                   created.error().message.c_str());
      return 2;
    }
    tracer = std::move(*created);
  }
  unsigned long open_files = pool::raise_open_files_limit();
  if (open_files < config->server.limits.max_connections + 64)
    spdlog::warn("open-files limit is {} but server.limits.max_connections is {}: connections beyond the "
                 "limit will fail to be accepted",
                 open_files, config->server.limits.max_connections);

  // One thread runs everything, signals included (asio delivers them through this loop), so
  // the scheduler and reactor need no locks.
  asio::io_context io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE);
  MetricsRegistry metrics;
  pool::ChildReaper reaper(io);
  gateway::GatewayOptions options;
  options.self_exe = pool::self_executable();
  options.worker_log_args = {"--log-level", args.log_level};
  options.seed = std::random_device{}();
  gateway::AdminApi admin(**store, models, clock);
  gateway::BlobSweeper blob_sweeper(io, models, metrics, config->server.registry);
  options.admin = &admin;
  options.audit = audit.get();
  options.audit_input_sha256 = config->server.audit.input_sha256;
  options.tracer = tracer.get();
  options.trace_sample_ratio = tracing.sample_ratio;
  if (tracer) {
    options.worker_log_args.push_back("--otlp-endpoint");
    options.worker_log_args.push_back(tracing.otlp_endpoint);
  }
  gateway::Gateway gw(io, *config, std::move(*manifests), reaper, metrics, clock, options);
  gateway::RolloutManager rollouts(gw, **store, models, clock);
  gw.set_rollouts(&rollouts);
  // Jobs: every change goes to the store through the journal's own connection and thread.
  IoInbox inbox(io); // how other threads (the job journal) reach the lock-free io thread
  auto journal = jobs::JobJournal::start(registry::sqlite_path(config->server.state_dir), inbox);
  if (!journal) {
    std::fprintf(stderr, "tandem serve: jobs: %s\n", journal.error().message.c_str());
    return 2;
  }
  jobs::JobManager job_manager(io, inbox, gw, **journal, metrics, clock, config->server.jobs,
                               options.seed + 1);
  jobs::RunpodApi runpod(job_manager, clock);
  job_manager.set_status_encoder(
      [&clock](const jobs::Job& job) { return jobs::status_json(job, clock.unix_ns() / 1'000'000); });
  gw.set_job_api([&runpod](http::Request& r, std::string_view path, std::string_view query) {
    return runpod.handle(r, path, query);
  });
  if (auto recovered = job_manager.recover(**store); !recovered) {
    std::fprintf(stderr, "tandem serve: jobs: %s\n", recovered.error().message.c_str());
    return 2;
  }
  http::Server server(
      io, config->server.limits, [&gw](http::Request& r) { return gw.handle(r); }, metrics);
  auto bound = server.listen(listen->host, listen->port);
  if (!bound) {
    std::fprintf(stderr, "tandem serve: %s\n", bound.error().message.c_str());
    return 2;
  }
  job_manager.set_listen_port(bound->port());  // a webhook back to this server is refused
  gw.start();
  // Rollouts declared in the configuration start now.
  if (auto started = app::start_declared_rollouts(*config, gw, rollouts, models); !started) {
    std::fprintf(stderr, "tandem serve: %s\n", started.error().message.c_str());
    gw.shutdown();
    gw.kill_remaining();
    return 2;
  }
  job_manager.start();
  blob_sweeper.start();
  server.start();
  std::printf("listening on http://%s:%u\n", bound->address().to_string().c_str(), bound->port());
  std::fflush(stdout);
  spdlog::info("serving {} endpoint(s); state in {}", config->endpoints.size(),
               config->server.state_dir.string());
  if (tracer)
    spdlog::info("tracing: spans of sampled requests (ratio {}) go to {}", tracing.sample_ratio,
                 tracing.otlp_endpoint);

  // Orderly stop: refuse new connections, let requests in flight finish, SIGTERM every worker,
  // wait for them, SIGKILL stragglers. All of it within the grace period; no worker outlives
  // the gateway.
  asio::signal_set signals(io, SIGTERM, SIGINT);
  asio::steady_timer grace(io);
  asio::steady_timer poll(io);
  bool workers_stopping = false;
  std::function<void()> wait_for_children;
  std::function<void()> drain_requests = [&] {
    if (gw.in_flight() == 0 || workers_stopping) {
      workers_stopping = true;
      gw.shutdown();
      wait_for_children();
      return;
    }
    poll.expires_after(std::chrono::milliseconds(5));
    poll.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) drain_requests();
    });
  };
  wait_for_children = [&] {
    reaper.reap();
    if (reaper.watched() == 0) {
      io.stop();
      return;
    }
    poll.expires_after(std::chrono::milliseconds(10));
    poll.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) wait_for_children();
    });
  };
  signals.async_wait([&](const boost::system::error_code& ec, int signal_number) {
    if (ec) return;
    spdlog::info("signal {} received: draining {} request(s), then stopping workers", signal_number,
                 gw.in_flight());
    server.stop();
    blob_sweeper.stop();
    job_manager.shutdown(); // no new executions; unfinished jobs run again after a restart
    grace.expires_after(std::chrono::milliseconds(args.shutdown_grace_ms));
    grace.async_wait([&](const boost::system::error_code& timer_ec) {
      if (timer_ec) return;
      spdlog::warn("still running after {} ms: killing the workers", args.shutdown_grace_ms);
      if (!workers_stopping) {
        workers_stopping = true;
        gw.shutdown();
        wait_for_children();
      }
      gw.kill_remaining();
    });
    drain_requests();
  });
  io.run();
  // Requests are drained: write the last audit records, send the last spans.
  if (audit) audit->shutdown();
  (*journal)->shutdown();
  if (tracer) tracer->shutdown(std::chrono::milliseconds(2000));
  spdlog::info("stopped");
  return 0;
}

} // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "Run the gateway, the controller and the local workers");
  cmd->add_option("-c,--config", args->config_file, "Configuration file (YAML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--listen", args->listen,
                  "HOST:PORT (overrides server.listen; default 127.0.0.1:8080; port 0 picks one)");
  cmd->add_option("--state", args->state_dir, "State directory (overrides server.state)");
  cmd->add_option("--log-level", args->log_level, "trace|debug|info|warn|error|off")->capture_default_str();
  cmd->add_option(
         "--shutdown-grace-ms", args->shutdown_grace_ms,
         "How long draining requests and stopping workers may take after SIGTERM or SIGINT, before SIGKILL")
      ->capture_default_str()
      ->check(CLI::Range(0, 600'000));
  cmd->callback([args, &exit_code] {
    if (!init_logging("gateway", args->log_level))
      throw CLI::ValidationError("--log-level", "unknown level " + args->log_level);
    exit_code = run_serve(*args);
  });
}

} // namespace tandem::cli
