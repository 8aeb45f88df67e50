#include "cli/commands.hpp"
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
  // Deploy: resolve every endpoint's model (a directory, or NAME@VERSION / NAME@latest from the
  // registry) once, now, and record what was resolved.
  std::vector<ModelManifest> manifests;
  for (auto& ep : config->endpoints) {
    std::string registry_digest;
    if (!ep.model_ref.empty()) {
      auto resolved = models.resolve(*parse_model_ref(ep.model_ref));
      if (!resolved) {
        std::fprintf(stderr, "tandem serve: endpoints.%s.model: %s\n", ep.name.c_str(),
                     resolved.error().message.c_str());
        return 2;
      }
      ep.model_dir = models.version_directory(*resolved);
      registry_digest = resolved->digest;
    }
    auto manifest = load_model_manifest(ep.model_dir);
    if (!manifest) {
      std::fprintf(stderr, "tandem serve: endpoints.%s.model: %s\n", ep.name.c_str(),
                   manifest.error().message.c_str());
      return 2;
    }
    // The reference worker would fail to load it and restart forever: say why now, and stop.
    if (ep.worker.command.empty()) {
      if (auto loads = worker::check_model(*manifest); !loads) {
        std::fprintf(stderr, "tandem serve: endpoints.%s.model: %s\n", ep.name.c_str(),
                     loads.error().message.c_str());
        return 2;
      }
    }
    if (!registry_digest.empty() && manifest->digest != registry_digest) {
      std::fprintf(stderr,
                   "tandem serve: endpoints.%s.model: the registry's copy of %s in %s no longer matches its "
                   "digest %s (modified on disk?)\n",
                   ep.name.c_str(), ep.model_ref.c_str(), ep.model_dir.c_str(), registry_digest.c_str());
      return 2;
    }
    registry::DeploymentRecord deployment{ep.name,
                                          ep.model_ref.empty() ? ep.model_dir.string() : ep.model_ref,
                                          manifest->name, manifest->version, clock.unix_ns() / 1'000'000};
    if (auto recorded = (*store)->record_deployment(deployment); !recorded)
      spdlog::warn("endpoint {}: {}", ep.name, recorded.error().message);
    spdlog::info("endpoint {} serves {} version {}{}", ep.name, manifest->name, manifest->version,
                 ep.model_ref.empty() ? "" : " (" + ep.model_ref + ")");
    // A rollout promoted before this restart lives on only if the configuration names it.
    if (auto events = (*store)->list_rollout_events(ep.name, 1);
        events && !events->empty() && events->front().kind == "promoted" &&
        events->front().to_version != manifest->version && !ep.rollout)
      spdlog::warn(
          "endpoint {}: the last rollout promoted version {}, but the configuration names {}: serving {}. "
          "Set `model: {}@{}` to keep the promoted version",
          ep.name, events->front().to_version, manifest->version, manifest->version, manifest->name,
          events->front().to_version);
    // Legal (a rollout or a later configuration may give it workers), but almost always a
    // mistake: say so rather than answer 503 to every request in silence.
    if ((!ep.dedicated || ep.dedicated->replicas == 0) && !ep.serverless)
      spdlog::warn("endpoint {}: no capacity: dedicated.replicas is 0 and there is no serverless pool, so every "
                   "inference answers 503 and /v2/models/{}/ready is not ready until workers are configured",
                   ep.name, ep.name);
    manifests.push_back(std::move(*manifest));
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
  gateway::Gateway gw(io, *config, std::move(manifests), reaper, metrics, clock, options);
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
  // Rollouts declared in the configuration start now (an endpoint already on the target
  // version has nothing to roll out).
  for (const auto& ep : config->endpoints) {
    if (!ep.rollout) continue;
    const auto& d = *ep.rollout;
    gateway::RolloutRequest request;
    request.endpoint = ep.name;
    request.to = d.to;
    request.actor = "configuration";
    auto& spec = request.spec;
    spec.strategy = *policy::parse_rollout_strategy(d.strategy);
    if (!d.steps_percent.empty()) spec.steps_percent = d.steps_percent;
    if (d.step_duration_ms) spec.step_duration = *d.step_duration_ms;
    if (d.min_requests) spec.min_requests = *d.min_requests;
    spec.require_approval = d.require_approval;
    if (d.rollback_window_ms) spec.rollback_window = *d.rollback_window_ms;
    if (d.warmup_timeout_ms) spec.warmup_timeout = *d.warmup_timeout_ms;
    if (d.max_error_rate_increase) spec.thresholds.max_error_rate_increase = *d.max_error_rate_increase;
    if (d.max_p95_ratio) spec.thresholds.max_p95_ratio = *d.max_p95_ratio;
    if (d.max_divergence) spec.thresholds.max_divergence = *d.max_divergence;
    if (d.p95_slack_ms) spec.thresholds.p95_slack_ms = *d.p95_slack_ms;
    request.worker_args = d.worker_args;
    auto target = models.resolve(*parse_model_ref(d.to));
    if (target && gw.slot(ep.name)->stable->manifest.digest == target->digest) {
      spdlog::info("endpoint {}: already serves {}; the declared rollout has nothing to do", ep.name, d.to);
      continue;
    }
    auto started = rollouts.start(request);
    if (!started) {
      std::fprintf(stderr, "tandem serve: endpoints.%s.rollout: %s\n", ep.name.c_str(),
                   started.error().message.c_str());
      gw.shutdown();
      gw.kill_remaining();
      return 2;
    }
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
