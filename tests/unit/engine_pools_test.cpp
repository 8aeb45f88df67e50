// The real engine (the gateway's request path, router, pools and autoscaler) serving one
// endpoint from three pools whose workers come from a provider that is not `local`: each
// "worker" is a small v2 server in this process, started and stopped by the provider.
#include "gateway/gateway.hpp"
#include "http/server.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

namespace tandem::gateway {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

/// One in-process worker: a v2 server on the test's io_context.
struct InProcessWorker {
  pool::WorkerEvents events;
  std::unique_ptr<http::Server> server;
  bool running = true;
};

/// The workers' servers belong to the test, not to the provider: they must outlive the engine's
/// connections to them (the engine goes first, then their sessions end) and go before the
/// io_context does.
struct Fleet {
  std::vector<std::shared_ptr<InProcessWorker>> workers;
};

/// Workers that are HTTP servers on this io_context: each answers an inference after 50 ms.
class InProcessProvider final : public pool::Provider {
public:
  InProcessProvider(asio::io_context& io, MetricsRegistry& metrics, Fleet& fleet, std::string pool,
                    std::vector<std::string>& log)
      : io_(io), metrics_(metrics), fleet_(fleet), pool_(std::move(pool)), log_(log) {}
  [[nodiscard]] std::string_view name() const override { return "in-process"; }

  Result<std::unique_ptr<pool::ProviderWorker>> start(const pool::WorkerStart& /*start*/,
                                                      pool::WorkerEvents events) override {
    auto worker = std::make_shared<InProcessWorker>();
    worker->events = std::move(events);
    // The handler refers to the test's objects only: it may run after the provider is gone.
    worker->server = std::make_unique<http::Server>(
        io_, HttpLimits{},
        [&io = io_, &log = log_, pool = pool_](http::Request& request) -> asio::awaitable<http::Reply> {
          if (request.method() == http::bhttp::verb::post) {
            asio::steady_timer work(io, std::chrono::milliseconds(50));
            co_await work.async_wait(asio::as_tuple(asio::use_awaitable));
            log.push_back(pool + ":" + std::string(request["host"]));
            co_return http::json_response(
                200, R"({"model_name":"digits","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[7]}]})");
          }
          co_return http::json_response(200, R"({"ready":true})");
        },
        metrics_);
    auto bound = worker->server->listen("127.0.0.1", 0);
    if (!bound) return bound.error();
    worker->server->start();
    fleet_.workers.push_back(worker);
    // Events never fire inside start(): the pool learns of readiness on the next turn.
    asio::post(io_, [worker, endpoint = *bound, host = pool_ + ".workers.internal"] {
      if (worker->events.ready) worker->events.ready({host, endpoint}, 50);
    });
    return std::unique_ptr<pool::ProviderWorker>(std::make_unique<Handle>(io_, worker));
  }

private:
  struct Handle final : pool::ProviderWorker {
    Handle(asio::io_context& io, std::shared_ptr<InProcessWorker> w) : io(io), worker(std::move(w)) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() override { worker->events = {}; }
    void stop() override { kill(); }
    void kill() override {
      if (!worker->running) return;
      worker->running = false;
      worker->server->stop();
      asio::post(io, [w = worker] {
        auto exited = w->events.exited;
        if (exited) exited({pool::WorkerExit::Kind::exited, "stopped"});
      });
    }
    [[nodiscard]] bool running() const override { return worker->running; }
    [[nodiscard]] std::string instance() const override { return "in-process"; }
    asio::io_context& io;
    std::shared_ptr<InProcessWorker> worker;
  };
  asio::io_context& io_;
  MetricsRegistry& metrics_;
  Fleet& fleet_;
  std::string pool_;
  std::vector<std::string>& log_;
};

std::string digits_row() {
  std::string data;
  for (int i = 0; i < 64; ++i) data += (i ? "," : "") + std::to_string(i % 17);
  return R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,64],"data":[)" + data + "]}]}";
}

