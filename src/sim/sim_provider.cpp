#include "sim/sim_provider.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cmath>

namespace tandem::sim {

namespace asio = boost::asio;

namespace {

/// A request being served: woken early when its worker crashes.
struct Call {
  asio::steady_timer* wake = nullptr;
  bool dropped = false;
};

} // namespace

struct Fleet::Worker : std::enable_shared_from_this<Fleet::Worker> {
  std::string id;
  pool::WorkerEvents events;
  bool running = true; // started and not yet gone
  TimerHandle ready_timer;
  std::set<Call*> calls;
  int serving = 0;
  Fleet* fleet = nullptr;
  Timers* timers = nullptr;

  /// Gone. Its pool hears of it on a later turn, and then its requests fail as on a dropped
  /// connection: in that order, as a crashed process's exit and its reset connections reach a
  /// live pool, so that the pool restarts it rather than probing it as unreachable.
  void end(pool::WorkerExit exit) {
    if (!running) return;
    running = false;
    ready_timer.cancel();
    fleet->running_.erase(id);
    timers->call_after(Duration(0), [self = shared_from_this(), exit = std::move(exit)] {
      auto exited = self->events.exited; // the pool may detach from inside the call
      if (exited) exited(exit);
      for (Call* call : self->calls) {
        call->dropped = true;
        call->wake->cancel();
      }
    });
  }
};

namespace {

class SimWorkerHandle final : public pool::ProviderWorker {
public:
  explicit SimWorkerHandle(std::shared_ptr<Fleet::Worker> worker) : worker_(std::move(worker)) {}
  SimWorkerHandle(const SimWorkerHandle&) = delete;
  SimWorkerHandle& operator=(const SimWorkerHandle&) = delete;
  ~SimWorkerHandle() override { worker_->events = {}; }
  // Only idle workers are stopped (scale-down, shutdown): nothing to finish first.
  void stop() override { worker_->end({pool::WorkerExit::Kind::exited, "stopped"}); }
  void kill() override { worker_->end({pool::WorkerExit::Kind::exited, "killed"}); }
  [[nodiscard]] bool running() const override { return worker_->running; }
  [[nodiscard]] std::string instance() const override { return "sim:" + worker_->id; }

private:
  std::shared_ptr<Fleet::Worker> worker_;
};

/// Requests to one simulated worker: answered after a service time on the simulated clock.
class SimUpstream final : public http::Upstream {
public:
  using ServiceTime = std::function<Duration(int serving)>;
  SimUpstream(asio::io_context& io, Timers& timers, std::weak_ptr<Fleet::Worker> worker, ServiceTime service,
              const std::string& body) :
      io_(io),
      timers_(timers), worker_(std::move(worker)), service_(std::move(service)), body_(body) {}

