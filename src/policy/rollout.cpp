#include "policy/rollout.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

namespace tandem::policy {

std::string_view to_string(RolloutStrategy strategy) {
  return strategy == RolloutStrategy::canary ? "canary" : "blue-green";
}

std::optional<RolloutStrategy> parse_rollout_strategy(std::string_view text) {
  if (text == "canary") return RolloutStrategy::canary;
  if (text == "blue-green" || text == "blue_green") return RolloutStrategy::blue_green;
  return std::nullopt;
}

std::string_view to_string(Analysis::Verdict verdict) {
  switch (verdict) {
  case Analysis::Verdict::pass: return "pass";
  case Analysis::Verdict::fail: return "fail";
  case Analysis::Verdict::wait: return "wait";
  }
  return "wait";
}

std::string_view to_string(RolloutPhase phase) {
  switch (phase) {
  case RolloutPhase::warming: return "warming";
  case RolloutPhase::running: return "running";
  case RolloutPhase::awaiting_approval: return "awaiting_approval";
  case RolloutPhase::paused: return "paused";
  case RolloutPhase::promoted: return "promoted";
  case RolloutPhase::rolled_back: return "rolled_back";
  case RolloutPhase::aborted: return "aborted";
  }
  return "running";
}

std::string_view to_string(RolloutDecision::Action action) {
  switch (action) {
  case RolloutDecision::Action::none: return "none";
  case RolloutDecision::Action::start_step: return "start_step";
  case RolloutDecision::Action::await_approval: return "await_approval";
  case RolloutDecision::Action::promote: return "promote";
  case RolloutDecision::Action::rollback: return "rollback";
  case RolloutDecision::Action::abort: return "abort";
  }
  return "none";
}

std::optional<std::string> validate(const RolloutSpec& spec) {
  if (spec.strategy == RolloutStrategy::canary) {
    if (spec.steps_percent.empty() || spec.steps_percent.size() > 20)
      return "steps: expected 1 to 20 percentages ending with 100";
    int previous = 0;
    for (int p : spec.steps_percent) {
      if (p <= previous || p > 100) return "steps: expected increasing percentages in 1..100, ending with 100";
      previous = p;
    }
    if (previous != 100) return "steps: the last step must be 100";
  }
  if (spec.step_duration < std::chrono::milliseconds(100)) return "step_duration: must be at least 100ms";
  if (spec.min_requests < 1) return "min_requests: must be at least 1";
  const auto& t = spec.thresholds;
  if (t.max_error_rate_increase < 0 || t.max_error_rate_increase > 1) return "max_error_rate_increase: expected 0..1";
  if (t.max_p95_ratio < 1) return "max_p95_ratio: expected at least 1";
  if (t.max_divergence < 0 || t.max_divergence > 1) return "max_divergence: expected 0..1";
  if (spec.rollback_window < Duration{0}) return "rollback_window: must not be negative";
  if (spec.warmup_timeout < std::chrono::seconds(1)) return "warmup_timeout: must be at least 1s";
  return std::nullopt;
}

void ArmStats::add(bool error, double latency_ms) {
  ++requests;
  if (error) ++errors;
  else if (latencies_ms.size() < kMaxSamples) latencies_ms.push_back(latency_ms);
}

double ArmStats::p95_ms() const {
  if (latencies_ms.empty()) return 0;
  std::vector<double> sorted = latencies_ms;
  const auto rank = static_cast<std::size_t>(std::ceil(0.95 * static_cast<double>(sorted.size()))) - 1;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(rank), sorted.end());
  return sorted[rank];
}

double output_divergence(const std::map<std::string, std::int64_t>& a, const std::map<std::string, std::int64_t>& b) {
  double total_a = 0;
  double total_b = 0;
  for (const auto& [k, v] : a) total_a += static_cast<double>(v);
  for (const auto& [k, v] : b) total_b += static_cast<double>(v);
  if (total_a == 0 || total_b == 0) return 0;
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  double distance = 0;
  for (const auto& k : keys) {
    const auto ia = a.find(k);
    const auto ib = b.find(k);
    const double pa = ia == a.end() ? 0 : static_cast<double>(ia->second) / total_a;
    const double pb = ib == b.end() ? 0 : static_cast<double>(ib->second) / total_b;
    distance += std::abs(pa - pb);
  }
  return distance / 2;
}

namespace {
std::string percent(double rate) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%", rate * 100);
  return text;
}
std::string number(double value, const char* format) {
  char text[32];
  std::snprintf(text, sizeof text, format, value);
  return text;
}
} // namespace

