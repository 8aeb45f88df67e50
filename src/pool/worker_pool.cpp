#include "pool/worker_pool.hpp"

#include "base/clock.hpp"

#include "policy/router.hpp"
#include "pool/stderr_relay.hpp"
#include "pool/worker_process.hpp"

#include <spdlog/spdlog.h>

#include <signal.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <string_view>

namespace tandem::pool {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

struct ReadyLine {
  http::tcp::endpoint endpoint;
  double service_ms = 0;
};

// "READY HOST:PORT[ service_ms=MS]"; nullopt when it is anything else.
std::optional<ReadyLine> parse_ready_line(std::string_view line) {
  constexpr std::string_view prefix = "READY ";
  if (line.substr(0, prefix.size()) != prefix) return std::nullopt;
  line.remove_prefix(prefix.size());
  const auto space = line.find(' ');
  const std::string_view address_port = line.substr(0, space);
  std::string_view rest = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  const auto colon = address_port.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  boost::system::error_code ec;
  auto address = asio::ip::make_address(std::string(address_port.substr(0, colon)), ec);
  int port = 0;
  const auto port_text = address_port.substr(colon + 1);
  auto [end, perr] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec || perr != std::errc{} || end != port_text.data() + port_text.size() || port <= 0 || port > 65535)
    return std::nullopt;
  ReadyLine ready{{address, static_cast<unsigned short>(port)}};
  constexpr std::string_view service_key = "service_ms=";
  if (rest.substr(0, service_key.size()) == service_key) {
    // An unreadable or absurd figure is ignored, not fatal: it is only a prior.
    const std::string text(rest.substr(service_key.size()));
    char* parsed_end = nullptr;
    const double ms = std::strtod(text.c_str(), &parsed_end);
    if (parsed_end != text.c_str() && ms > 0 && ms < 3'600'000) ready.service_ms = ms;
  }
  return ready;
}

/// The time, read on first use only: most calls to pick() and snapshot() need none.
steady_clock::time_point read_once(std::optional<steady_clock::time_point>& now) {
  if (!now) now = steady_clock::now();
  return *now;
}

/// Whether a worker is ejected, reading the clock only for one that has been ejected at some
/// time: otherwise it was a clock read per request, twice.
bool ejected_now(const policy::OutlierState& outlier, std::optional<steady_clock::time_point>& now) {
  return outlier.ejected_until != steady_clock::time_point{} && outlier.ejected(read_once(now));
}

} // namespace

std::string_view to_string(WorkerState state) {
  switch (state) {
  case WorkerState::starting: return "starting";
  case WorkerState::ready: return "ready";
  case WorkerState::draining: return "draining";
  case WorkerState::stopped: return "stopped";
  }
  return "stopped";
}

// ---- Lease ----------------------------------------------------------------------------------

Lease::Lease(WorkerPool* pool, std::size_t index, std::uint64_t generation,
             std::shared_ptr<http::UpstreamPool> upstream, std::string worker_id)
    : pool_(pool), index_(index), generation_(generation), upstream_(std::move(upstream)),
      worker_id_(std::move(worker_id)) {}

Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), index_(other.index_), generation_(other.generation_),
      upstream_(std::move(other.upstream_)), worker_id_(std::move(other.worker_id_)),
      cold_start_(other.cold_start_), sharing_(other.sharing_) {}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    index_ = other.index_;
    generation_ = other.generation_;
    upstream_ = std::move(other.upstream_);
    worker_id_ = std::move(other.worker_id_);
    cold_start_ = other.cold_start_;
    sharing_ = other.sharing_;
  }
  return *this;
}

Lease::~Lease() { release(); }

void Lease::mark_unreachable() const {
  if (pool_ != nullptr) pool_->mark_unreachable(index_, generation_);
}

void Lease::report(bool success) const {
  if (pool_ != nullptr) pool_->report(index_, generation_, success);
}

