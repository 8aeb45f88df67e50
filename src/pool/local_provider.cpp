#include "pool/local_provider.hpp"

#include "pool/health_probe.hpp"
#include "pool/stderr_relay.hpp"
#include "pool/worker_process.hpp"

#include <spdlog/spdlog.h>

#include <signal.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <charconv>
#include <cstdlib>
#include <optional>

namespace tandem::pool {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

struct ReadyLine {
  WorkerAddress address;
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
  const std::string host(address_port.substr(0, colon));
  auto address = asio::ip::make_address(host, ec);
  int port = 0;
  const auto port_text = address_port.substr(colon + 1);
  auto [end, perr] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec || perr != std::errc{} || end != port_text.data() + port_text.size() || port <= 0 || port > 65535)
    return std::nullopt;
  ReadyLine ready{{host, {address, static_cast<unsigned short>(port)}}};
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

/// One child process. Shared with the callbacks that outlive a stop (its exit, its stderr),
/// which check `alive` before telling the pool anything.
class LocalWorker final : public ProviderWorker, public std::enable_shared_from_this<LocalWorker> {
public:
  LocalWorker(asio::io_context& io, std::string id, pid_t pid, WorkerEvents events,
              std::chrono::milliseconds stop_grace)
      : io_(io), id_(std::move(id)), pid_(pid), events_(std::move(events)), stop_grace_(stop_grace) {}

  void stop() override {
    if (pid_ <= 0 || stopping_) return;
    stopping_ = true;
    ::kill(pid_, SIGTERM);
    // A worker that ignores SIGTERM must not stay (and be billed) forever.
    auto timer = std::make_shared<asio::steady_timer>(io_, stop_grace_);
    timer->async_wait([self = shared_from_this(), timer](const boost::system::error_code& ec) {
      if (ec || self->pid_ <= 0) return;
      spdlog::warn("worker {} did not stop within {} ms of SIGTERM: killing it", self->id_, self->stop_grace_.count());
      ::kill(self->pid_, SIGKILL);
    });
  }
  void kill() override {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
  }
  [[nodiscard]] bool running() const override { return pid_ > 0; }
  [[nodiscard]] std::string instance() const override { return pid_ > 0 ? std::to_string(pid_) : ""; }

  void on_exit(int wait_status) {
    pid_ = 0;
    // Moved out first: the pool lets go of its handle from inside this call, which detaches.
    auto exited = std::move(events_.exited);
    if (exited)
      exited({start_timed_out_ ? WorkerExit::Kind::start_timed_out : WorkerExit::Kind::exited,
              describe_wait_status(wait_status)});
  }
  /// No event after this: the pool let go of the worker (or is gone).
  void detach() { events_ = {}; }
  void on_ready(const WorkerAddress& address, double service_ms) {
    ready_ = true;
    if (pid_ > 0 && events_.ready) events_.ready(address, service_ms);
  }
  void on_start_timeout(std::chrono::milliseconds timeout) {
    if (pid_ <= 0 || ready_) return;
    spdlog::error("worker {} did not become ready within {} ms; killing it", id_, timeout.count());
    start_timed_out_ = true;
    ::kill(pid_, SIGKILL);
  }
  void on_bad_ready_line() {
    spdlog::error("worker {} sent an unreadable ready line; killing it", id_);
    kill();
  }
  [[nodiscard]] bool waiting_for_ready() const { return pid_ > 0 && !ready_; }
  const WorkerEvents& events() const { return events_; }

private:
  asio::io_context& io_;
  std::string id_;
  pid_t pid_;
  WorkerEvents events_;
  std::chrono::milliseconds stop_grace_;
  bool stopping_ = false;
  bool ready_ = false;
  bool start_timed_out_ = false;
};

asio::awaitable<void> await_ready_pipe(asio::io_context& io, std::shared_ptr<LocalWorker> worker, int fd,
                                       std::chrono::milliseconds timeout_ms) {
  asio::posix::stream_descriptor pipe(io, fd);
  asio::steady_timer timeout(io);
  timeout.expires_after(timeout_ms);
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
  if (ec) {
    if (timed_out) worker->on_start_timeout(timeout_ms);
    co_return;  // otherwise the process exited: its exit event follows
  }
  // "READY 127.0.0.1:PORT", optionally followed by " service_ms=MS": the worker's own measure
  // of one request (the reference worker times its warm-up run), the router's prior.
  line.resize(n > 0 ? n - 1 : 0);
  auto ready = parse_ready_line(line);
  if (!ready) {
    worker->on_bad_ready_line();
    co_return;
  }
  worker->on_ready(ready->address, ready->service_ms);
}

asio::awaitable<void> await_ready_probe(asio::io_context& io, std::shared_ptr<LocalWorker> worker,
                                        WorkerAddress address, std::chrono::milliseconds timeout_ms) {
  // Named, not temporaries of the co_await expression (see health_probe.hpp).
  const std::function<bool()> wanted = [worker] { return worker->waiting_for_ready(); };
  const auto deadline = steady_clock::now() + timeout_ms;
  const ProbeOutcome outcome = co_await probe_until_ready(io, address, deadline, wanted);
  if (outcome == ProbeOutcome::ready) worker->on_ready(address, 0);
  if (outcome == ProbeOutcome::timed_out) worker->on_start_timeout(timeout_ms);
}

} // namespace

