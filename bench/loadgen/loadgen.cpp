// tandem_loadgen: a small HTTP/1.1 load generator for bench/gateway.
//
// One thread, one io_context, N keep-alive connections sending the same prebuilt request.
//
//   open loop   (--rate R > 0): requests are scheduled at fixed intervals of 1/R seconds and
//               handed to whichever connection is free; latency is measured from the *scheduled*
//               send time, so a stalled server is charged for the requests it delayed (no
//               coordinated omission).
//   closed loop (--rate 0):     every connection sends back to back; latency is measured from
//               the actual send time. This is the saturation throughput.
//
// --idle-connections M opens M extra keep-alive connections first, sends one request on each,
// then leaves them idle for the rest of the run. --watch NAME=PID[,PID...] samples CPU time and
// memory of other processes (the proxy under test, the worker) at the phase boundaries, so that
// the CPU they spent is attributed exactly to the requests of the measured phase.
//
// Output: one JSON line on stdout. Progress and errors go to stderr.
#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using std::chrono::duration;
using std::chrono::nanoseconds;

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

struct Options {
  std::string url;
  std::string method; // default: POST with --body, else GET
  std::string body_file;
  std::vector<std::string> headers;
  int connections = 16;
  double duration_s = 10;
  double warmup_s = 0;
  double rate = 0; // requests per second; 0 = closed loop
  int idle_connections = 0;
  int idle_concurrency = 32;
  double timeout_s = 10;
  double drain_s = 5;
  struct WatchGroup {
    std::string name;
    std::vector<int> pids;
  };
  std::vector<WatchGroup> watch;
  std::string label;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "tandem_loadgen: %s\n"
               "usage: tandem_loadgen --url http://HOST:PORT/PATH [--body FILE] [--method M]\n"
               "         [--header 'k: v']... [--connections N] [--duration S] [--warmup S]\n"
               "         [--rate R (0 = closed loop)] [--idle-connections M] [--idle-concurrency K]\n"
               "         [--timeout S] [--drain S] [--watch NAME=PID[,PID]...]... [--label TEXT]\n",
               why.c_str());
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) usage(std::string("missing value for ") + argv[i]);
    return argv[++i];
  };
  auto number = [&](const std::string& name, const std::string& text) {
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0' || !(v >= 0)) usage(name + ": expected a non-negative number");
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--url")
      o.url = need(i);
    else if (a == "--body")
      o.body_file = need(i);
    else if (a == "--method")
      o.method = need(i);
    else if (a == "--header")
      o.headers.push_back(need(i));
    else if (a == "--connections")
      o.connections = static_cast<int>(number(a, need(i)));
    else if (a == "--duration")
      o.duration_s = number(a, need(i));
    else if (a == "--warmup")
      o.warmup_s = number(a, need(i));
    else if (a == "--rate")
      o.rate = number(a, need(i));
    else if (a == "--idle-connections")
      o.idle_connections = static_cast<int>(number(a, need(i)));
    else if (a == "--idle-concurrency")
      o.idle_concurrency = static_cast<int>(number(a, need(i)));
    else if (a == "--timeout")
      o.timeout_s = number(a, need(i));
    else if (a == "--drain")
      o.drain_s = number(a, need(i));
    else if (a == "--watch") {
      std::string spec = need(i);
      auto eq = spec.find('=');
      if (eq == std::string::npos || eq == 0) usage("--watch: expected NAME=PID[,PID...]");
      Options::WatchGroup group{spec.substr(0, eq), {}};
      std::stringstream pids(spec.substr(eq + 1));
      for (std::string pid; std::getline(pids, pid, ',');)
        if (!pid.empty()) group.pids.push_back(static_cast<int>(number(a, pid)));
      if (group.pids.empty()) usage("--watch " + group.name + ": no pid");
      o.watch.push_back(std::move(group));
    } else if (a == "--label")
      o.label = need(i);
    else if (a == "--help" || a == "-h")
      usage("help");
    else
      usage("unknown argument " + a);
  }
  if (o.url.empty()) usage("--url is required");
  if (o.connections < 1) usage("--connections must be at least 1");
  if (o.idle_concurrency < 1) o.idle_concurrency = 1;
  return o;
}