void Lease::release() {
  if (pool_ != nullptr) pool_->release(index_, generation_);
  pool_ = nullptr;
}

// ---- WorkerPool -----------------------------------------------------------------------------

WorkerPool::WorkerPool(asio::io_context& io, ChildReaper& reaper, PoolOptions options,
                       MetricsRegistry& metrics)
    : io_(io), reaper_(reaper), options_(std::move(options)),
      rng_(std::hash<std::string>{}(options_.endpoint + options_.tier)),
      restarts_(metrics.counter("tandem_worker_restarts_total",
                                "Workers restarted after they exited or failed to start.",
                                {"endpoint", "tier"})
                    .with({options_.endpoint, options_.tier})),
      queue_rejections_(metrics.counter("tandem_pool_rejections_total",
                                        "Requests refused by a pool: queue full, deadline, shutdown.",
                                        {"endpoint", "tier", "reason"})),
      cold_starts_(metrics.counter("tandem_cold_starts_total",
                                   "Worker starts that reached ready (scale-ups, restarts and the first start).",
                                   {"endpoint", "tier"})
                       .with({options_.endpoint, options_.tier})),
      cold_start_seconds_(metrics.histogram("tandem_cold_start_duration_seconds",
                                            "Worker start to ready: process start plus model load.",
                                            {"endpoint", "tier"}, latency_buckets_seconds())
                              .with({options_.endpoint, options_.tier})),
      scale_events_up_(metrics.counter("tandem_scale_events_total", "Workers started or stopped by the autoscaler.",
                                       {"endpoint", "tier", "direction"})
                           .with({options_.endpoint, options_.tier, "up"})),
      scale_events_down_(metrics.counter("tandem_scale_events_total", "Workers started or stopped by the autoscaler.",
                                         {"endpoint", "tier", "direction"})
                             .with({options_.endpoint, options_.tier, "down"})),
      ejections_(metrics.counter("tandem_ejections_total",
                                 "Workers ejected from load balancing by outlier detection (consecutive failures).",
                                 {"endpoint", "tier"})
                     .with({options_.endpoint, options_.tier})) {
  if (!options_.scalable) options_.max_workers = options_.replicas;
  slots_.resize(static_cast<std::size_t>(std::max(options_.max_workers, 0)));
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    auto& info = slots_[i].info;
    info.id = (options_.worker_id_prefix.empty() ? options_.endpoint : options_.worker_id_prefix) + "-" +
              options_.tier.substr(0, 3) + "-" + std::to_string(i);
    info.endpoint = options_.endpoint;
    info.tier = options_.tier;
    info.model_version = options_.manifest.version;
  }
  demand_changed_at_ = demand_period_start_ = steady_clock::now();
}

void WorkerPool::start() {
  for (std::size_t i = 0; i < slots_.size() && static_cast<int>(i) < options_.replicas; ++i) {
    slots_[i].wanted = true;
    launch(i);
  }
}

std::vector<std::string> WorkerPool::command_for(std::size_t index, unsigned short port) const {
  const auto& spec = options_.worker;
  const auto& m = options_.manifest;
  if (spec.command.empty()) {
    std::vector<std::string> argv = {options_.self_exe, "worker", "--model", m.directory.string(),
                                     "--listen", "127.0.0.1:0", "--ready-fd", std::to_string(kReadyFd),
                                     "--worker-id", slots_[index].info.id, "--max-body-bytes",
                                     std::to_string(options_.max_request_bytes)};
    argv.insert(argv.end(), options_.worker_log_args.begin(), options_.worker_log_args.end());
    argv.insert(argv.end(), spec.args.begin(), spec.args.end());
    return argv;
  }
  auto substitute = [&](std::string text) {
    auto replace_all = [&](const std::string& key, const std::string& value) {
      for (auto pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos + value.size()))
        text.replace(pos, key.size(), value);
    };
    replace_all("{model}", m.directory.string());
    replace_all("{listen}", "127.0.0.1:" + std::to_string(port));
    replace_all("{host}", "127.0.0.1");
    replace_all("{port}", std::to_string(port));
    replace_all("{model_name}", spec.model_name.empty() ? m.name : spec.model_name);
    return text;
  };
  std::vector<std::string> argv;
  for (const auto& part : spec.command) argv.push_back(substitute(part));
  return argv;
}

