#pragma once
// Rollouts of endpoints to new model versions: the glue between the pure RolloutMachine
// (src/policy/rollout), the gateway's runtimes (the candidate's own workers, the traffic split)
// and the state store (history, approvals). Admin API under /admin/v1/rollouts.
//
// Threading and time: everything runs on the io thread; tick() is called by the gateway's
// controller loop with the current time; store writes are single small inserts.
#include "base/clock.hpp"
#include "gateway/gateway.hpp"
#include "http/types.hpp"
#include "policy/rollout.hpp"
#include "state/model_registry.hpp"
#include "state/state_store.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>

namespace tandem::gateway {

/// A rollout as requested (API, CLI or config).
struct RolloutRequest {
  std::string endpoint;
  std::string to;  // NAME@VERSION or NAME@latest
  policy::RolloutSpec spec;
  std::vector<std::string> worker_args;  // extra arguments for the candidate's reference workers
  std::string actor;
};

class RolloutManager {
public:
  RolloutManager(Gateway& gateway, registry::StateStore& store, registry::ModelRegistry& models, const Clock& clock);

  /// Starts a rollout; the error says why not (unknown endpoint/version, one already running...).
  Result<std::string> start(const RolloutRequest& request);
  void tick(TimePoint now);
  http::Reply handle(http::Request& request, std::string_view path, std::string_view query);

private:
  struct Active {
    std::string id;
    std::string endpoint;
    std::string from_version;
    std::string to_version;
    std::string to_ref;
    EndpointSlot* slot = nullptr;
    EndpointRuntime* candidate = nullptr;
    std::unique_ptr<policy::RolloutMachine> machine;
    policy::ArmStats baseline;
    policy::ArmStats canary;
    std::optional<policy::Analysis> last_analysis;
    std::int64_t started_unix_ms = 0;
    std::int64_t step_started_unix_ms = 0;
    std::string approved_by;
    std::int64_t approved_unix_ms = 0;
    std::string categorical_output;  // an integer output with one value per row in both versions, else empty
    OutcomeBus::Subscription outcomes = 0;  // the arms observe the endpoint's outcomes
  };

  void apply(Active& rollout, const policy::RolloutDecision& decision);
  void conclude(Active& rollout);
  void observe(Active& rollout, const Outcome& outcome);
  void record(const Active& rollout, const std::string& kind, const std::string& detail, const std::string& actor);
  std::string status_json(const Active& rollout) const;
  http::Reply operator_action(Active& rollout, std::string_view action, const std::string& actor);
  std::int64_t now_unix_ms() const { return clock_.unix_ns() / 1'000'000; }

  Gateway& gateway_;
  registry::StateStore& store_;
  registry::ModelRegistry& models_;
  const Clock& clock_;
  std::map<std::string, std::unique_ptr<Active>, std::less<>> rollouts_;  // by endpoint; the latest
  std::uint64_t next_id_ = 1;
};

/// Parses a start request body (JSON) into a RolloutRequest; the error names the field.
Result<RolloutRequest> parse_rollout_request(const std::string& body);

} // namespace tandem::gateway
