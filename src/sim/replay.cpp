#include "sim/replay.hpp"

#include "base/decimal.hpp"
#include "base/sha256.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>

namespace tandem::sim {

namespace asio = boost::asio;

int ReplayReport::count_status(int status) const {
  return static_cast<int>(std::count_if(requests.begin(), requests.end(),
                                        [&](const RequestRecord& r) { return r.status == status; }));
}

int ReplayReport::count_at_least(int status) const {
  return static_cast<int>(std::count_if(requests.begin(), requests.end(),
                                        [&](const RequestRecord& r) { return r.status >= status; }));
}

int ReplayReport::count_pool(std::string_view pool) const {
  return static_cast<int>(std::count_if(requests.begin(), requests.end(),
                                        [&](const RequestRecord& r) { return r.pool == pool; }));
}

const PoolTrack* ReplayReport::track(std::string_view endpoint, std::string_view pool) const {
  for (const PoolTrack& t : pools)
    if (t.endpoint == endpoint && t.pool == pool) return &t;
  return nullptr;
}

std::string ReplayReport::digest() const {
  std::string text;
  text.reserve(requests.size() * 64);
  for (const RequestRecord& r : requests) {
    text += std::to_string(r.arrived.count()) + ' ' + r.pool + ' ' + r.worker + ' ' +
            std::to_string(r.status) + ' ' + r.error + ' ' + fixed_decimal(r.total_ms, 3) + ' ' +
            fixed_decimal(r.cost_usd * 1e6, 3) + '\n';
  }
  for (const PoolTrack& t : pools)
    text += t.endpoint + '/' + t.pool + ' ' + std::to_string(t.peak_desired) + ' ' +
            std::to_string(t.peak_live) + ' ' + fixed_decimal(t.metered_cost_usd * 1e6, 3) + '\n';
  return sha256_hex(text);
}

std::string ReplayReport::summary() const {
  std::map<int, int> statuses;
  for (const RequestRecord& r : requests) ++statuses[r.status];
  std::string out = std::to_string(requests.size()) + " requests:";
  for (auto [status, n] : statuses) out += " " + std::to_string(n) + "x" + std::to_string(status);
  for (const PoolTrack& t : pools)
    out += "; " + t.endpoint + "/" + t.pool + ": " + std::to_string(count_pool(t.pool)) +
           " served, peak desired " + std::to_string(t.peak_desired) + ", peak live " +
           std::to_string(t.peak_live) + ", cost $" + fixed_decimal(t.metered_cost_usd, 4);
  return out;
}

bool warm(gateway::Gateway& engine) {
  for (gateway::EndpointSlot* slot : engine.slots())
    for (const gateway::PoolRuntime& p : slot->stable->pools)
      if (p.pool->snapshot().ready_workers < p.min_ready) return false;
  return true;
}

Replay::Replay(asio::io_context& io, Timers& timers, gateway::Gateway& engine,
               std::map<std::string, std::string, std::less<>> bodies) :
    io_(io),
    timers_(timers), engine_(engine), bodies_(std::move(bodies)) {}

Replay::~Replay() {
  for (TimerHandle& t : timers_set_) t.cancel();
}

void Replay::schedule(std::vector<Arrival> trace, TimePoint start, Duration sample_every) {
  trace_ = std::move(trace);
  start_ = start;
  records_.assign(trace_.size(), {});
  finished_ = 0;
  sample_every_ = sample_every;
  timers_set_.reserve(trace_.size() + 1);
  for (std::size_t i = 0; i < trace_.size(); ++i)
    timers_set_.push_back(
        timers_.call_at(start + trace_[i].at, [this, i] { asio::co_spawn(io_, serve(i), asio::detached); }));
  sample();
}

asio::awaitable<void> Replay::serve(std::size_t index) {
  const Arrival& arrival = trace_[index];
  auto body = bodies_.find(arrival.endpoint);
  engine::InferenceRequest request;
  request.endpoint = arrival.endpoint;
  request.priority = arrival.priority;
  request.body = body == bodies_.end() ? std::string_view() : std::string_view(body->second);
  engine::InferenceResult result = co_await engine_.infer(request);
  if (result.after_answer) result.after_answer(request.body);
  RequestRecord& r = records_[index];
  r.arrived = arrival.at;
  r.endpoint = arrival.endpoint;
  r.pool = result.worker.empty() ? std::string() : result.pool;
  r.tier = result.tier;
  r.worker = result.worker;
  r.status = result.http_status();
  r.error = result.error ? std::string(error_label(result.error->code)) : std::string();
  r.retry_after_s = result.retry_after_s;
  r.total_ms = result.total_ms;
  r.queue_ms = result.queue_ms;
  r.upstream_ms = result.upstream_ms;
  r.cold_start = result.cold_start_ms.has_value();
  r.cost_usd = result.cost_usd;
  r.finished = true;
  ++finished_;
}

void Replay::sample() {
  for (gateway::EndpointSlot* slot : engine_.slots()) {
    for (gateway::EndpointRuntime* runtime : {slot->stable, slot->candidate}) {
      if (runtime == nullptr) continue;
      for (const gateway::PoolRuntime& p : runtime->pools) {
        auto it = std::find_if(tracks_.begin(), tracks_.end(), [&](const PoolTrack& t) {
          return t.endpoint == slot->name && t.pool == p.name;
        });
        if (it == tracks_.end()) it = tracks_.insert(tracks_.end(), PoolTrack{slot->name, p.name});
        const pool::PoolSnapshot snap = p.pool->snapshot();
        const int desired = p.desired_workers ? static_cast<int>(p.desired_workers->value()) : p.min_ready;
        it->peak_desired = std::max(it->peak_desired, desired);
        it->peak_live = std::max(it->peak_live, snap.live_workers);
        it->peak_ready = std::max(it->peak_ready, snap.ready_workers);
        it->metered_cost_usd = p.cost_total->value();
      }
    }
  }
  if (!done() || finished_ == 0)
    timers_set_.push_back(timers_.call_after(sample_every_, [this] { sample(); }));
}

ReplayReport Replay::report() const {
  ReplayReport out;
  out.requests = records_;
  out.pools = tracks_;
  return out;
}

} // namespace tandem::sim