void WorkerPool::launch(std::size_t index) {
  if (shutting_down_) return;
  auto& slot = slots_[index];
  std::uint64_t generation = ++slot.generation;
  slot.started_at = steady_clock::now();  // also the base of the backoff if the start fails below
  slot.outlier = {};                      // a new process starts with a clean record
  unsigned short port = 0;
  bool reference = options_.worker.command.empty();
  if (!reference) {
    auto picked = pick_free_port();
    if (!picked) {
      spdlog::error("worker {}: {}", slot.info.id, picked.error().message);
      note_start_failure("worker " + slot.info.id + ": " + picked.error().message, slots_.size(), 0);
      on_exit(index, generation, -1);
      return;
    }
    port = *picked;
  }
  auto spawned = spawn_process(command_for(index, port));
  if (!spawned) {
    spdlog::error("worker {}: cannot start: {}", slot.info.id, spawned.error().message);
    note_start_failure("worker " + slot.info.id + " cannot start: " + spawned.error().message, slots_.size(), 0);
    on_exit(index, generation, -1);
    return;
  }
  asio::co_spawn(io_,
                 relay_stderr(
                     io_, spawned->stderr_read_fd, STDERR_FILENO,
                     [this, index, generation](const std::string& line) {
                       if (slots_[index].generation == generation) slots_[index].last_error_line = line;
                     },
                     [this, index, generation](const std::string& line) { on_stderr_closed(index, generation, line); }),
                 asio::detached);
  slot.last_error_line.clear();
  slot.info.state = WorkerState::starting;
  slot.info.pid = spawned->pid;
  slot.info.address.clear();
  slot.info.in_flight = 0;
  slot.started_at = steady_clock::now();
  reaper_.watch(spawned->pid, [this, index, generation](int status) { on_exit(index, generation, status); });
  spdlog::info("worker {} starting, pid {}", slot.info.id, spawned->pid);
  if (reference) {
    asio::co_spawn(io_, await_ready_pipe(index, generation, spawned->ready_read_fd), asio::detached);
  } else {
    ::close(spawned->ready_read_fd);
    http::tcp::endpoint endpoint(asio::ip::address_v4::loopback(), port);
    asio::co_spawn(io_, await_ready_probe(index, generation, endpoint, options_.worker.start_timeout_ms),
                   asio::detached);
  }
}

asio::awaitable<void> WorkerPool::await_ready_pipe(std::size_t index, std::uint64_t generation, int fd) {
  asio::posix::stream_descriptor pipe(io_, fd);
  asio::steady_timer timeout(io_);
  timeout.expires_after(options_.worker.start_timeout_ms);
  bool timed_out = false;
  timeout.async_wait([&pipe, &timed_out](const boost::system::error_code& ec) {
    if (ec) return;
    timed_out = true;
    boost::system::error_code ignored;
    pipe.cancel(ignored);
  });
  std::string line;
  auto [ec, n] = co_await asio::async_read_until(pipe, asio::dynamic_buffer(line, 256), '\n',
                                                 asio::as_tuple(asio::use_awaitable));
  timeout.cancel();
  auto& slot = slots_[index];
  if (slot.generation != generation) co_return;
  if (ec) {
    if (timed_out) {
      spdlog::error("worker {} did not become ready within {} ms; killing it", slot.info.id,
                    options_.worker.start_timeout_ms.count());
      slot.start_timed_out = true;
      if (slot.info.pid > 0) ::kill(slot.info.pid, SIGKILL);
    }
    co_return;  // otherwise the process exited; on_exit restarts it
  }
  // "READY 127.0.0.1:PORT", optionally followed by " service_ms=MS": the worker's own measure
  // of one request (the reference worker times its warm-up run), the router's prior.
  line.resize(n > 0 ? n - 1 : 0);
  auto ready = parse_ready_line(line);
  if (!ready) {
    spdlog::error("worker {} sent an unreadable ready line; killing it", slot.info.id);
    if (slot.info.pid > 0) ::kill(slot.info.pid, SIGKILL);
    co_return;
  }
  if (ready->service_ms > 0) service_prior_ms_ = ready->service_ms;
  const http::tcp::endpoint endpoint = ready->endpoint;
  mark_ready(index, generation, endpoint);
}