  asio::awaitable<Result<http::UpstreamResponse>>
  send(std::string_view /*head*/, std::string_view /*body*/,
       std::chrono::steady_clock::time_point deadline) override {
    const std::shared_ptr<Fleet::Worker> worker = worker_.lock();
    if (!worker || !worker->running)
      co_return make_error(ErrorCode::upstream_error, "the simulated worker is gone (connection refused)");
    ++worker->serving;
    const TimePoint done = timers_.clock().now() + service_(worker->serving);
    asio::steady_timer wake(io_, TimePoint::max());
    Call call{&wake, false};
    worker->calls.insert(&call);
    TimerHandle timer = timers_.call_at(std::min(done, deadline), [&wake] { wake.cancel(); });
    co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
    timer.cancel();
    worker->calls.erase(&call);
    --worker->serving;
    if (call.dropped || !worker->running)
      co_return make_error(ErrorCode::upstream_error, "the simulated worker crashed (connection reset)");
    if (timers_.clock().now() < done)
      co_return make_error(ErrorCode::deadline_exceeded, "the worker did not answer before the deadline");
    http::UpstreamResponse response;
    response.status = 200;
    response.content_type = "application/json";
    response.body = body_;
    response.keep_alive = true;
    co_return response;
  }
  void close() override {}

private:
  asio::io_context& io_;
  Timers& timers_;
  std::weak_ptr<Fleet::Worker> worker_;
  ServiceTime service_; // of one request, given how many the worker serves with it
  const std::string& body_;
};

} // namespace

bool Fleet::crash(const std::string& worker_id) {
  auto it = running_.find(worker_id);
  if (it == running_.end()) return false;
  auto worker = it->second.lock();
  if (!worker) return false;
  ++crashed_;
  worker->end({pool::WorkerExit::Kind::exited, "killed by signal 9 (simulated crash)"});
  return true;
}

SimProvider::SimProvider(asio::io_context& io, Timers& timers, Fleet& fleet, WorkerModel model,
                         std::uint64_t seed) :
    io_(io),
    timers_(timers), fleet_(fleet), model_(std::move(model)), rng_(seed) {}

Duration SimProvider::draw(Duration mean, double cv) {
  if (cv <= 0 || mean.count() <= 0) return mean;
  // Log-normal with this mean and coefficient of variation: positive, skewed to the right.
  const double sigma2 = std::log1p(cv * cv);
  const double mu = std::log(static_cast<double>(mean.count())) - sigma2 / 2;
  std::lognormal_distribution<double> distribution(mu, std::sqrt(sigma2));
  return Duration(static_cast<Duration::rep>(distribution(rng_)));
}

Result<std::unique_ptr<pool::ProviderWorker>> SimProvider::start(const pool::WorkerStart& start,
                                                                 pool::WorkerEvents events) {
  auto worker = std::make_shared<Fleet::Worker>();
  worker->id = start.worker_id;
  worker->events = std::move(events);
  worker->fleet = &fleet_;
  worker->timers = &timers_;
  fleet_.running_[worker->id] = worker;
  ++fleet_.started_;
  const Duration cold = draw(model_.cold_start, model_.cold_start_cv);
  const unsigned short port = next_port_++;
  if (cold > start.start_timeout) {
    // As a worker that never became ready: stopped at its start timeout.
    worker->ready_timer = timers_.call_after(start.start_timeout, [weak = std::weak_ptr(worker)] {
      if (auto w = weak.lock())
        w->end({pool::WorkerExit::Kind::start_timed_out, "killed at its start timeout"});
    });
  } else {
    by_port_[port] = worker;
    const double prior_ms = to_ms(model_.service);
    worker->ready_timer = timers_.call_after(cold, [weak = std::weak_ptr(worker), port, prior_ms] {
      auto w = weak.lock();
      if (!w) return;
      const pool::WorkerAddress address{"sim", {asio::ip::make_address_v4("127.0.0.1"), port}};
      auto ready = w->events.ready;
      if (ready) ready(address, prior_ms);
    });
  }
  return std::unique_ptr<pool::ProviderWorker>(std::make_unique<SimWorkerHandle>(worker));
}

std::shared_ptr<http::Upstream> SimProvider::connect(asio::io_context& io, const pool::WorkerAddress& address,
                                                     std::size_t /*max_idle*/,
                                                     std::size_t /*max_response_bytes*/) {
  std::weak_ptr<Fleet::Worker> worker;
  if (auto it = by_port_.find(address.endpoint.port()); it != by_port_.end()) {
    worker = it->second;
    by_port_.erase(it);
  }
  auto service = [this](int serving) {
    const Duration alone = draw(model_.service, model_.service_cv);
    const double factor = 1.0 + model_.slowdown_per_neighbour * std::max(0, serving - 1);
    return Duration(static_cast<Duration::rep>(static_cast<double>(alone.count()) * factor));
  };
  return std::make_shared<SimUpstream>(io, timers_, std::move(worker), service, model_.response_body);
}

} // namespace tandem::sim