TEST(EnginePools, OneEndpointIsServedFromThreePoolsOfAProviderThatIsNotLocal) {
  auto parsed = parse_config(R"(
endpoints:
  digits:
    model: ../models/digits
    slo: {timeout_ms: 5000}
    routing: dedicated-first
    dedicated: {replicas: 1, max_concurrency_per_worker: 1, price_per_hour: 2.69, queue_max: 0}
    serverless: {min: 0, max: 2, max_concurrency_per_worker: 1, price_per_second: 0.001097}
)",
                             fs::path(TANDEM_SOURCE_DIR) / "examples");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  Config config = *parsed;
  // A third pool, dedicated capacity rented elsewhere (the YAML has no list of pools yet).
  PoolConfig rented;
  rented.name = "rented";
  rented.provider = "in-process";
  rented.dedicated = DedicatedPoolSpec{};
  rented.dedicated->replicas = 1;
  rented.dedicated->max_concurrency_per_worker = 1;
  rented.dedicated->price_per_hour = 1.99;
  rented.dedicated->queue_max = 0; // as the other dedicated pool: no waiting, spill over instead
  config.endpoints[0].more_pools.push_back(rented);
  ASSERT_EQ(config.endpoints[0].pools().size(), 3u);
  auto manifest = load_model_manifest(config.endpoints[0].model_dir);
  ASSERT_TRUE(manifest.ok()) << manifest.error().message;

  asio::io_context io;
  MetricsRegistry metrics;
  SteadyClock clock;
  pool::ChildReaper reaper(io);
  Fleet fleet;
  std::vector<std::string> served;  // pool:Host of every request a worker answered
  std::set<std::string> providers_made;
  GatewayOptions options;
  options.provider_for = [&](const EndpointConfig&, const ModelManifest&, const PoolConfig& pc) {
    providers_made.insert(pc.name);
    return std::make_unique<InProcessProvider>(io, metrics, fleet, pc.name, served);
  };
  auto owned = std::make_unique<Gateway>(io, config, std::vector<ModelManifest>{*manifest}, reaper, metrics, clock,
                                         options);
  Gateway& engine = *owned;
  EXPECT_EQ(providers_made, (std::set<std::string>{"dedicated", "serverless", "rented"}));
  std::multiset<std::string> observed;  // what the outcome bus saw of each request
  engine.outcomes().subscribe("digits", [&](const Outcome& o) { observed.insert(std::string(o.pool)); });
  engine.start();
  for (int i = 0; i < 200 && !engine.all_endpoints_ready(); ++i) io.run_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(engine.all_endpoints_ready());

  // Three requests at once on one-slot workers: both dedicated pools take one each (dedicated
  // first, the earlier pool on a tie), and the third, with no dedicated slot or queue left,
  // scales the serverless pool from zero.
  const std::string body = digits_row();
  std::vector<engine::InferenceResult> results;
  auto one = [&]() -> asio::awaitable<void> {
    engine::InferenceRequest request;
    request.endpoint = "digits";
    request.body = body;
    engine::InferenceResult result = co_await engine.infer(request);
    results.push_back(std::move(result));
  };
  for (int i = 0; i < 3; ++i) asio::co_spawn(io, one(), asio::detached);
  for (int i = 0; i < 1000 && results.size() < 3; ++i) io.run_for(std::chrono::milliseconds(5));
  ASSERT_EQ(results.size(), 3u);

  std::multiset<std::string> pools;
  std::map<std::string, std::string> tier_of;
  for (const auto& r : results) {
    EXPECT_TRUE(r.ok()) << (r.error ? r.error->message : "status " + std::to_string(r.worker_status));
    pools.insert(r.pool);
    tier_of[r.pool] = r.tier;
    EXPECT_EQ(r.model_version, manifest->version);
  }
  EXPECT_EQ(pools, (std::multiset<std::string>{"dedicated", "rented", "serverless"}));
  EXPECT_EQ(observed, pools) << "each outcome names its pool";
  EXPECT_EQ(tier_of["rented"], "dedicated");
  EXPECT_EQ(tier_of["serverless"], "serverless");
  for (const auto& r : results) {
    if (r.pool == "serverless") {
      EXPECT_TRUE(r.cold_start_ms.has_value()) << "it waited for a worker to start";
    }
  }
  // Each upstream request carried its worker's own Host.
  EXPECT_EQ(std::multiset<std::string>(served.begin(), served.end()),
            (std::multiset<std::string>{"dedicated:dedicated.workers.internal", "rented:rented.workers.internal",
                                        "serverless:serverless.workers.internal"}));

  // The engine goes first (its connections to the workers close), then the workers' sessions
  // end, then their servers go, before the io_context.
  engine.shutdown();
  owned.reset();
  for (auto& w : fleet.workers) w->server->stop();
  io.run_for(std::chrono::milliseconds(100));
}

} // namespace
} // namespace tandem::gateway
