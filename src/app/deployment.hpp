#pragma once
// Deployment: what `tandem serve` decides about its endpoints before it serves them. Each
// endpoint's model is resolved once (a directory, or NAME@VERSION / NAME@latest from the
// registry), checked (its digest against the registry's, its artifact with the reference
// engine), and recorded; rollouts the configuration declares become requests to the rollout
// manager. The composition root (serve) calls these; nothing here listens or forks.
#include "base/clock.hpp"
#include "base/status.hpp"
#include "config/config.hpp"
#include "gateway/rollout_manager.hpp"
#include "model/model_manifest.hpp"
#include "state/model_registry.hpp"
#include "state/state_store.hpp"

#include <vector>

namespace tandem::app {

/// Resolves, checks and records every endpoint's model, in configuration order. Sets each
/// endpoint's model_dir to the directory it resolved to. The error names the endpoint
/// (`endpoints.NAME.model: ...`); nothing after the failing endpoint is recorded.
Result<std::vector<ModelManifest>> deploy_endpoints(Config& config, registry::ModelRegistry& models,
                                                    registry::StateStore& store, const Clock& clock);

/// The rollout an endpoint's configuration declares, as the request the admin API would make.
/// The endpoint must declare one (`ep.rollout`).
gateway::RolloutRequest declared_rollout(const EndpointConfig& ep);

/// Starts every declared rollout whose target the endpoint does not already serve. The error
/// names the endpoint (`endpoints.NAME.rollout: ...`).
Status start_declared_rollouts(const Config& config, gateway::Gateway& gateway,
                               gateway::RolloutManager& rollouts, registry::ModelRegistry& models);

} // namespace tandem::app