asio::awaitable<void> WorkerPool::await_ready_probe(std::size_t index, std::uint64_t generation,
                                                    http::tcp::endpoint endpoint,
                                                    std::chrono::milliseconds timeout) {
  // Any v2 server cannot tell us it is ready, and a worker that refused a connection must
  // prove it is back: poll its health endpoint until it answers, it exits, or time runs out.
  auto deadline = steady_clock::now() + timeout;
  asio::steady_timer pause(io_);
  while (slots_[index].generation == generation && !shutting_down_ &&
         slots_[index].info.state == WorkerState::starting) {
    if (steady_clock::now() >= deadline) {
      spdlog::error("worker {} did not become ready within {} ms; killing it", slots_[index].info.id,
                    options_.worker.start_timeout_ms.count());
      slots_[index].start_timed_out = true;
      if (slots_[index].info.pid > 0) ::kill(slots_[index].info.pid, SIGKILL);
      co_return;
    }
    http::UpstreamPool probe(io_.get_executor(), endpoint, 0, 1 << 16);
    static const std::string probe_head = "GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    auto response = co_await probe.send(probe_head, {}, steady_clock::now() + std::chrono::milliseconds(250));
    if (slots_[index].generation != generation) co_return;
    if (response && response->status == 200) {
      mark_ready(index, generation, endpoint);
      co_return;
    }
    pause.expires_after(std::chrono::milliseconds(25));
    co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void WorkerPool::mark_ready(std::size_t index, std::uint64_t generation, const http::tcp::endpoint& endpoint) {
  auto& slot = slots_[index];
  if (slot.generation != generation || shutting_down_) return;
  slot.info.state = WorkerState::ready;
  slot.endpoint = endpoint;
  slot.info.address = "http://" + endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  slot.upstream = std::make_shared<http::UpstreamPool>(
      io_.get_executor(), endpoint, static_cast<std::size_t>(options_.max_concurrency_per_worker) + 4,
      options_.max_response_bytes);
  slot.ready_at = steady_clock::now();
  last_ready_at_ = slot.ready_at;
  auto startup = std::chrono::duration<double, std::milli>(slot.ready_at - slot.started_at).count();
  cold_starts_.inc();
  cold_start_seconds_.observe(startup / 1000.0);
  cold_start_ms_avg_ = cold_start_measured_ ? 0.7 * cold_start_ms_avg_ + 0.3 * startup : startup;
  cold_start_measured_ = true;
  spdlog::info("worker {} ready at {} after {:.1f} ms", slot.info.id, slot.info.address, startup);
  notify(static_cast<std::size_t>(options_.max_concurrency_per_worker));
}

void WorkerPool::on_exit(std::size_t index, std::uint64_t generation, int wait_status) {
  auto& slot = slots_[index];
  if (slot.generation != generation) return;
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - slot.started_at);
  if (slot.upstream) {
    slot.upstream->close();
    slot.upstream.reset();
  }
  track_demand();
  // An exit before ready is a failed start (a timeout kills the worker, which ends here too).
  if (slot.info.state == WorkerState::starting && !shutting_down_ && slot.wanted)
    note_start_failure(slot.start_timed_out
                           ? "worker " + slot.info.id + " did not become ready within " +
                                 std::to_string(options_.worker.start_timeout_ms.count()) + " ms (worker.start_timeout)"
                           : "worker " + slot.info.id + " exited (" + describe_wait_status(wait_status) + ") " +
                                 std::to_string(uptime.count()) + " ms after it was started, before it was ready",
                       index, generation);
  slot.start_timed_out = false;
  slot.info.state = WorkerState::stopped;
  slot.info.pid = 0;
  slot.info.in_flight = 0;  // leases of this generation no longer count
  if (!slot.wanted && !shutting_down_) {
    spdlog::info("worker {} stopped after scale-down ({})", slot.info.id, describe_wait_status(wait_status));
    return;
  }
  if (shutting_down_) {
    spdlog::info("worker {} stopped ({})", slot.info.id,
                 wait_status < 0 ? std::string("not started") : describe_wait_status(wait_status));
    return;
  }
  auto decision = policy::decide_restart(options_.restart, slot.consecutive_failures, uptime);
  slot.consecutive_failures = decision.consecutive_failures;
  spdlog::warn("worker {} exited ({}) after {} ms; restarting in {} ms", slot.info.id,
               wait_status < 0 ? std::string("not started") : describe_wait_status(wait_status),
               uptime.count(), decision.delay_ms.count());
  restarts_.inc();
  ++slot.info.restarts;
  slot.restart_at = steady_clock::now() + decision.delay_ms;
  auto timer = std::make_shared<asio::steady_timer>(io_, decision.delay_ms);
  timer->async_wait([this, index, generation, timer](const boost::system::error_code& ec) {
    if (ec || slots_[index].generation != generation) return;
    launch(index);
  });
}

void WorkerPool::release(std::size_t index, std::uint64_t generation) {
  auto& slot = slots_[index];
  if (slot.generation != generation || slot.info.in_flight <= 0) return;
  track_demand();
  --slot.info.in_flight;
  notify(1);
}

void WorkerPool::mark_unreachable(std::size_t index, std::uint64_t generation) {
  auto& slot = slots_[index];
  if (slot.generation != generation || slot.info.state != WorkerState::ready || shutting_down_) return;
  spdlog::warn("worker {} is unreachable; out of rotation until it answers its health check", slot.info.id);
  slot.info.state = WorkerState::starting;
  if (slot.upstream) {
    slot.upstream->close();
    slot.upstream.reset();
  }
  asio::co_spawn(io_, await_ready_probe(index, generation, slot.endpoint, options_.worker.start_timeout_ms),
                 asio::detached);
}

void WorkerPool::report(std::size_t index, std::uint64_t generation, bool success) {
  auto& slot = slots_[index];
  if (slot.generation != generation) return;
  // Ejection windows are seconds long: a coarse read (a kernel tick behind at most) will do, and
  // this runs once per request.
  const TimePoint now = coarse_steady_now();
  int ejected_now = 0;
  int running = 0;
  for (const auto& s : slots_) {
    ejected_now += s.outlier.ejected(now) ? 1 : 0;
    running += s.info.state == WorkerState::ready ? 1 : 0;
  }
  if (policy::record_outcome(slot.outlier, options_.outlier, success, now, ejected_now, running)) {
    ejections_.inc();
    spdlog::warn("worker {} ejected for {} ms after {} consecutive failures", slot.info.id,
                 std::chrono::duration_cast<std::chrono::milliseconds>(slot.outlier.ejected_until - now).count(),
                 options_.outlier.consecutive_failures);
    // Requests waiting for a slot are re-checked when it returns (or another frees up).
    auto timer = std::make_shared<asio::steady_timer>(io_, slot.outlier.ejected_until - now);
    timer->async_wait([this, timer](const boost::system::error_code& ec) {
      if (!ec) notify(static_cast<std::size_t>(options_.max_concurrency_per_worker));
    });
  }
}

void WorkerPool::notify(std::size_t count) {
  if (count > 0 && !waiters_.empty()) track_demand();
  while (count-- > 0 && !waiters_.empty()) {
    Waiter* w = waiters_.front();
    waiters_.pop_front();
    w->notified = true;
    w->timer.cancel();
  }
}

void WorkerPool::track_demand() {
  // Twice a request: the coarse clock, never before the last change (take_demand() sets that
  // from a precise reading).
  const auto now = std::max(coarse_steady_now(), demand_changed_at_);
  int in_flight = 0;
  for (const auto& slot : slots_) in_flight += slot.info.in_flight;
  demand_integral_ += std::chrono::duration<double>(now - demand_changed_at_).count() *
                      static_cast<double>(in_flight + static_cast<int>(waiters_.size()));
  demand_changed_at_ = now;
}

PoolDemand WorkerPool::take_demand(steady_clock::time_point now) {
  track_demand();
  PoolDemand demand;
  double period = std::chrono::duration<double>(now - demand_period_start_).count();
  demand.average_concurrency = period > 0 ? demand_integral_ / period : 0.0;
  auto snap = snapshot();
  demand.instant_demand = snap.in_flight + snap.waiting;
  demand.arrivals = arrivals_;
  demand_integral_ = 0;
  arrivals_ = 0;
  demand_period_start_ = now;
  demand_changed_at_ = now;
  return demand;
}

PoolSnapshot WorkerPool::snapshot() const {
  PoolSnapshot s;
  s.max_workers = options_.max_workers;
  s.max_concurrency_per_worker = options_.max_concurrency_per_worker;
  s.waiting = static_cast<int>(waiters_.size());
  s.queue_max = options_.queue_max;
  s.cold_start_ms = cold_start_measured_ ? cold_start_ms_avg_ : 0.0;
  std::optional<steady_clock::time_point> now;
  for (const auto& slot : slots_) {
    s.in_flight += slot.info.in_flight;
    switch (slot.info.state) {
    case WorkerState::ready:
      ++s.live_workers;
      if (ejected_now(slot.outlier, now)) {
        ++s.ejected_workers;
        break;
      }
      ++s.ready_workers;
      if (slot.upstream) s.free_slots += std::max(0, options_.max_concurrency_per_worker - slot.info.in_flight);
      break;
    case WorkerState::starting:
      ++s.starting_workers;
      ++s.live_workers;
      break;
    case WorkerState::draining: ++s.live_workers; break;
    case WorkerState::stopped:
      // A worker about to be restarted is on its way; one in a long crash-loop back-off is not,
      // so requests skip the tier instead of waiting for it.
      if (slot.wanted && !shutting_down_ && slot.restart_at - read_once(now) < std::chrono::seconds(1))
        ++s.starting_workers;
      break;
    }
  }
  return s;
}

int WorkerPool::billable_workers() const {
  int n = 0;
  for (const auto& slot : slots_) n += slot.info.pid > 0 ? 1 : 0;
  return n;
}

void WorkerPool::set_desired(int desired) {
  if (!options_.scalable || shutting_down_) return;
  desired = std::clamp(desired, 0, static_cast<int>(slots_.size()));
  int wanted = 0;
  for (const auto& slot : slots_) wanted += slot.wanted ? 1 : 0;
  // Up: take stopped slots first (lowest index, so worker ids stay small and stable).
  for (std::size_t i = 0; i < slots_.size() && wanted < desired; ++i) {
    auto& slot = slots_[i];
    if (slot.wanted || slot.info.state != WorkerState::stopped) continue;
    slot.wanted = true;
    slot.consecutive_failures = 0;
    ++wanted;
    scale_events_up_.inc();
    launch(i);
  }
  // Down: only idle ready workers, highest index first. Busy ones wait for a later tick.
  for (std::size_t i = slots_.size(); i-- > 0 && wanted > desired;) {
    auto& slot = slots_[i];
    if (!slot.wanted || slot.info.state != WorkerState::ready || slot.info.in_flight > 0) continue;
    slot.wanted = false;
    --wanted;
    scale_events_down_.inc();
    slot.info.state = WorkerState::draining;
    if (slot.upstream) {
      slot.upstream->close();
      slot.upstream.reset();
    }
    spdlog::info("worker {} idle: scaling down", slot.info.id);
    if (slot.info.pid > 0) {
      ::kill(slot.info.pid, SIGTERM);
      // A worker that ignores SIGTERM must not stay draining (and billed) forever.
      auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(10));
      timer->async_wait([this, i, pid = slot.info.pid, timer](const boost::system::error_code& ec) {
        if (ec || slots_[i].info.pid != pid || slots_[i].info.state != WorkerState::draining) return;
        spdlog::warn("worker {} did not stop within 10 s of SIGTERM: killing it", slots_[i].info.id);
        ::kill(pid, SIGKILL);
      });
    }
  }
}