Analysis analyze(const ArmStats& baseline, const ArmStats& canary, const RolloutSpec& spec) {
  Analysis a;
  a.baseline_requests = baseline.requests;
  a.canary_requests = canary.requests;
  a.baseline_error_rate = baseline.error_rate();
  a.canary_error_rate = canary.error_rate();
  a.baseline_p95_ms = baseline.p95_ms();
  a.canary_p95_ms = canary.p95_ms();
  a.divergence = output_divergence(baseline.outputs, canary.outputs);
  const auto& t = spec.thresholds;
  if (canary.requests < spec.min_requests) {
    a.reason = "waiting for " + std::to_string(spec.min_requests) + " requests on the candidate (have " +
               std::to_string(canary.requests) + ")";
    return a;
  }
  if (a.canary_error_rate - a.baseline_error_rate > t.max_error_rate_increase) {
    a.verdict = Analysis::Verdict::fail;
    a.reason = "error rate " + percent(a.canary_error_rate) + " vs baseline " + percent(a.baseline_error_rate) +
               " (allowed +" + percent(t.max_error_rate_increase) + ")";
    return a;
  }
  // Latency and outputs need a baseline to compare with.
  if (baseline.requests >= spec.min_requests && !baseline.latencies_ms.empty() && !canary.latencies_ms.empty() &&
      a.canary_p95_ms > a.baseline_p95_ms * t.max_p95_ratio && a.canary_p95_ms - a.baseline_p95_ms > t.p95_slack_ms) {
    a.verdict = Analysis::Verdict::fail;
    a.reason = "p95 latency " + number(a.canary_p95_ms, "%.1f") + " ms vs baseline " +
               number(a.baseline_p95_ms, "%.1f") + " ms (ratio " + number(a.canary_p95_ms / a.baseline_p95_ms, "%.2f") +
               ", allowed " + number(t.max_p95_ratio, "%.2f") + ")";
    return a;
  }
  if (baseline.requests >= spec.min_requests && a.divergence > t.max_divergence) {
    a.verdict = Analysis::Verdict::fail;
    a.reason = "output distribution diverges from the baseline by " + number(a.divergence, "%.3f") +
               " (total variation; allowed " + number(t.max_divergence, "%.3f") + ")";
    return a;
  }
  a.verdict = Analysis::Verdict::pass;
  a.reason = "error rate " + percent(a.canary_error_rate) + " vs " + percent(a.baseline_error_rate) + ", p95 " +
             number(a.canary_p95_ms, "%.1f") + " vs " + number(a.baseline_p95_ms, "%.1f") + " ms, divergence " +
             number(a.divergence, "%.3f");
  return a;
}

RolloutMachine::RolloutMachine(RolloutSpec spec, TimePoint now) : spec_(std::move(spec)), step_started_(now) {}

RolloutDecision RolloutMachine::start_step(TimePoint now, int index, std::string reason) {
  step_ = index;
  percent_ = spec_.strategy == RolloutStrategy::canary ? spec_.steps_percent[static_cast<std::size_t>(index)] : 100;
  step_started_ = now;
  phase_ = RolloutPhase::running;
  last_reason_ = std::move(reason);
  return {RolloutDecision::Action::start_step, percent_, last_reason_, std::nullopt};
}

RolloutDecision RolloutMachine::finish(RolloutPhase phase, std::string reason, std::optional<Analysis> analysis) {
  phase_ = phase;
  percent_ = phase == RolloutPhase::promoted ? 100 : 0;
  last_reason_ = std::move(reason);
  const auto action = phase == RolloutPhase::promoted  ? RolloutDecision::Action::promote
                     : phase == RolloutPhase::aborted ? RolloutDecision::Action::abort
                                                      : RolloutDecision::Action::rollback;
  return {action, percent_, last_reason_, std::move(analysis)};
}

