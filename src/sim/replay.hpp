#pragma once
// Plays a trace of requests into the engine on whatever time it runs on (the simulator's event
// loop, or the live clock with real workers) and records what happened to each request and
// how far each pool scaled: the same harness for a simulation and for the live run it is
// compared with.
#include "base/timers.hpp"
#include "gateway/gateway.hpp"
#include "sim/traffic.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <map>
#include <string>
#include <vector>

namespace tandem::sim {

/// What happened to one request of the trace.
struct RequestRecord {
  Duration arrived{0}; // from the trace's start
  std::string endpoint;
  std::string pool; // the pool that answered; empty: none did
  std::string tier; // its capacity kind, or "none"
  std::string worker;
  int status = 0;    // what a frontend would answer
  std::string error; // the error code's name; empty on success
  double retry_after_s = 0;
  double total_ms = 0;
  double queue_ms = 0;
  double upstream_ms = 0;  // on the worker
  bool cold_start = false; // waited for a worker that started after it arrived
  double cost_usd = 0;
  bool finished = false;
};

/// How one pool of one endpoint fared over the run.
struct PoolTrack {
  std::string endpoint;
  std::string pool;
  int peak_desired = 0; // the autoscaler's highest wish (serverless pools; dedicated: replicas)
  int peak_live = 0;    // started workers, starting ones included
  int peak_ready = 0;
  double metered_cost_usd = 0; // what the cost meter accrued
};

struct ReplayReport {
  std::vector<RequestRecord> requests;
  std::vector<PoolTrack> pools;
  [[nodiscard]] int count_status(int status) const;
  [[nodiscard]] int count_at_least(int status) const;
  [[nodiscard]] int count_pool(std::string_view pool) const;
  [[nodiscard]] const PoolTrack* track(std::string_view endpoint, std::string_view pool) const;
  /// A digest of every record and track: equal digests, equal runs.
  [[nodiscard]] std::string digest() const;
  /// One line per pool and the status counts, for logs and test failures.
  [[nodiscard]] std::string summary() const;
};

/// Whether every pool of every endpoint has its warm workers ready (dedicated replicas,
/// serverless min): where a trace starts from.
bool warm(gateway::Gateway& engine);

class Replay {
public:
  /// `bodies`: the v2 request body sent for each endpoint.
  Replay(boost::asio::io_context& io, Timers& timers, gateway::Gateway& engine,
         std::map<std::string, std::string, std::less<>> bodies);
  Replay(const Replay&) = delete;
  Replay& operator=(const Replay&) = delete;
  ~Replay();
  /// Sets a timer per arrival, counted from `start`, and samples the pools every
  /// `sample_every` until every request is answered.
  void schedule(std::vector<Arrival> trace, TimePoint start, Duration sample_every);
  [[nodiscard]] bool done() const { return finished_ == trace_.size(); }
  [[nodiscard]] std::size_t finished() const { return finished_; }
  [[nodiscard]] ReplayReport report() const;

private:
  boost::asio::awaitable<void> serve(std::size_t index);
  void sample();

  boost::asio::io_context& io_;
  Timers& timers_;
  gateway::Gateway& engine_;
  std::map<std::string, std::string, std::less<>> bodies_;
  std::vector<Arrival> trace_;
  TimePoint start_{};
  std::vector<RequestRecord> records_;
  std::size_t finished_ = 0;
  std::vector<PoolTrack> tracks_;
  std::vector<TimerHandle> timers_set_;
  Duration sample_every_{0};
};

} // namespace tandem::sim
