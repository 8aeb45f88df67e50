#pragma once
// The `sim` provider: workers that exist only in simulated time. A worker becomes ready after a
// cold start drawn from its model, answers each request after a service time drawn from its
// model (longer when it serves several at once), and can be made to crash. Seeded: the same
// seed gives the same draws in the same order.
#include "base/timers.hpp"
#include "pool/provider.hpp"

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

namespace tandem::sim {

/// How one pool's simulated workers behave.
struct WorkerModel {
  Duration cold_start{std::chrono::seconds(2)};    // mean start to ready
  double cold_start_cv = 0.2;                      // its coefficient of variation (log-normal)
  Duration service{std::chrono::milliseconds(50)}; // mean time of one request alone on a worker
  double service_cv = 0.3;
  /// Each further request being served on the same worker makes one this much slower (0.1:
  /// 10 % per neighbour), as a GPU shared by concurrent requests does.
  double slowdown_per_neighbour = 0.0;
  /// The answer every request gets (a v2 response body).
  std::string response_body = R"({"outputs":[]})";
};

/// The simulated workers of every sim pool of a run: for crashes, and for what the run reports.
class Fleet {
public:
  struct Worker;
  /// Crashes the worker with this id now: its requests fail as a dropped connection would and
  /// its pool sees it exit. false: no such running worker.
  bool crash(const std::string& worker_id);
  [[nodiscard]] int started() const { return started_; }
  [[nodiscard]] int crashed() const { return crashed_; }
  [[nodiscard]] int running() const { return static_cast<int>(running_.size()); }

private:
  friend class SimProvider;
  std::map<std::string, std::weak_ptr<Worker>> running_;
  int started_ = 0;
  int crashed_ = 0;
};

class SimProvider final : public pool::Provider {
public:
  /// Everything runs on `io` with `timers` (the simulator's event loop).
  SimProvider(boost::asio::io_context& io, Timers& timers, Fleet& fleet, WorkerModel model,
              std::uint64_t seed);
  [[nodiscard]] std::string_view name() const override { return "sim"; }
  Result<std::unique_ptr<pool::ProviderWorker>> start(const pool::WorkerStart& start,
                                                      pool::WorkerEvents events) override;
  std::shared_ptr<http::Upstream> connect(boost::asio::io_context& io, const pool::WorkerAddress& address,
                                          std::size_t max_idle, std::size_t max_response_bytes) override;

private:
  Duration draw(Duration mean, double cv);
  boost::asio::io_context& io_;
  Timers& timers_;
  Fleet& fleet_;
  WorkerModel model_;
  std::mt19937_64 rng_;
  // Ready workers by the port of their (made-up) address: how connect() finds one.
  std::map<unsigned short, std::weak_ptr<Fleet::Worker>> by_port_;
  unsigned short next_port_ = 1;
};

} // namespace tandem::sim