std::optional<Lease> WorkerPool::pick(std::optional<std::size_t> avoid_index) {
  // Only as many entries as workers are made: a zeroed array of 64 was a memset per request.
  boost::container::small_vector<policy::WorkerLoad, 16> loads(slots_.size());
  std::optional<steady_clock::time_point> now;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const auto& s = slots_[i];
    loads[i] = {s.info.state == WorkerState::ready && s.upstream != nullptr && !ejected_now(s.outlier, now),
                avoid_index && *avoid_index == i, s.info.in_flight, options_.max_concurrency_per_worker};
  }
  auto picked = policy::pick_worker(loads, rng_());
  if (!picked) return std::nullopt;
  track_demand();
  auto& slot = slots_[*picked];
  ++slot.info.in_flight;
  Lease lease(this, *picked, slot.generation, slot.upstream, slot.info.id);
  lease.set_sharing(slot.info.in_flight);
  return lease;
}

std::optional<Lease> WorkerPool::try_acquire(std::optional<std::size_t> avoid_index) {
  if (shutting_down_ || !waiters_.empty()) return std::nullopt;  // FIFO: do not overtake the queue
  auto lease = pick(avoid_index);
  if (lease) ++arrivals_;
  return lease;
}

asio::awaitable<Result<Lease>> WorkerPool::acquire(steady_clock::time_point deadline,
                                                   std::optional<std::size_t> avoid_index) {
  const auto arrived = steady_clock::now();
  ++arrivals_;
  bool was_queued = false;
  bool poked = false;
  for (;;) {
    if (shutting_down_) {
      queue_rejections_.with({options_.endpoint, options_.tier, "shutdown"}).inc();
      co_return make_error(ErrorCode::unavailable, "the server is shutting down");
    }
    if (slots_.empty()) {
      queue_rejections_.with({options_.endpoint, options_.tier, "no_workers"}).inc();
      co_return make_error(ErrorCode::no_capacity, "endpoint " + options_.endpoint + " has no " +
                                                       options_.tier + " workers configured");
    }
    // FIFO: a new arrival does not overtake requests already waiting.
    if (waiters_.empty() || was_queued) {
      if (auto lease = pick(avoid_index)) {
        const auto& slot = slots_[lease->worker_index()];
        if (was_queued && slot.ready_at >= arrived) lease->set_cold_start(steady_clock::now() - arrived);
        co_return std::move(*lease);
      }
    }
    // The activator: tell the autoscaler now instead of at its next tick (scale from zero).
    if (options_.scalable && demand_hook_ && !poked) {
      poked = true;
      demand_hook_();
      if (auto lease = pick(avoid_index)) co_return std::move(*lease);
    }
    if (!was_queued && waiters_.size() >= static_cast<std::size_t>(options_.queue_max)) {
      queue_rejections_.with({options_.endpoint, options_.tier, "queue_full"}).inc();
      co_return make_error(ErrorCode::queue_full,
                           "all " + options_.tier + " workers of endpoint " + options_.endpoint +
                               " are busy and its queue is full (" + options_.tier + ".queue_max " +
                               std::to_string(options_.queue_max) + ")");
    }
    if (steady_clock::now() >= deadline) break;
    track_demand();
    Waiter waiter{asio::steady_timer(io_), false};
    waiter.timer.expires_at(deadline);
    auto it = was_queued ? waiters_.insert(waiters_.begin(), &waiter) : waiters_.insert(waiters_.end(), &waiter);
    co_await waiter.timer.async_wait(asio::as_tuple(asio::use_awaitable));
    track_demand();
    if (!waiter.notified) {
      waiters_.erase(it);
      break;
    }
    was_queued = true;
  }
  queue_rejections_.with({options_.endpoint, options_.tier, "deadline"}).inc();
  co_return make_error(ErrorCode::no_capacity, "no " + options_.tier + " worker of endpoint " +
                                                   options_.endpoint +
                                                   " had a free slot before the request's deadline");
}

