#pragma once
// Every finished inference request is published once, as a typed record, to the observers of
// its endpoint: the rollout's analysis arms today; SLOs, budgets and drift are the next ones.
// Observers run on the io thread, inline with the request's end, and must be quick: the record
// is views into the request's own state, valid during the call only.
#include "base/status.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::gateway {

struct EndpointRuntime;

struct Outcome {
  const EndpointRuntime* runtime = nullptr; // the version that served it: stable or a candidate
  std::string_view endpoint;
  std::string_view model_version;
  std::string_view tier; // dedicated, serverless, or none (refused before any pool)
  std::string_view pool; // the pool that answered (or was tried last); empty when none
  std::string_view worker;
  int status = 0;                 // the HTTP status answered
  std::optional<ErrorCode> error; // unset: answered by a worker with 2xx
  int attempts = 0;
  double queue_ms = 0;
  double cold_start_ms = 0;
  double upstream_ms = 0;
  double total_ms = 0;
  double cost_usd = 0;
  std::string_view body; // the answer
};

class OutcomeBus {
public:
  using Observer = std::function<void(const Outcome&)>;
  using Subscription = std::uint64_t;

  /// Observes `endpoint`'s outcomes (empty: every endpoint's) until unsubscribed. Any number
  /// of observers per endpoint, called in the order they subscribed.
  Subscription subscribe(std::string endpoint, Observer observer);
  /// Safe from inside an observer (a rollout that ends on the outcome it observes).
  void unsubscribe(Subscription subscription);
  /// Whether anyone observes `endpoint`: the publisher builds no record for nobody.
  [[nodiscard]] bool observed(std::string_view endpoint) const;
  void publish(const Outcome& outcome);
  [[nodiscard]] std::size_t observers() const;

private:
  struct Entry {
    Subscription id = 0;
    std::string endpoint;
    Observer observer;
    bool live = true; // false once unsubscribed during a publish; erased after it
  };
  std::vector<Entry> entries_;
  std::vector<Entry> pending_; // subscribed during a publish
  Subscription next_ = 1;
  int publishing_ = 0;
};

} // namespace tandem::gateway
