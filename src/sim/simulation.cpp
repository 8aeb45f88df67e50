#include "sim/simulation.hpp"

#include <functional>

namespace tandem::sim {

Simulation::Simulation(SimulationSpec spec) : spec_(std::move(spec)), io_(1), loop_(io_), reaper_(io_) {
  gateway::GatewayOptions options;
  options.seed = spec_.seed;
  options.timers = &loop_;
  options.provider_for = [this](const EndpointConfig& endpoint, const ModelManifest&,
                                const PoolConfig& pool) {
    auto model = spec_.workers.find(pool.name);
    // A seed of its own per pool, so that adding a pool does not change another's draws.
    const std::uint64_t seed = spec_.seed ^ std::hash<std::string>{}(endpoint.name + "/" + pool.name);
    return std::make_unique<SimProvider>(
        io_, loop_, fleet_, model == spec_.workers.end() ? spec_.default_workers : model->second, seed);
  };
  engine_ = std::make_unique<gateway::Gateway>(io_, spec_.config, spec_.manifests, reaper_, metrics_,
                                               loop_.clock(), std::move(options));
}

Simulation::~Simulation() {
  engine_->shutdown();
  loop_.run_until(loop_.now() + std::chrono::seconds(1)); // the workers' exits reach their pools
  engine_.reset();
}

ReplayReport Simulation::run(std::vector<Arrival> trace) {
  engine_->start();
  loop_.run_until([this] { return warm(*engine_); }, loop_.now() + spec_.warmup);
  const TimePoint start = loop_.now();
  const Duration last = trace.empty() ? Duration(0) : trace.back().at;
  std::vector<TimerHandle> crashes;
  for (const Crash& crash : spec_.crashes)
    crashes.push_back(loop_.call_at(start + crash.at, [this, id = crash.worker_id] { fleet_.crash(id); }));
  Replay replay(io_, loop_, *engine_, spec_.bodies);
  replay.schedule(std::move(trace), start, spec_.sample_every);
  loop_.run_until([&replay] { return replay.done(); }, start + last + spec_.drain);
  for (TimerHandle& c : crashes) c.cancel();
  return replay.report();
}

} // namespace tandem::sim