struct Url {
  std::string host;
  std::string port;
  std::string target;
};

Url parse_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) usage("only http:// URLs are supported");
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  Url u;
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = authority.rfind(':');
  if (colon == std::string::npos) {
    u.host = authority;
    u.port = "80";
  } else {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  }
  return u;
}

// ---- /proc sampling of watched processes -------------------------------------------------

struct ProcSample {
  int pid = 0;
  bool alive = false;
  double cpu_s = 0;   // utime + stime of all threads, from /proc/PID/stat (clock ticks)
  double oncpu_s = 0; // sum over live threads of /proc/PID/task/*/schedstat (ns resolution)
  long vm_rss_kib = 0;
  long vm_hwm_kib = 0;
  long threads = 0;
};

ProcSample sample_proc(int pid) {
  ProcSample s;
  s.pid = pid;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return s;
  auto close = line.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream fields(line.substr(close + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  if (f.size() < 13) return s;
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  s.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / ticks; // fields 14 and 15 of stat(5)
  s.alive = true;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    auto value = [&](const char* key) -> std::optional<long> {
      if (line.rfind(key, 0) != 0) return std::nullopt;
      return std::strtol(line.c_str() + std::strlen(key), nullptr, 10);
    };
    if (auto v = value("VmRSS:")) s.vm_rss_kib = *v;
    if (auto v = value("VmHWM:")) s.vm_hwm_kib = *v;
    if (auto v = value("Threads:")) s.threads = *v;
  }
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream sched(task.path() / "schedstat");
    double ns = 0;
    if (sched >> ns) s.oncpu_s += ns / 1e9;
  }
  return s;
}

json::object to_json(const ProcSample& s) {
  return {{"pid", s.pid},         {"alive", s.alive},           {"cpu_s", s.cpu_s},
          {"oncpu_s", s.oncpu_s}, {"vm_rss_kib", s.vm_rss_kib}, {"vm_hwm_kib", s.vm_hwm_kib},
          {"threads", s.threads}};
}

double self_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---- the generator --------------------------------------------------------------------------

enum Outcome : int { kConnectError = -1, kWriteError = -2, kReadError = -3, kTimeout = -4 };

struct PhaseStats {
  std::vector<std::int64_t> latencies_ns; // successful (2xx) responses only
  std::map<int, std::uint64_t> outcomes;  // HTTP status or a negative Outcome
  std::uint64_t completed = 0;            // HTTP responses of any status
  std::uint64_t unsent = 0;               // open loop: scheduled but never sent before the drain limit
  std::uint64_t reconnects = 0;
  std::uint64_t scheduled = 0;
};

class Generator;

class Connection {
public:
  Connection(Generator& gen) : gen_(gen), socket_(executor()), wake_(executor()) {}

  asio::awaitable<bool> ensure_connected();
  asio::awaitable<int> roundtrip(PhaseStats* stats);
  void close() {
    boost::system::error_code ec;
    socket_.close(ec);
  }
  bool in_flight() const { return in_flight_; }
  TimePoint deadline() const { return deadline_; }
  int native_handle() { return socket_.is_open() ? socket_.native_handle() : -1; }
  asio::steady_timer& wake() { return wake_; }

private:
  asio::any_io_executor executor();
  Generator& gen_;
  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  asio::steady_timer wake_;
  bool in_flight_ = false;
  bool timed_out_ = false;
  TimePoint deadline_{};
  friend class Generator;
};

class Generator {
public:
  Generator(asio::io_context& io, Options options) :
      io_(io), options_(std::move(options)), url_(parse_url(options_.url)), watchdog_(io), done_(io) {
    std::string body;
    if (!options_.body_file.empty()) {
      std::ifstream in(options_.body_file, std::ios::binary);
      if (!in) usage("cannot read --body " + options_.body_file);
      std::ostringstream ss;
      ss << in.rdbuf();
      body = ss.str();
    }
    std::string method =
        options_.method.empty() ? (options_.body_file.empty() ? "GET" : "POST") : options_.method;
    head_ = method + " " + url_.target + " HTTP/1.1\r\nHost: " + url_.host + ":" + url_.port + "\r\n";
    bool has_content_type = false;
    for (const auto& h : options_.headers) {
      head_ += h + "\r\n";
      std::string lower = h.substr(0, h.find(':'));
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      has_content_type |= lower == "content-type";
    }
    if (!body.empty() && !has_content_type) head_ += "Content-Type: application/json\r\n";
    if (!body.empty() || method == "POST" || method == "PUT")
      head_ += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    head_ += "\r\n";
    body_ = std::move(body);
  }