LocalProvider::LocalProvider(asio::io_context& io, ChildReaper& reaper, LocalWorkerSpec spec)
    : io_(io), reaper_(reaper), spec_(std::move(spec)) {}

std::vector<std::string> LocalProvider::command_for(const std::string& worker_id, unsigned short port) const {
  const auto& spec = spec_.worker;
  const auto& m = spec_.manifest;
  if (spec.command.empty()) {
    std::vector<std::string> argv = {spec_.self_exe, "worker", "--model", m.directory.string(),
                                     "--listen", "127.0.0.1:0", "--ready-fd", std::to_string(kReadyFd),
                                     "--worker-id", worker_id, "--max-body-bytes",
                                     std::to_string(spec_.max_request_bytes)};
    argv.insert(argv.end(), spec_.worker_log_args.begin(), spec_.worker_log_args.end());
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

Result<std::unique_ptr<ProviderWorker>> LocalProvider::start(const WorkerStart& start, WorkerEvents events) {
  const bool reference = spec_.worker.command.empty();
  unsigned short port = 0;
  if (!reference) {
    auto picked = pick_free_port();
    if (!picked) return Error{picked.error().code, "worker " + start.worker_id + ": " + picked.error().message};
    port = *picked;
  }
  auto spawned = spawn_process(command_for(start.worker_id, port));
  if (!spawned)
    return Error{spawned.error().code, "worker " + start.worker_id + " cannot start: " + spawned.error().message};
  auto worker = std::make_shared<LocalWorker>(io_, start.worker_id, spawned->pid, std::move(events), spec_.stop_grace);
  // The relay holds the worker until the child's stderr ends, which may be after its exit.
  asio::co_spawn(io_,
                 relay_stderr(
                     io_, spawned->stderr_read_fd, STDERR_FILENO,
                     [worker](const std::string& line) {
                       if (worker->events().error_line) worker->events().error_line(line);
                     },
                     [worker](const std::string& line) {
                       if (worker->events().output_closed) worker->events().output_closed(line);
                     }),
                 asio::detached);
  // The exit is reported even after the pool let go of the handle (shutdown waits for it).
  reaper_.watch(spawned->pid, [worker](int status) { worker->on_exit(status); });
  spdlog::info("worker {} starting, pid {}", start.worker_id, spawned->pid);
  if (reference) {
    asio::co_spawn(io_, await_ready_pipe(io_, worker, spawned->ready_read_fd, start.start_timeout), asio::detached);
  } else {
    ::close(spawned->ready_read_fd);
    WorkerAddress address{"127.0.0.1", {asio::ip::address_v4::loopback(), port}};
    asio::co_spawn(io_, await_ready_probe(io_, worker, address, start.start_timeout), asio::detached);
  }
  // The pool holds a handle that shares ownership with the reaper's callback.
  struct Handle final : ProviderWorker {
    explicit Handle(std::shared_ptr<LocalWorker> w) : worker(std::move(w)) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() override { worker->detach(); }
    void stop() override { worker->stop(); }
    void kill() override { worker->kill(); }
    [[nodiscard]] bool running() const override { return worker->running(); }
    [[nodiscard]] std::string instance() const override { return worker->instance(); }
    std::shared_ptr<LocalWorker> worker;
  };
  return std::unique_ptr<ProviderWorker>(std::make_unique<Handle>(std::move(worker)));
}

} // namespace tandem::pool
