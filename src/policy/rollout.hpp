#pragma once
// Pure rollout logic (snapshot and time in, decision out): the analysis that compares a candidate model
// version with the baseline, and the state machine that walks canary steps or a blue/green
// switch, waits for approvals, promotes or rolls back. It reads no clock and does no I/O: the
// gateway (and the simulation tests) feed it the time and the traffic it observed.
#include "base/clock.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::policy {

enum class RolloutStrategy { canary, blue_green };
std::string_view to_string(RolloutStrategy strategy);
std::optional<RolloutStrategy> parse_rollout_strategy(std::string_view text);

struct RolloutThresholds {
  double max_error_rate_increase = 0.01;  // canary error rate may exceed the baseline's by this much
  double max_p95_ratio = 1.5;             // canary p95 latency / baseline p95
  double p95_slack_ms = 2.0;              // ...ignored while the difference is below this (noise)
  double max_divergence = 0.2;            // total variation distance of categorical outputs, 0..1
};

struct RolloutSpec {
  RolloutStrategy strategy = RolloutStrategy::canary;
  std::vector<int> steps_percent{5, 25, 50, 100};  // canary: traffic share per step; last is 100
  Duration step_duration{std::chrono::seconds(60)};
  std::int64_t min_requests = 50;  // per step, on the canary, before a step may pass
  bool require_approval = false;   // canary: before the final step; blue/green: before the switch
  RolloutThresholds thresholds;
  Duration rollback_window{std::chrono::minutes(5)};  // blue/green: the old version stays warm this long
  Duration warmup_timeout{std::chrono::minutes(5)};    // candidate not ready by then: the rollout aborts
};

/// Checks a spec; the error names the field.
std::optional<std::string> validate(const RolloutSpec& spec);

/// Traffic observed on one arm (baseline or candidate) during the current step. Latency
/// samples are bounded (the first `kMaxSamples`), which is plenty for a p95.
struct ArmStats {
  static constexpr std::size_t kMaxSamples = 20'000;
  std::int64_t requests = 0;
  std::int64_t errors = 0;  // 5xx and transport failures: the version's fault, not the client's
  std::vector<double> latencies_ms;
  std::map<std::string, std::int64_t> outputs;  // counts of a categorical output's values
  void add(bool error, double latency_ms);
  void add_output(const std::string& value) { ++outputs[value]; }
  [[nodiscard]] double error_rate() const { return requests > 0 ? static_cast<double>(errors) / static_cast<double>(requests) : 0; }
  [[nodiscard]] double p95_ms() const;
};

/// Total variation distance between two categorical distributions (0: same, 1: disjoint).
double output_divergence(const std::map<std::string, std::int64_t>& a, const std::map<std::string, std::int64_t>& b);

struct Analysis {
  enum class Verdict { pass, fail, wait };
  Verdict verdict = Verdict::wait;
  std::string reason;
  std::int64_t baseline_requests = 0;
  std::int64_t canary_requests = 0;
  double baseline_error_rate = 0;
  double canary_error_rate = 0;
  double baseline_p95_ms = 0;
  double canary_p95_ms = 0;
  double divergence = 0;
};
std::string_view to_string(Analysis::Verdict verdict);

/// Compares the candidate with the baseline. A failure is reported as soon as the candidate
/// has `min_requests`; a pass needs them too (the caller also waits for the step duration).
Analysis analyze(const ArmStats& baseline, const ArmStats& canary, const RolloutSpec& spec);

enum class RolloutPhase { warming, running, awaiting_approval, paused, promoted, rolled_back, aborted };
std::string_view to_string(RolloutPhase phase);

struct RolloutDecision {
  enum class Action {
    none,
    start_step,        // a new step (or the blue/green switch) began: reset the arms' stats
    await_approval,    // paused at the gate until approve()
    promote,           // the candidate is the endpoint's version now: release the baseline
    rollback,          // all traffic back to the baseline: release the candidate
    abort,             // the candidate never became ready: release it (the baseline kept all traffic)
  };
  Action action = Action::none;
  int canary_percent = 0;
  std::string reason;
  std::optional<Analysis> analysis;  // when one decided this
};
std::string_view to_string(RolloutDecision::Action action);

/// One rollout. Not thread-safe; time comes in with every call.
class RolloutMachine {
public:
  RolloutMachine(RolloutSpec spec, TimePoint now);

  /// Advances on time and traffic. `candidate_ready`: the new version's workers are warm
  /// (canary: at least one; blue/green: all). `baseline`/`canary`: traffic since the current
  /// step began. `candidate_failure`: why the candidate's latest worker start failed, if one
  /// did: the reason shown while warming, and the abort's reason once warmup_timeout passes.
  RolloutDecision tick(TimePoint now, bool candidate_ready, const ArmStats& baseline, const ArmStats& canary,
                       std::string_view candidate_failure = {});

  /// Operator actions; each returns an error message when not allowed in the current phase.
  std::optional<std::string> approve(TimePoint now);
  std::optional<std::string> pause(TimePoint now);
  std::optional<std::string> resume(TimePoint now);
  std::optional<std::string> abort(TimePoint now);     // stop, all traffic to the baseline
  std::optional<std::string> rollback(TimePoint now);  // also allowed after a blue/green switch

  [[nodiscard]] RolloutPhase phase() const { return phase_; }
  [[nodiscard]] int canary_percent() const { return percent_; }
  [[nodiscard]] int step_index() const { return step_; }
  [[nodiscard]] bool finished() const {
    return phase_ == RolloutPhase::promoted || phase_ == RolloutPhase::rolled_back || phase_ == RolloutPhase::aborted;
  }
  /// Blue/green: the switch happened and the rollback window is open.
  [[nodiscard]] bool switched() const { return switched_; }
  [[nodiscard]] const RolloutSpec& spec() const { return spec_; }
  [[nodiscard]] const std::string& last_reason() const { return last_reason_; }

private:
  RolloutDecision start_step(TimePoint now, int index, std::string reason);
  RolloutDecision finish(RolloutPhase phase, std::string reason, std::optional<Analysis> analysis);

  RolloutSpec spec_;
  RolloutPhase phase_ = RolloutPhase::warming;
  RolloutPhase paused_from_ = RolloutPhase::running;
  int step_ = -1;
  int percent_ = 0;
  TimePoint step_started_{};
  bool switched_ = false;
  bool approved_ = false;
  ArmStats reference_baseline_;  // the baseline as last seen with traffic (for 100 % steps)
  std::string last_reason_;
};

} // namespace tandem::policy