  asio::awaitable<void> main() {
    tcp::resolver resolver(io_);
    auto [rec, results] = co_await resolver.async_resolve(url_.host, url_.port, kAwait);
    if (rec || results.empty()) {
      std::fprintf(stderr, "tandem_loadgen: cannot resolve %s:%s: %s\n", url_.host.c_str(), url_.port.c_str(),
                   rec.message().c_str());
      failed_ = true;
      co_return;
    }
    endpoint_ = results.begin()->endpoint();
    asio::co_spawn(io_, watchdog(), asio::detached);

    samples_["start"] = sample_all();
    if (options_.idle_connections > 0) co_await open_idle();
    samples_["after_idle"] = sample_all();

    for (int i = 0; i < options_.connections; ++i) active_.push_back(std::make_unique<Connection>(*this));
    for (auto& c : active_) {
      if (!co_await c->ensure_connected()) {
        std::fprintf(stderr, "tandem_loadgen: cannot connect to %s\n", options_.url.c_str());
        failed_ = true;
        stop_watchdog();
        co_return;
      }
    }
    if (options_.warmup_s > 0) {
      PhaseStats warm;
      co_await run_phase(options_.warmup_s, warm);
      warmup_ = std::move(warm);
    }
    samples_["measure_start"] = sample_all();
    self_cpu_start_ = self_cpu_s();
    const TimePoint t0 = Clock::now();
    co_await run_phase(options_.duration_s, measured_);
    measured_elapsed_s_ = duration<double>(Clock::now() - t0).count();
    self_cpu_end_ = self_cpu_s();
    samples_["measure_end"] = sample_all();

    for (auto& c : idle_)
      if (c->native_handle() >= 0) {
        char byte;
        ssize_t n = ::recv(c->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ++idle_still_open_;
      }
    for (auto& c : active_) c->close();
    for (auto& c : idle_) c->close();
    stop_watchdog();
  }

  json::object report() const {
    json::object out;
    if (!options_.label.empty()) out["label"] = options_.label;
    out["ok"] = !failed_;
    out["mode"] = options_.rate > 0 ? "open" : "closed";
    out["url"] = options_.url;
    out["request_bytes"] = head_.size() + body_.size();
    out["connections"] = options_.connections;
    out["target_rate"] = options_.rate;
    out["duration_s"] = options_.duration_s;
    out["warmup_s"] = options_.warmup_s;
    out["elapsed_s"] = measured_elapsed_s_;
    out["scheduled"] = measured_.scheduled;
    out["requests"] = measured_.completed;
    out["ok_requests"] = measured_.latencies_ns.size();
    out["unsent"] = measured_.unsent;
    out["reconnects"] = measured_.reconnects;
    out["achieved_rate"] =
        measured_elapsed_s_ > 0 ? static_cast<double>(measured_.completed) / measured_elapsed_s_ : 0.0;
    json::object outcomes;
    std::uint64_t errors = 0;
    for (auto [code, n] : measured_.outcomes) {
      std::string name = code >= 0               ? std::to_string(code)
                         : code == kConnectError ? "connect_error"
                         : code == kWriteError   ? "write_error"
                         : code == kReadError    ? "read_error"
                                                 : "timeout";
      outcomes[name] = n;
      if (code < 200 || code >= 300) errors += n;
    }
    out["outcomes"] = std::move(outcomes);
    out["errors"] = errors + measured_.unsent;
    auto lat = measured_.latencies_ns;
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double q) -> double {
      if (lat.empty()) return 0.0;
      auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(lat.size())));
      return static_cast<double>(lat[std::min(lat.size() - 1, rank == 0 ? 0 : rank - 1)]) / 1e6;
    };
    double sum = 0;
    for (auto v : lat) sum += static_cast<double>(v);
    out["latency_ms"] =
        json::object{{"p50", pct(0.50)},
                     {"p90", pct(0.90)},
                     {"p99", pct(0.99)},
                     {"p999", pct(0.999)},
                     {"max", lat.empty() ? 0.0 : static_cast<double>(lat.back()) / 1e6},
                     {"mean", lat.empty() ? 0.0 : sum / static_cast<double>(lat.size()) / 1e6}};
    if (options_.warmup_s > 0)
      out["warmup"] =
          json::object{{"requests", warmup_.completed}, {"ok_requests", warmup_.latencies_ns.size()}};
    if (options_.idle_connections > 0)
      out["idle"] = json::object{{"requested", options_.idle_connections},
                                 {"opened", idle_.size()},
                                 {"failed", idle_failed_},
                                 {"non_2xx", idle_non_2xx_},
                                 {"setup_s", idle_setup_s_},
                                 {"still_open_at_end", idle_still_open_}};
    out["loadgen_cpu_s"] = self_cpu_end_ - self_cpu_start_;

    // Watched processes, by group: the measured phase's CPU per request, memory at its end (summed
    // over the group's pids), and every pid's samples at each boundary.
    json::object watch;
    auto start = samples_.find("measure_start");
    auto end = samples_.find("measure_end");
    std::size_t k = 0; // index into the flattened sample lists
    for (const auto& group : options_.watch) {
      json::object g;
      json::array pids;
      double cpu = 0, oncpu = 0;
      long rss = 0, hwm = 0, rss_after_idle = 0, rss_start = 0;
      bool alive = true;
      for (int pid : group.pids) {
        json::object p;
        p["pid"] = pid;
        for (const auto& [name, list] : samples_)
          if (k < list.size()) p[name] = to_json(list[k]);
        pids.push_back(std::move(p));
        if (start != samples_.end() && end != samples_.end() && k < end->second.size()) {
          const auto& a = start->second[k];
          const auto& b = end->second[k];
          alive = alive && a.alive && b.alive;
          cpu += b.cpu_s - a.cpu_s;
          oncpu += b.oncpu_s - a.oncpu_s;
          rss += b.vm_rss_kib;
          hwm += b.vm_hwm_kib;
        }
        if (auto it = samples_.find("start"); it != samples_.end() && k < it->second.size())
          rss_start += it->second[k].vm_rss_kib;
        if (auto it = samples_.find("after_idle"); it != samples_.end() && k < it->second.size())
          rss_after_idle += it->second[k].vm_rss_kib;
        ++k;
      }
      double per_1k = measured_.completed > 0 ? 1000.0 / static_cast<double>(measured_.completed) : 0.0;
      g["alive"] = alive;
      g["cpu_s"] = cpu;
      g["oncpu_s"] = oncpu;
      g["cpu_s_per_1k_requests"] = cpu * per_1k;
      g["oncpu_s_per_1k_requests"] = oncpu * per_1k;
      g["vm_rss_kib_start"] = rss_start;
      g["vm_rss_kib_after_idle"] = rss_after_idle;
      g["vm_rss_kib"] = rss;
      g["vm_hwm_kib"] = hwm;
      g["pids"] = std::move(pids);
      watch[group.name] = std::move(g);
    }
    out["watch"] = std::move(watch);
    return out;
  }

  asio::io_context& io() { return io_; }
  const tcp::endpoint& endpoint() const { return endpoint_; }
  const std::string& head() const { return head_; }
  const std::string& body() const { return body_; }
  double timeout_s() const { return options_.timeout_s; }

