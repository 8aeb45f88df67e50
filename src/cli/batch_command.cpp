// `tandem batch ENDPOINT --input rows.jsonl --output results.jsonl`: every line of a JSONL file
// becomes a job of the RunPod-compatible job API (docs/jobs.md), with bounded parallelism, a
// resumable output file and a progress display (docs/batch.md). This file has the options, the
// worker threads that submit and follow the jobs, and the signals; the input is read in
// batch_rows, the output written and resumed in batch_results, progress and summary drawn in
// batch_progress.
#include "cli/admin_client.hpp"
#include "cli/batch_progress.hpp"
#include "cli/batch_results.hpp"
#include "cli/batch_rows.hpp"
#include "cli/commands.hpp"
#include "http/query.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace tandem::cli {
namespace {

using batch::plan_resume;
using batch::print_resuming;
using batch::Progress;
using batch::read_rows;
using batch::result_line;
using batch::ResultWriter;
using batch::Row;
using batch::Summary;
using batch::Task;

namespace json = boost::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A worker that cannot reach the server for this long gives the run up (it can be resumed).
constexpr milliseconds unreachable_limit_ms{30'000};
// After SIGINT/SIGTERM, jobs already submitted get this long to finish before the run ends.
constexpr milliseconds interrupt_grace_ms{2'000};

struct BatchArgs {
  std::string endpoint;
  std::string input;
  std::string output;
  std::string server;
  int parallel = 16;
  int wait_ms = 60'000;
  std::string progress = "auto";
  bool low_priority = false;
  bool as_json = false;
};

// Written by the signal handler, read by the worker threads: a lock-free atomic is safe for both.
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_interrupt(int) {
  if (interrupted) std::_Exit(130); // a second Ctrl-C: stop at once (resume copes with a torn line)
  interrupted = true;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tandem batch: %s\n", message.c_str());
  return 2;
}

// ---- the run ----------------------------------------------------------------------------------

bool is_final(std::string_view status) {
  return status != "IN_QUEUE" && status != "IN_PROGRESS";
}

/// Bounded exponential backoff, 50 ms doubling to 2 s, with jitter so that workers that were
/// refused together do not come back together.
class Backoff {
public:
  explicit Backoff(unsigned seed) : random_(seed) {}
  /// False when `stopping` turned true during the wait.
  template <typename Stopping> bool wait(Stopping stopping) {
    const int ceiling_ms = std::min(2000, 50 << std::min(attempt_++, 6));
    std::uniform_int_distribution<int> pick(ceiling_ms / 2, ceiling_ms);
    const auto until = Clock::now() + milliseconds(pick(random_));
    while (Clock::now() < until) {
      if (stopping()) return false;
      std::this_thread::sleep_for(std::min<Clock::duration>(milliseconds(20), until - Clock::now()));
    }
    return !stopping();
  }
  void reset() { attempt_ = 0; }

private:
  std::minstd_rand random_;
  int attempt_ = 0;
};

class BatchRun {
public:
  BatchRun(const BatchArgs& args, std::vector<Task> tasks, ResultWriter& writer) :
      args_(args), tasks_(std::move(tasks)), writer_(writer),
      base_path_("/runpod/v2/" + http::url_encode(args.endpoint) + "/") {}

  void worker(unsigned index) {
    auto client = AdminClient::create(args_.server, milliseconds(args_.wait_ms) + std::chrono::seconds(30));
    Backoff backoff(index * 7919U + static_cast<unsigned>(Clock::now().time_since_epoch().count()));
    while (client && !stopping()) {
      const std::size_t next = next_.fetch_add(1);
      if (next >= tasks_.size()) break;
      auto status = run_task(*client, backoff, tasks_[next]);
      if (!status) break; // stopping: the row is left for a resume
      finish(*tasks_[next].row, *status);
    }
    std::lock_guard lock(mutex_);
    --running_;
    changed_.notify_all();
  }

  bool stopping() const { return interrupted || aborted_.load(); }

  /// Starts the workers; returns once they are done, or when they were interrupted and did not
  /// finish within the grace time (then `abandoned()` is true). `tick` runs every 100 ms.
  template <typename Tick> void run(Tick tick) {
    running_ =
        static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(args_.parallel), tasks_.size()));
    for (int i = 0; i < running_; ++i) threads_.emplace_back([this, i] { worker(static_cast<unsigned>(i)); });
    std::optional<Clock::time_point> grace_end;
    std::unique_lock lock(mutex_);
    while (running_ > 0) {
      changed_.wait_for(lock, milliseconds(100));
      if (interrupted && !grace_end) grace_end = Clock::now() + interrupt_grace_ms;
      if (grace_end && Clock::now() >= *grace_end) break;
      lock.unlock();
      tick();
      lock.lock();
    }
    abandoned_ = running_ > 0;
    lock.unlock();
    if (!abandoned_)
      for (auto& t : threads_) t.join();
    else
      for (auto& t : threads_) t.detach(); // blocked on the network; the process exits without them
  }

  [[nodiscard]] bool abandoned() const { return abandoned_; }
  [[nodiscard]] std::size_t completed() const { return completed_.load(); }
  [[nodiscard]] std::size_t failed() const { return failed_.load(); }
  [[nodiscard]] bool aborted() const { return aborted_.load(); }
  [[nodiscard]] int abort_exit_code() const { return abort_exit_code_; }
  [[nodiscard]] std::string abort_message() const {
    std::lock_guard lock(mutex_);
    return abort_message_;
  }
  [[nodiscard]] std::map<std::string, std::size_t> failed_by_status() const {
    std::lock_guard lock(mutex_);
    return failed_by_status_;
  }
  [[nodiscard]] double cost_usd() const {
    std::lock_guard lock(mutex_);
    return cost_usd_;
  }

private:
  void abort(int exit_code, const std::string& message) {
    std::lock_guard lock(mutex_);
    if (aborted_) return;
    abort_exit_code_ = exit_code;
    abort_message_ = message;
    aborted_ = true;
  }

  /// A final status object for a row the server refused; it has no job.
  static json::object refused(const std::string& id, const std::string& why) {
    json::object status{{"status", "FAILED"}, {"error", why}};
    if (!id.empty()) status["id"] = id;
    return status;
  }

  /// Submits the row (or follows its job) until the job is final; nullopt when the run stops
  /// first.
  std::optional<json::object> run_task(AdminClient& client, Backoff& backoff, const Task& task) {
    std::string id = task.attach_id;
    const std::string wait = "?wait=" + std::to_string(args_.wait_ms);
    int resubmits = 0;
    int server_errors = 0;
    Clock::time_point unreachable_since{}; // when the current run of transport failures began
    bool unreachable = false;
    backoff.reset();
    while (!stopping()) {
      const auto asked = Clock::now();
      auto res = id.empty()
                     ? client.request("POST", base_path_ + "runsync" + wait, task.row->body)
                     : client.request("GET", base_path_ + "status-sync/" + http::url_encode(id) + wait);
      if (!res) {
        if (!unreachable) unreachable_since = Clock::now();
        unreachable = true;
        if (Clock::now() - unreachable_since >= unreachable_limit_ms) {
          abort(1, res.error().message);
          return std::nullopt;
        }
        backoff.wait([this] { return stopping(); });
        continue;
      }
      unreachable = false;
      const int code = res->status;
      if (code >= 200 && code < 300) {
        boost::system::error_code ec;
        auto value = json::parse(res->body, ec);
        const json::value* status =
            !ec && value.is_object() ? value.as_object().if_contains("status") : nullptr;
        if (!status || !status->is_string()) {
          if (++server_errors > 5)
            return refused(id, "the server's answer is not a job status: " + res->body.substr(0, 200));
          backoff.wait([this] { return stopping(); });
          continue;
        }
        auto& object = value.as_object();
        if (id.empty()) {
          const json::value* job_id = object.if_contains("id");
          if (job_id && job_id->is_string()) {
            id = std::string(job_id->as_string());
            if (!writer_.record_submit(task.row->line, id)) {
              abort(2, "cannot write " + args_.output + ".jobs");
              return std::nullopt;
            }
          }
        }
        if (is_final(status->as_string())) return std::move(object);
        // A server that answers "not yet" at once instead of waiting must not be hammered.
        if (Clock::now() - asked < milliseconds(50))
          backoff.wait([this] { return stopping(); });
        else
          backoff.reset();
        continue;
      }
      if (code == 429 || code == 503) { // queue full, or the store could not take the job: later
        backoff.wait([this] { return stopping(); });
        continue;
      }
      if (code == 404 && id.empty()) {
        abort(2, "endpoint \"" + args_.endpoint + "\" not found at " + client.base() + ": " +
                     error_message(*res));
        return std::nullopt;
      }
      if (code == 404) { // the job's result expired (or another server forgot it): run the row again
        if (++resubmits > 3) return refused(id, "job " + id + " keeps disappearing: " + error_message(*res));
        id.clear();
        continue;
      }
      if (code >= 500 && ++server_errors <= 5) {
        backoff.wait([this] { return stopping(); });
        continue;
      }
      // 400, 413 and the like: the row itself is wrong, and sending it again will not help.
      return refused(id, "HTTP " + std::to_string(code) + ": " + error_message(*res));
    }
    return std::nullopt;
  }

  void finish(const Row& row, const json::object& status) {
    const bool completed = status.at("status").as_string() == "COMPLETED";
    {
      std::lock_guard lock(mutex_);
      if (const auto* cost = status.if_contains("cost_usd"); cost && cost->is_number())
        cost_usd_ += cost->to_number<double>();
      if (!completed) ++failed_by_status_[std::string(status.at("status").as_string())];
    }
    if (!writer_.record_result(result_line(row.line, status))) {
      abort(2, "cannot write " + args_.output);
      return;
    }
    (completed ? completed_ : failed_).fetch_add(1);
  }

  const BatchArgs& args_;
  const std::vector<Task> tasks_;
  ResultWriter& writer_;
  const std::string base_path_;
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> completed_{0};
  std::atomic<std::size_t> failed_{0};
  std::atomic<bool> aborted_{false};
  int abort_exit_code_ = 0;
  mutable std::mutex mutex_; // guards what follows
  std::condition_variable changed_;
  std::string abort_message_;
  std::map<std::string, std::size_t> failed_by_status_;
  double cost_usd_ = 0;
  int running_ = 0;
  bool abandoned_ = false;
  std::vector<std::thread> threads_;
};

int run_batch(const BatchArgs& a) {
  const auto started = Clock::now();
  // The URL first: a typo there should not wait for a large input to be read.
  auto probe = AdminClient::create(a.server, std::chrono::seconds(10));
  if (!probe) return usage_error(probe.error().message);

  std::error_code ec;
  if (fs::exists(a.output, ec) && fs::equivalent(a.input, a.output, ec))
    return usage_error("--input and --output are the same file");
  auto rows = read_rows(a.input, a.low_priority);
  if (!rows) return usage_error(rows.error().message);
  const std::string journal_path = a.output + ".jobs";
  auto resume = plan_resume(*rows, a.output, journal_path);
  if (!resume) return usage_error(resume.error().message);
  if (resume->foreign > 0)
    std::fprintf(
        stderr,
        "tandem batch: warning: %s has results for %zu rows that are not in %s (another input file?)\n",
        a.output.c_str(), resume->foreign, a.input.c_str());

  const auto mode = Progress::mode_for(a.progress);
  print_resuming(mode, rows->size(), resume->skipped, resume->retried, resume->attached);

  if (!resume->tasks.empty()) {
    // An unknown endpoint or an unreachable server is a usage error: say so before any row.
    auto health = probe->request("GET", "/runpod/v2/" + http::url_encode(a.endpoint) + "/health");
    if (!health) return usage_error(health.error().message);
    if (health->status == 404)
      return usage_error("endpoint \"" + a.endpoint + "\" not found at " + probe->base() + ": " +
                         error_message(*health));
  }

  ResultWriter writer;
  if (auto opened = writer.open(a.output, journal_path); !opened) return usage_error(opened.error().message);
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);