RolloutDecision RolloutMachine::tick(TimePoint now, bool candidate_ready, const ArmStats& baseline,
                                     const ArmStats& canary, std::string_view candidate_failure) {
  if (finished() || phase_ == RolloutPhase::paused) return {RolloutDecision::Action::none, percent_, {}, std::nullopt};
  if (phase_ == RolloutPhase::awaiting_approval) {
    // A canary held at the gate still serves its share: keep watching it while people decide.
    if (step_ >= 0 && spec_.strategy == RolloutStrategy::canary) {
      Analysis held = analyze(baseline.requests >= spec_.min_requests ? baseline : reference_baseline_, canary, spec_);
      if (held.verdict == Analysis::Verdict::fail)
        return finish(RolloutPhase::rolled_back, "analysis failed while awaiting approval: " + held.reason, held);
    }
    return {RolloutDecision::Action::none, percent_, {}, std::nullopt};
  }
  // A 100 % step (and a blue/green switch) leaves no baseline traffic: compare with the
  // baseline as last seen with enough of it.
  if (baseline.requests >= spec_.min_requests) reference_baseline_ = baseline;
  if (phase_ == RolloutPhase::warming) {
    if (!candidate_ready) {
      // step_started_ is the rollout's start until the first step.
      const auto waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - step_started_).count();
      if (now - step_started_ >= spec_.warmup_timeout)
        return finish(RolloutPhase::aborted,
                      "candidate not ready after " + std::to_string(waited_ms) + " ms (warmup_timeout): " +
                          (candidate_failure.empty() ? std::string("its workers are still starting")
                                                     : "last failure: " + std::string(candidate_failure)),
                      std::nullopt);
      last_reason_ = candidate_failure.empty()
                         ? "waiting for the candidate's workers"
                         : "waiting for the candidate's workers; last failure: " + std::string(candidate_failure);
      return {RolloutDecision::Action::none, 0, {}, std::nullopt};
    }
    // A step that sends everything to the candidate (blue/green, or a canary whose first step
    // is 100 %) leaves nothing to compare with afterwards: first observe the baseline for a
    // step (or until it has its minimum sample).
    const bool all_at_once = spec_.strategy == RolloutStrategy::blue_green || spec_.steps_percent.front() == 100;
    if (all_at_once && baseline.requests < spec_.min_requests && now - step_started_ < spec_.step_duration)
      return {RolloutDecision::Action::none, 0, {}, std::nullopt};
    if (all_at_once && baseline.requests > 0) reference_baseline_ = baseline;
    const bool gate = spec_.require_approval && !approved_ && all_at_once;
    if (gate) {
      phase_ = RolloutPhase::awaiting_approval;
      last_reason_ = spec_.strategy == RolloutStrategy::blue_green
                         ? "candidate warm; waiting for approval before the switch"
                         : "candidate warm; waiting for approval before the final step";
      return {RolloutDecision::Action::await_approval, 0, last_reason_, std::nullopt};
    }
    if (spec_.strategy == RolloutStrategy::canary) return start_step(now, 0, "candidate ready: first step");
    switched_ = true;
    return start_step(now, 0, "candidate warm: switched all traffic");
  }
  const ArmStats& base = baseline.requests >= spec_.min_requests ? baseline : reference_baseline_;
  Analysis analysis = analyze(base, canary, spec_);
  if (analysis.verdict == Analysis::Verdict::fail)
    return finish(RolloutPhase::rolled_back, "analysis failed: " + analysis.reason, analysis);
  const bool step_over = now - step_started_ >= spec_.step_duration;
  if (spec_.strategy == RolloutStrategy::blue_green) {
    if (now - step_started_ >= spec_.rollback_window)
      return finish(RolloutPhase::promoted, "rollback window closed: old version released", analysis);
    return {RolloutDecision::Action::none, percent_, {}, std::nullopt};
  }
  if (!step_over || analysis.verdict != Analysis::Verdict::pass)
    return {RolloutDecision::Action::none, percent_, {}, std::nullopt};
  const int last = static_cast<int>(spec_.steps_percent.size()) - 1;
  if (step_ >= last) return finish(RolloutPhase::promoted, "final step passed: " + analysis.reason, analysis);
  const int next = step_ + 1;
  if (spec_.require_approval && next == last && !approved_) {
    phase_ = RolloutPhase::awaiting_approval;
    last_reason_ = "step " + std::to_string(step_ + 1) + " passed (" + analysis.reason +
                   "); waiting for approval before the final step";
    return {RolloutDecision::Action::await_approval, percent_, last_reason_, analysis};
  }
  auto decision = start_step(now, next, "step " + std::to_string(step_ + 1) + " passed: " + analysis.reason);
  decision.analysis = analysis;
  return decision;
}

std::optional<std::string> RolloutMachine::approve(TimePoint now) {
  if (phase_ != RolloutPhase::awaiting_approval)
    return "nothing to approve: the rollout is " + std::string(to_string(phase_));
  approved_ = true;
  if (spec_.strategy == RolloutStrategy::blue_green || step_ < 0) {
    phase_ = RolloutPhase::warming;  // the next tick switches (the candidate is still warm)
  } else {
    // The step that waited at the gate passed; the next tick moves on.
    phase_ = RolloutPhase::running;
    step_started_ = now - spec_.step_duration;
  }
  return std::nullopt;
}

std::optional<std::string> RolloutMachine::pause(TimePoint) {
  if (finished() || phase_ == RolloutPhase::paused)
    return "cannot pause: the rollout is " + std::string(to_string(phase_));
  paused_from_ = phase_;
  phase_ = RolloutPhase::paused;
  return std::nullopt;
}

std::optional<std::string> RolloutMachine::resume(TimePoint now) {
  if (phase_ != RolloutPhase::paused) return "cannot resume: the rollout is " + std::string(to_string(phase_));
  phase_ = paused_from_;
  step_started_ = now;  // the step's observation window starts again
  return std::nullopt;
}

std::optional<std::string> RolloutMachine::abort(TimePoint) {
  if (finished()) return "cannot abort: the rollout is " + std::string(to_string(phase_));
  phase_ = RolloutPhase::aborted;
  percent_ = 0;
  last_reason_ = "aborted by an operator";
  return std::nullopt;
}

std::optional<std::string> RolloutMachine::rollback(TimePoint) {
  if (phase_ == RolloutPhase::promoted)
    return "cannot roll back: the rollout was promoted and the old version released; start a rollout to it";
  if (finished()) return "cannot roll back: the rollout is " + std::string(to_string(phase_));
  phase_ = RolloutPhase::rolled_back;
  percent_ = 0;
  last_reason_ = "rolled back by an operator";
  return std::nullopt;
}

} // namespace tandem::policy