private:
  std::vector<ProcSample> sample_all() const {
    std::vector<ProcSample> out;
    for (const auto& group : options_.watch)
      for (int pid : group.pids) out.push_back(sample_proc(pid));
    return out;
  }

  void stop_watchdog() {
    stopping_ = true;
    watchdog_.cancel();
  }

  // Closes the socket of any request past its deadline; the pending read then fails.
  asio::awaitable<void> watchdog() {
    while (!stopping_) {
      watchdog_.expires_after(std::chrono::milliseconds(100));
      co_await watchdog_.async_wait(kAwait);
      if (stopping_) break;
      auto now = Clock::now();
      for (auto* list : {&active_, &idle_setup_})
        for (auto& c : *list)
          if (c && c->in_flight() && now > c->deadline()) {
            c->timed_out_ = true;
            c->close();
          }
    }
  }

  asio::awaitable<void> open_idle() {
    const TimePoint t0 = Clock::now();
    idle_setup_.resize(static_cast<std::size_t>(options_.idle_connections));
    next_idle_ = 0;
    int workers = std::min(options_.idle_concurrency, options_.idle_connections);
    running_ = workers;
    for (int w = 0; w < workers; ++w) asio::co_spawn(io_, idle_worker(), asio::detached);
    co_await wait_all();
    for (auto& c : idle_setup_)
      if (c) idle_.push_back(std::move(c));
    idle_setup_.clear();
    idle_setup_s_ = duration<double>(Clock::now() - t0).count();
    std::fprintf(stderr, "tandem_loadgen: %zu idle connections open (%llu failed) in %.2f s\n", idle_.size(),
                 static_cast<unsigned long long>(idle_failed_), idle_setup_s_);
  }

  asio::awaitable<void> idle_worker() {
    while (next_idle_ < idle_setup_.size()) {
      std::size_t i = next_idle_++;
      auto c = std::make_unique<Connection>(*this);
      auto* raw = c.get();
      idle_setup_[i] = std::move(c);
      int outcome = co_await raw->roundtrip(nullptr);
      if (outcome < 0) {
        ++idle_failed_;
        idle_setup_[i].reset();
      } else if (outcome < 200 || outcome >= 300) {
        ++idle_non_2xx_;
      }
    }
    finish_one();
  }

  void finish_one() {
    if (--running_ == 0) done_.cancel();
  }

  asio::awaitable<void> wait_all() {
    while (running_ > 0) {
      done_.expires_at(TimePoint::max());
      co_await done_.async_wait(kAwait);
    }
  }

  asio::awaitable<void> run_phase(double seconds, PhaseStats& stats) {
    current_ = &stats;
    phase_t0_ = Clock::now();
    phase_end_ = phase_t0_ + std::chrono::duration_cast<nanoseconds>(duration<double>(seconds));
    drain_deadline_ =
        phase_end_ + std::chrono::duration_cast<nanoseconds>(duration<double>(options_.drain_s));
    pending_.clear();
    waiters_.clear();
    schedule_done_ = false;
    const bool open = options_.rate > 0;
    if (open) stats.latencies_ns.reserve(static_cast<std::size_t>(options_.rate * seconds * 1.05) + 16);
    running_ = static_cast<int>(active_.size()) + (open ? 1 : 0);
    for (auto& c : active_) asio::co_spawn(io_, open ? open_loop(*c) : closed_loop(*c), asio::detached);
    if (open) asio::co_spawn(io_, scheduler(stats), asio::detached);
    co_await wait_all();
    stats.unsent += pending_.size();
    pending_.clear();
  }

  asio::awaitable<void> scheduler(PhaseStats& stats) {
    asio::steady_timer timer(io_);
    const double interval_ns = 1e9 / options_.rate;
    for (std::uint64_t i = 0;; ++i) {
      auto at = phase_t0_ + nanoseconds(static_cast<std::int64_t>(static_cast<double>(i) * interval_ns));
      if (at >= phase_end_) break;
      if (at > Clock::now()) {
        timer.expires_at(at);
        co_await timer.async_wait(kAwait);
      }
      pending_.push_back(at);
      ++stats.scheduled;
      if (!waiters_.empty()) {
        Connection* c = waiters_.back();
        waiters_.pop_back();
        c->wake().cancel();
      }
    }
    schedule_done_ = true;
    for (auto* c : waiters_) c->wake().cancel();
    waiters_.clear();
    finish_one();
  }

  void record(PhaseStats& stats, int outcome, TimePoint from) {
    ++stats.outcomes[outcome];
    if (outcome >= 0) ++stats.completed;
    if (outcome >= 200 && outcome < 300) stats.latencies_ns.push_back((Clock::now() - from).count());
  }

  asio::awaitable<void> open_loop(Connection& c) {
    PhaseStats& stats = *current_;
    for (;;) {
      if (pending_.empty()) {
        if (schedule_done_) break;
        waiters_.push_back(&c);
        c.wake().expires_at(TimePoint::max());
        co_await c.wake().async_wait(kAwait);
        continue;
      }
      if (Clock::now() > drain_deadline_) break;
      TimePoint scheduled = pending_.front();
      pending_.pop_front();
      int outcome = co_await c.roundtrip(&stats);
      record(stats, outcome, scheduled);
    }
    finish_one();
  }

  asio::awaitable<void> closed_loop(Connection& c) {
    PhaseStats& stats = *current_;
    while (Clock::now() < phase_end_) {
      TimePoint sent = Clock::now();
      int outcome = co_await c.roundtrip(&stats);
      record(stats, outcome, sent);
    }
    finish_one();
  }

  asio::io_context& io_;
  Options options_;
  Url url_;
  tcp::endpoint endpoint_;
  std::string head_;
  std::string body_;
  asio::steady_timer watchdog_;
  asio::steady_timer done_;
  bool stopping_ = false;
  bool failed_ = false;
  int running_ = 0;

  std::vector<std::unique_ptr<Connection>> active_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::vector<std::unique_ptr<Connection>> idle_setup_;
  std::size_t next_idle_ = 0;
  std::uint64_t idle_failed_ = 0;
  std::uint64_t idle_non_2xx_ = 0;
  std::uint64_t idle_still_open_ = 0;
  double idle_setup_s_ = 0;

  PhaseStats* current_ = nullptr;
  PhaseStats warmup_;
  PhaseStats measured_;
  double measured_elapsed_s_ = 0;
  double self_cpu_start_ = 0, self_cpu_end_ = 0;
  TimePoint phase_t0_{}, phase_end_{}, drain_deadline_{};
  std::deque<TimePoint> pending_;
  std::vector<Connection*> waiters_;
  bool schedule_done_ = false;
  std::map<std::string, std::vector<ProcSample>> samples_;

  friend class Connection;
};