  const std::size_t total = rows->size();
  Progress progress(mode, total, resume->skipped);
  BatchRun run(a, std::move(resume->tasks), writer);
  run.run([&] { progress.update(run.completed() + run.failed(), run.failed()); });
  if (run.abandoned()) writer.close_for_exit();
  progress.update(run.completed() + run.failed(), run.failed(), true);

  Summary summary;
  summary.endpoint = a.endpoint;
  summary.output = a.output;
  summary.rows = total;
  summary.skipped = resume->skipped;
  summary.completed = run.completed();
  summary.failed = run.failed();
  summary.failed_by_status = run.failed_by_status();
  summary.cost_usd = run.cost_usd();
  summary.wall_s = std::chrono::duration<double>(Clock::now() - started).count();
  summary.interrupted = interrupted.load();
  if (run.aborted())
    std::fprintf(stderr, "tandem batch: %s\n", run.abort_message().c_str());
  else if (interrupted)
    std::fprintf(stderr,
                 "tandem batch: interrupted; %zu rows not done (run the same command again to resume)\n",
                 summary.not_done());
  // Every row has its result line: the journal has nothing left to follow.
  if (summary.not_done() == 0) fs::remove(journal_path, ec);
  summary.print(a.as_json);

  int exit_code = 0;
  if (run.aborted())
    exit_code = run.abort_exit_code();
  else if (interrupted)
    exit_code = 130;
  else if (summary.failed > 0 || summary.not_done() > 0)
    exit_code = 1;
  if (run.abandoned()) {
    std::fflush(stderr);
    std::_Exit(exit_code); // worker threads are still blocked on the network
  }
  return exit_code;
}

} // namespace

void add_batch_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<BatchArgs>();
  auto* command =
      app.add_subcommand("batch", "Run every line of a JSONL file as a job and collect the results");
  command->add_option("endpoint", a->endpoint, "Endpoint name")->required();
  command->add_option("--input", a->input, "JSONL file: one v2 inference request (or job body) per line")
      ->required();
  command
      ->add_option("--output", a->output,
                   "JSONL file the results are appended to, in completion order; an existing one is resumed")
      ->required();
  command->add_option("--server", a->server,
                      "tandem server URL (default: $TANDEM_SERVER, else http://127.0.0.1:8080)");
  command->add_option("--parallel", a->parallel, "Jobs in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  command->add_option("--wait-ms", a->wait_ms, "How long each runsync/status-sync call waits for a job")
      ->capture_default_str()
      ->check(CLI::Range(1000, 300'000));
  command->add_option("--progress", a->progress, "auto (a bar on a terminal, else lines), bar, lines or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}));
  command->add_flag("--low-priority", a->low_priority,
                    "Submit every job with policy.lowPriority (idle capacity only)");
  command->add_flag("--json", a->as_json, "Print the summary as JSON");
  command->callback([a, &exit_code] { exit_code = run_batch(*a); });
}

} // namespace tandem::cli
