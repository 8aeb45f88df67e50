// The pool over a provider that is not `local`: workers that exist only as handles this test
// drives, so that what the pool does with the seam's three events is checked on its own.
#include "base/asio_timers.hpp"
#include "pool/worker_pool.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tandem::pool {
namespace {

namespace asio = boost::asio;

/// A provider whose workers are scripted: the test says when each is ready or gone.
class ScriptedProvider final : public Provider {
public:
  struct Worker {
    std::string id;
    WorkerEvents events;
    bool running = true;
    bool detached = false;
    int stops = 0;
    int kills = 0;
  };
  class Handle final : public ProviderWorker {
  public:
    explicit Handle(std::shared_ptr<Worker> w) : worker_(std::move(w)) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() override { worker_->detached = true; }
    void stop() override { ++worker_->stops; }
    void kill() override { ++worker_->kills; }
    [[nodiscard]] bool running() const override { return worker_->running; }
    [[nodiscard]] std::string instance() const override { return "job-" + worker_->id; }

  private:
    std::shared_ptr<Worker> worker_;
  };

  [[nodiscard]] std::string_view name() const override { return "scripted"; }
  Result<std::unique_ptr<ProviderWorker>> start(const WorkerStart& start, WorkerEvents events) override {
    if (refuse_next) {
      refuse_next = false;
      return Error{ErrorCode::unavailable, "worker " + start.worker_id + " cannot start: quota exhausted"};
    }
    auto w = std::make_shared<Worker>();
    w->id = start.worker_id;
    w->events = std::move(events);
    started.push_back(w);
    return std::unique_ptr<ProviderWorker>(std::make_unique<Handle>(w));
  }

  /// The latest start of `id`.
  std::shared_ptr<Worker> latest(const std::string& id) const {
    for (auto it = started.rbegin(); it != started.rend(); ++it)
      if ((*it)->id == id) return *it;
    return nullptr;
  }
  static void ready(Worker& w, std::string host, unsigned short port) {
    w.events.ready({std::move(host), {asio::ip::make_address("10.0.0.7"), port}}, 12.5);
  }
  static void exit(Worker& w, std::string how) {
    w.running = false;
    auto exited = w.events.exited; // the pool may detach from inside the call
    exited({WorkerExit::Kind::exited, std::move(how)});
  }

  std::vector<std::shared_ptr<Worker>> started;
  bool refuse_next = false;
};

struct ProviderPoolTest : ::testing::Test {
  asio::io_context io;
  SteadyClock clock;
  AsioTimers timers{io, clock};
  MetricsRegistry metrics;
  ScriptedProvider* provider = nullptr;

