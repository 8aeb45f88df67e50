#include "app/deployment.hpp"

#include "gateway/gateway.hpp"
#include "worker/onnx_engine.hpp"

#include <spdlog/spdlog.h>

namespace tandem::app {

namespace {

Error at(const std::string& endpoint, const std::string& key, const Error& e) {
  return {e.code, "endpoints." + endpoint + "." + key + ": " + e.message};
}

} // namespace

Result<std::vector<ModelManifest>> deploy_endpoints(Config& config, registry::ModelRegistry& models,
                                                    registry::StateStore& store, const Clock& clock) {
  std::vector<ModelManifest> manifests;
  for (auto& ep : config.endpoints) {
    std::string registry_digest;
    if (!ep.model_ref.empty()) {
      auto resolved = models.resolve(*parse_model_ref(ep.model_ref));
      if (!resolved) return at(ep.name, "model", resolved.error());
      ep.model_dir = models.version_directory(*resolved);
      registry_digest = resolved->digest;
    }
    auto manifest = load_model_manifest(ep.model_dir);
    if (!manifest) return at(ep.name, "model", manifest.error());
    // The reference worker would fail to load it and restart forever: say why now, and stop.
    if (ep.worker.command.empty()) {
      if (auto loads = worker::check_model(*manifest); !loads) return at(ep.name, "model", loads.error());
    }
    if (!registry_digest.empty() && manifest->digest != registry_digest)
      return at(ep.name, "model",
                {ErrorCode::conflict, "the registry's copy of " + ep.model_ref + " in " +
                                          ep.model_dir.string() + " no longer matches its digest " +
                                          registry_digest + " (modified on disk?)"});
    registry::DeploymentRecord deployment{ep.name,
                                          ep.model_ref.empty() ? ep.model_dir.string() : ep.model_ref,
                                          manifest->name, manifest->version, clock.unix_ns() / 1'000'000};
    if (auto recorded = store.record_deployment(deployment); !recorded)
      spdlog::warn("endpoint {}: {}", ep.name, recorded.error().message);
    spdlog::info("endpoint {} serves {} version {}{}", ep.name, manifest->name, manifest->version,
                 ep.model_ref.empty() ? "" : " (" + ep.model_ref + ")");
    // A rollout promoted before this restart lives on only if the configuration names it.
    if (auto events = store.list_rollout_events(ep.name, 1);
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
      spdlog::warn(
          "endpoint {}: no capacity: dedicated.replicas is 0 and there is no serverless pool, so every "
          "inference answers 503 and /v2/models/{}/ready is not ready until workers are configured",
          ep.name, ep.name);
    manifests.push_back(std::move(*manifest));
  }
  return manifests;
}

gateway::RolloutRequest declared_rollout(const EndpointConfig& ep) {
  const auto& d = *ep.rollout;
  gateway::RolloutRequest request;
  request.endpoint = ep.name;
  request.to = d.to;
  request.actor = "configuration";
  auto& spec = request.spec;
  // The strategy was checked when the configuration loaded.
  spec.strategy = policy::parse_rollout_strategy(d.strategy).value_or(spec.strategy);
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
  return request;
}

Status start_declared_rollouts(const Config& config, gateway::Gateway& gateway,
                               gateway::RolloutManager& rollouts, registry::ModelRegistry& models) {
  for (const auto& ep : config.endpoints) {
    if (!ep.rollout) continue;
    // An endpoint already on the target version has nothing to roll out.
    auto target = models.resolve(*parse_model_ref(ep.rollout->to));
    if (target && gateway.slot(ep.name)->stable->manifest.digest == target->digest) {
      spdlog::info("endpoint {}: already serves {}; the declared rollout has nothing to do", ep.name,
                   ep.rollout->to);
      continue;
    }
    if (auto started = rollouts.start(declared_rollout(ep)); !started)
      return at(ep.name, "rollout", started.error());
  }
  return Ok{};
}

} // namespace tandem::app