void WorkerPool::shutdown() {
  shutting_down_ = true;
  for (auto& slot : slots_) {
    ++slot.generation;  // cancels pending restarts and readiness waits
    if (slot.upstream) {
      slot.upstream->close();
      slot.upstream.reset();
    }
    if (slot.info.pid > 0) {
      ::kill(slot.info.pid, SIGTERM);
      slot.info.state = WorkerState::draining;
      pid_t pid = slot.info.pid;
      std::string id = slot.info.id;
      // The generation moved on, so re-register to learn when this process is gone.
      reaper_.watch(pid, [&slot, pid, id](int status) {
        if (slot.info.pid == pid) {
          slot.info.pid = 0;
          slot.info.state = WorkerState::stopped;
        }
        spdlog::info("worker {} stopped ({})", id, describe_wait_status(status));
      });
    }
  }
  notify(waiters_.size());
}

void WorkerPool::kill_remaining() {
  for (auto& slot : slots_)
    if (slot.info.pid > 0) ::kill(slot.info.pid, SIGKILL);
}

void WorkerPool::note_start_failure(std::string what, std::size_t index, std::uint64_t generation) {
  start_failure_base_ = std::move(what);
  start_failure_index_ = index;
  start_failure_generation_ = generation;
  const std::string& said = index < slots_.size() ? slots_[index].last_error_line : std::string();
  last_start_failure_ = said.empty() ? start_failure_base_ : start_failure_base_ + ": " + said;
  last_start_failure_at_ = steady_clock::now();
}

void WorkerPool::on_stderr_closed(std::size_t index, std::uint64_t generation, const std::string& last_error) {
  // The exit may have been handled before the worker's last lines were read: add its reason.
  if (last_error.empty() || start_failure_index_ != index || start_failure_generation_ != generation) return;
  last_start_failure_ = start_failure_base_ + ": " + last_error;
}

bool WorkerPool::start_failing(steady_clock::time_point now, std::chrono::milliseconds memory) const {
  return !last_start_failure_.empty() && last_start_failure_at_ > last_ready_at_ &&
         now - last_start_failure_at_ <= memory;
}

bool WorkerPool::any_ready() const {
  const TimePoint now = steady_clock::now();
  for (const auto& s : slots_)
    if (s.info.state == WorkerState::ready && !s.outlier.ejected(now)) return true;
  return false;
}

std::vector<WorkerInfo> WorkerPool::describe() const {
  const TimePoint now = steady_clock::now();
  std::vector<WorkerInfo> out;
  out.reserve(slots_.size());
  for (const auto& s : slots_) {
    out.push_back(s.info);
    out.back().ejected = s.outlier.ejected(now);
  }
  return out;
}

} // namespace tandem::pool