  std::unique_ptr<WorkerPool> make_pool(int replicas, bool scalable = false, int max_workers = 0) {
    auto owned = std::make_unique<ScriptedProvider>();
    provider = owned.get();
    PoolOptions options;
    options.endpoint = "digits";
    options.tier = "dedicated";
    options.worker_infix = "ded";
    options.replicas = replicas;
    options.max_workers = max_workers > 0 ? max_workers : replicas;
    options.scalable = scalable;
    options.max_concurrency_per_worker = 2;
    options.model_version = "v3";
    return std::make_unique<WorkerPool>(io, timers, std::move(owned), options, metrics);
  }
  /// Runs what the pool has posted (a restart with no delay is a timer of 0 ms).
  void settle() {
    for (int i = 0; i < 5; ++i) {
      io.restart();
      io.run_for(std::chrono::milliseconds(2));
    }
  }
};

TEST_F(ProviderPoolTest, WorkersReadyThroughTheProviderAreLeasedAtTheirOwnAddress) {
  auto pool = make_pool(3);
  pool->start();
  ASSERT_EQ(provider->started.size(), 3u);
  EXPECT_EQ(pool->snapshot().starting_workers, 3);
  EXPECT_EQ(pool->billable_workers(), 3) << "a started worker costs money before it is ready";
  ScriptedProvider::ready(*provider->started[0], "gpu-a.cluster.internal", 9001);
  ScriptedProvider::ready(*provider->started[1], "gpu-b.cluster.internal", 9002);
  const PoolSnapshot s = pool->snapshot();
  EXPECT_EQ(s.ready_workers, 2);
  EXPECT_EQ(s.starting_workers, 1);
  EXPECT_EQ(s.free_slots, 4);
  EXPECT_DOUBLE_EQ(pool->service_prior_ms(), 12.5) << "what the worker said of itself";
  std::map<std::string, std::string> host_of;
  std::vector<Lease> leases;
  for (int i = 0; i < 4; ++i) {
    auto lease = pool->try_acquire(std::nullopt);
    ASSERT_TRUE(lease) << i;
    host_of[lease->worker_id()] = lease->host();
    leases.push_back(std::move(*lease));
  }
  EXPECT_FALSE(pool->try_acquire(std::nullopt)) << "two workers of two slots each";
  EXPECT_EQ(host_of.at("digits-ded-0"), "gpu-a.cluster.internal");
  EXPECT_EQ(host_of.at("digits-ded-1"), "gpu-b.cluster.internal");
  const auto workers = pool->describe();
  EXPECT_EQ(workers[0].provider, "scripted");
  EXPECT_EQ(workers[0].instance, "job-digits-ded-0");
  EXPECT_EQ(workers[0].address, "http://gpu-a.cluster.internal:9001");
  EXPECT_EQ(workers[0].model_version, "v3");
}

TEST_F(ProviderPoolTest, AWorkerThatEndsBeforeItIsReadyIsAFailedStartWithItsLastErrorAndIsStartedAgain) {
  auto pool = make_pool(1);
  pool->start();
  auto first = provider->latest("digits-ded-0");
  first->events.error_line("CUDA error: out of memory");
  ScriptedProvider::exit(*first, "preempted");
  EXPECT_TRUE(first->detached) << "the pool lets go of a worker once it is gone";
  EXPECT_NE(pool->last_start_failure().find("worker digits-ded-0 exited (preempted)"), std::string::npos)
      << pool->last_start_failure();
  EXPECT_NE(pool->last_start_failure().find("before it was ready: CUDA error: out of memory"), std::string::npos)
      << pool->last_start_failure();
  EXPECT_TRUE(pool->start_failing(std::chrono::steady_clock::now()));
  EXPECT_EQ(pool->billable_workers(), 0);
  settle();
  ASSERT_EQ(provider->started.size(), 2u) << "a first crash restarts at once";
  ScriptedProvider::ready(*provider->started[1], "gpu-a", 9001);
  EXPECT_FALSE(pool->start_failing(std::chrono::steady_clock::now())) << "a later start succeeded";
  EXPECT_EQ(pool->describe()[0].restarts, 1);
}

TEST_F(ProviderPoolTest, AStartTheProviderRefusesIsRecordedAndRetried) {
  auto pool = make_pool(1);
  provider->refuse_next = true;
  pool->start();
  EXPECT_TRUE(provider->started.empty());
  EXPECT_EQ(pool->last_start_failure(), "worker digits-ded-0 cannot start: quota exhausted");
  settle();
  EXPECT_EQ(provider->started.size(), 1u) << "tried again after the backoff";
}

TEST_F(ProviderPoolTest, ScaleDownAndShutdownStopThroughTheProviderAndStoppedMeansItsExitArrived) {
  auto pool = make_pool(0, true, 3);
  pool->start();
  pool->set_desired(2);
  ASSERT_EQ(provider->started.size(), 2u);
  for (auto& w : provider->started) ScriptedProvider::ready(*w, "gpu", 9000);
  pool->set_desired(1);
  EXPECT_EQ(provider->started[1]->stops, 1) << "the highest idle worker goes first";
  EXPECT_EQ(provider->started[0]->stops, 0);
  ScriptedProvider::exit(*provider->started[1], "exit code 0");
  settle();
  EXPECT_EQ(provider->started.size(), 2u) << "a worker scaled down is not restarted";

  pool->shutdown();
  EXPECT_EQ(provider->started[0]->stops, 1);
  EXPECT_EQ(pool->describe()[0].state, WorkerState::draining);
  pool->kill_remaining();
  EXPECT_EQ(provider->started[0]->kills, 1);
  ScriptedProvider::exit(*provider->started[0], "killed by signal 9");
  EXPECT_EQ(pool->describe()[0].state, WorkerState::stopped);
  settle();
  EXPECT_EQ(provider->started.size(), 2u) << "nothing restarts after shutdown";
}

TEST_F(ProviderPoolTest, DestroyingThePoolDetachesItsWorkers) {
  auto pool = make_pool(2);
  pool->start();
  auto workers = provider->started;
  pool.reset();
  for (const auto& w : workers) EXPECT_TRUE(w->detached);
}

} // namespace
} // namespace tandem::pool
