#pragma once
// A whole simulated run: the real engine (gateway request path, router, pools, autoscalers,
// cost meters) built from a configuration as `tandem serve` builds it, with every pool's
// workers from the `sim` provider, on the event loop's clock. A trace goes in; what happened
// to each request and each pool comes out.
#include "config/config.hpp"
#include "model/model_manifest.hpp"
#include "sim/event_loop.hpp"
#include "sim/replay.hpp"
#include "sim/sim_provider.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tandem::sim {

struct Crash {
  Duration at{0}; // from the trace's start
  std::string worker_id;
};

struct SimulationSpec {
  Config config;
  std::vector<ModelManifest> manifests; // in config.endpoints order
  /// Worker behaviour by pool name; pools not named get `default_workers`.
  std::map<std::string, WorkerModel, std::less<>> workers;
  WorkerModel default_workers;
  std::map<std::string, std::string, std::less<>> bodies; // the request body per endpoint
  std::vector<Crash> crashes;
  std::uint64_t seed = 1;
  /// The trace starts once every pool's warm workers are ready (see warm()), or after this.
  Duration warmup{std::chrono::minutes(5)};
  /// After the last arrival, how long requests may take to be answered.
  Duration drain{std::chrono::minutes(5)};
  Duration sample_every{std::chrono::milliseconds(100)};
};

class Simulation {
public:
  explicit Simulation(SimulationSpec spec);
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;
  ~Simulation();
  /// Runs the trace from a cold start to its last answer; once per Simulation.
  ReplayReport run(std::vector<Arrival> trace);
  [[nodiscard]] const Fleet& fleet() const { return fleet_; }
  [[nodiscard]] const EventLoop& loop() const { return loop_; }
  [[nodiscard]] gateway::Gateway& engine() { return *engine_; }

private:
  SimulationSpec spec_;
  boost::asio::io_context io_;
  EventLoop loop_;
  MetricsRegistry metrics_;
  pool::ChildReaper reaper_; // the engine takes one; no sim worker is a process
  Fleet fleet_;
  std::unique_ptr<gateway::Gateway> engine_;
};

} // namespace tandem::sim