asio::any_io_executor Connection::executor() {
  return gen_.io().get_executor();
}

asio::awaitable<bool> Connection::ensure_connected() {
  if (socket_.is_open()) co_return true;
  buffer_.clear();
  auto [ec] = co_await socket_.async_connect(gen_.endpoint(), kAwait);
  if (ec) {
    close();
    co_return false;
  }
  boost::system::error_code opt;
  socket_.set_option(tcp::no_delay(true), opt);
  co_return true;
}

asio::awaitable<int> Connection::roundtrip(PhaseStats* stats) {
  const bool fresh = !socket_.is_open();
  in_flight_ = true;
  timed_out_ = false;
  deadline_ = Clock::now() + std::chrono::duration_cast<nanoseconds>(duration<double>(gen_.timeout_s()));
  auto fail = [&](int outcome) -> int {
    in_flight_ = false;
    close();
    return timed_out_ ? kTimeout : outcome;
  };
  if (!co_await ensure_connected()) {
    int outcome = fail(kConnectError);
    // Do not spin against a dead server.
    asio::steady_timer pause(gen_.io(), std::chrono::milliseconds(10));
    co_await pause.async_wait(kAwait);
    co_return outcome;
  }
  if (fresh && stats) ++stats->reconnects;
  std::array<asio::const_buffer, 2> request{asio::buffer(gen_.head()), asio::buffer(gen_.body())};
  auto [wec, written] = co_await asio::async_write(socket_, request, kAwait);
  (void)written;
  if (wec) co_return fail(kWriteError);
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(256u << 20);
  auto [rec, read] = co_await bhttp::async_read(socket_, buffer_, parser, kAwait);
  (void)read;
  if (rec) co_return fail(kReadError);
  in_flight_ = false;
  const auto& res = parser.get();
  if (!res.keep_alive()) close();
  co_return static_cast<int>(res.result_int());
}

} // namespace

int main(int argc, char** argv) {
  Options options = parse_args(argc, argv);
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  asio::io_context io(1);
  Generator gen(io, options);
  asio::co_spawn(io, gen.main(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "tandem_loadgen: %s\n", ex.what());
      std::exit(1);
    }
  });
  io.run();
  auto report = gen.report();
  std::printf("%s\n", json::serialize(report).c_str());
  return report["ok"].as_bool() ? 0 : 1;
}
