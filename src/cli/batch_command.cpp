// `tandem batch ENDPOINT --input rows.jsonl --output results.jsonl`: every line of a JSONL file
// becomes a job of the RunPod-compatible job API (docs/jobs.md), with bounded parallelism, a
// resumable output file and a progress display (docs/batch.md).
#include "cli/admin_client.hpp"
#include "cli/commands.hpp"
#include "http/query.hpp"

#include <boost/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace tandem::cli {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::uintmax_t max_input_bytes = 1ULL << 30;
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

volatile std::sig_atomic_t interrupted = 0;

void on_interrupt(int) {
  if (interrupted) std::_Exit(130); // a second Ctrl-C: stop at once (resume copes with a torn line)
  interrupted = 1;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tandem batch: %s\n", message.c_str());
  return 2;
}

/// JSON text with doubles in their shortest round-trip form (0.99952567, 1e-06): Boost.JSON 1.81
/// writes 9.9952567E-1, which is valid but not what the server sent.
void append_json(std::string& out, const json::value& v) {
  switch (v.kind()) {
  case json::kind::object: {
    out += '{';
    bool first = true;
    for (const auto& [key, value] : v.get_object()) {
      if (!first) out += ',';
      first = false;
      out += json::serialize(key);
      out += ':';
      append_json(out, value);
    }
    out += '}';
    return;
  }
  case json::kind::array: {
    out += '[';
    bool first = true;
    for (const auto& element : v.get_array()) {
      if (!first) out += ',';
      first = false;
      append_json(out, element);
    }
    out += ']';
    return;
  }
  case json::kind::double_: {
    char text[32];
    const auto end = std::to_chars(text, text + sizeof text, v.get_double()).ptr;
    out.append(text, end);
    if (std::string_view(text, static_cast<std::size_t>(end - text)).find_first_of(".eEn") ==
        std::string_view::npos)
      out += ".0"; // 3.0 stays a double
    return;
  }
  default: out += json::serialize(v); // strings, integers, booleans, null
  }
}

// ---- files ------------------------------------------------------------------------------------

struct Row {
  std::size_t line = 0; // 0-based physical line of the input: the output's "row"
  std::string body;     // the job body to POST
};

Result<std::string> read_file(const fs::path& path, std::uintmax_t limit_bytes) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return make_error(ErrorCode::invalid_request, "cannot read " + path.string() + ": " + ec.message());
  if (size > limit_bytes)
    return make_error(ErrorCode::invalid_request, path.string() + " is " + std::to_string(size) +
                                                      " bytes; the limit is " + std::to_string(limit_bytes));
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::invalid_request, "cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

/// Splits into lines without their "\n" (and "\r"); a last line without "\n" is included.
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t begin = 0;
  while (begin < text.size()) {
    auto end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    auto line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    begin = end + 1;
  }
  return lines;
}

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

const char* kind_of(const json::value& v) {
  switch (v.kind()) {
  case json::kind::array: return "an array";
  case json::kind::string: return "a string";
  case json::kind::null: return "null";
  case json::kind::bool_: return "a boolean";
  case json::kind::object: return "an object";
  default: return "a number";
  }
}

/// Every non-blank line as a job body: a line with "input" is a job body already, anything else
/// a v2 inference request that becomes the job's input. Any bad line fails the whole file.
Result<std::vector<Row>> read_rows(const BatchArgs& a) {
  auto text = read_file(a.input, max_input_bytes);
  if (!text) return text.error();
  const auto lines = split_lines(*text);
  std::vector<Row> rows;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (is_blank(lines[i])) continue;
    auto where = [&] { return a.input + " line " + std::to_string(i + 1) + ": "; };
    boost::system::error_code ec;
    auto value = json::parse(lines[i], ec);
    if (ec) return make_error(ErrorCode::invalid_request, where() + "not JSON (" + ec.message() + ")");
    if (!value.is_object())
      return make_error(ErrorCode::invalid_request,
                        where() + "expected a JSON object, got " + kind_of(value));
    json::object body;
    if (value.as_object().contains("input"))
      body = std::move(value.as_object());
    else
      body["input"] = std::move(value);
    if (a.low_priority) {
      auto& policy = body["policy"];
      if (policy.is_null()) policy = json::object();
      if (!policy.is_object())
        return make_error(ErrorCode::invalid_request, where() + "\"policy\" is not an object");
      policy.as_object()["lowPriority"] = true;
    }
    rows.push_back({i, json::serialize(body)});
  }
  return rows;
}

/// Reads the complete lines of a file that is only ever appended to; a torn last line (the
/// writer was killed mid-write) is cut off the file so that the next append starts clean.
Result<std::vector<std::string>> read_appended_lines(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::vector<std::string>{};
  auto text = read_file(path, std::numeric_limits<std::uintmax_t>::max());
  if (!text) return text.error();
  const auto complete = text->rfind('\n') == std::string::npos ? 0 : text->rfind('\n') + 1;
  if (complete < text->size()) {
    fs::resize_file(path, complete, ec);
    if (ec)
      return make_error(ErrorCode::invalid_request, "cannot truncate " + path.string() + ": " + ec.message());
    text->resize(complete);
  }
  std::vector<std::string> lines;
  for (auto line : split_lines(*text))
    if (!is_blank(line)) lines.emplace_back(line);
  return lines;
}

struct Recorded {
  std::string status;
  std::string id;
};

/// The last result line of each row in an existing output file.
Result<std::unordered_map<std::size_t, Recorded>> read_recorded(const fs::path& path) {
  auto lines = read_appended_lines(path);
  if (!lines) return lines.error();
  std::unordered_map<std::size_t, Recorded> recorded;
  for (std::size_t i = 0; i < lines->size(); ++i) {
    boost::system::error_code ec;
    auto value = json::parse((*lines)[i], ec);
    const json::object* line = !ec && value.is_object() ? &value.as_object() : nullptr;
    const json::value* row = line ? line->if_contains("row") : nullptr;
    const json::value* status = line ? line->if_contains("status") : nullptr;
    // Appending results to some other file (the input, say) would spoil it: refuse.
    if (!row || !row->is_int64() || row->as_int64() < 0 || !status || !status->is_string())
      return make_error(ErrorCode::invalid_request,
                        path.string() + " line " + std::to_string(i + 1) +
                            " is not a result line of tandem batch; refusing to append to it");
    const json::value* id = line->if_contains("id");
    recorded[static_cast<std::size_t>(row->as_int64())] = {
        std::string(status->as_string()), id && id->is_string() ? std::string(id->as_string()) : ""};
  }
  return recorded;
}

/// The sidecar journal: "ROW JOBID" per submitted job, the last one of a row wins.
Result<std::unordered_map<std::size_t, std::string>> read_journal(const fs::path& path) {
  auto lines = read_appended_lines(path);
  if (!lines) return lines.error();
  std::unordered_map<std::size_t, std::string> jobs;
  for (const auto& line : *lines) {
    std::istringstream in(line);
    std::size_t row = 0;
    std::string id;
    if (in >> row >> id) jobs[row] = id;
  }
  return jobs;
}

/// Appends result lines to the output and "ROW JOBID" lines to the journal; each line is written
/// whole and flushed, so that a killed run leaves at most one torn last line.
class ResultWriter {
public:
  Status open(const std::string& output, const std::string& journal) {
    out_ = std::fopen(output.c_str(), "a");
    if (!out_) return make_error(ErrorCode::invalid_request, "cannot open " + output + " for appending");
    journal_ = std::fopen(journal.c_str(), "a");
    if (!journal_) return make_error(ErrorCode::invalid_request, "cannot open " + journal + " for appending");
    return Ok{};
  }
  ~ResultWriter() {
    if (out_) std::fclose(out_);
    if (journal_) std::fclose(journal_);
  }
  bool record_submit(std::size_t row, const std::string& id) {
    return write(journal_, std::to_string(row) + " " + id + "\n");
  }
  bool record_result(const std::string& line) { return write(out_, line + "\n"); }
  /// Takes the lock for good: no line can start (and be torn) while the process exits.
  void close_for_exit() {
    mutex_.lock();
    closed_ = true;
    if (out_) std::fflush(out_);
    if (journal_) std::fflush(journal_);
  }

private:
  bool write(std::FILE* file, const std::string& line) {
    std::lock_guard lock(mutex_);
    if (closed_) return true;
    return std::fwrite(line.data(), 1, line.size(), file) == line.size() && std::fflush(file) == 0;
  }
  std::mutex mutex_;
  std::FILE* out_ = nullptr;
  std::FILE* journal_ = nullptr;
  bool closed_ = false;
};

// ---- the run ----------------------------------------------------------------------------------

struct Task {
  const Row* row = nullptr;
  std::string attach_id; // a job submitted by an earlier run and never recorded: follow it
};

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
    json::object line;
    line["row"] = row.line;
    const json::value* id = status.if_contains("id");
    line["id"] = id ? *id : json::value(nullptr);
    line["status"] = status.at("status");
    for (const char* field : {"output", "error", "delayTime", "executionTime", "cost_usd"})
      if (const auto* v = status.if_contains(field)) line[field] = *v;
    const bool completed = status.at("status").as_string() == "COMPLETED";
    {
      std::lock_guard lock(mutex_);
      if (const auto* cost = status.if_contains("cost_usd"); cost && cost->is_number())
        cost_usd_ += cost->to_number<double>();
      if (!completed) ++failed_by_status_[std::string(status.at("status").as_string())];
    }
    std::string text;
    append_json(text, line);
    if (!writer_.record_result(text)) {
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

// ---- progress and summary ---------------------------------------------------------------------

std::string format_seconds(double seconds) {
  char text[32];
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s < 60)
    std::snprintf(text, sizeof text, "%llds", s);
  else if (s < 3600)
    std::snprintf(text, sizeof text, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(text, sizeof text, "%lldh%02lldm", s / 3600, s % 3600 / 60);
  return text;
}

class Progress {
public:
  enum class Mode { bar, lines, none };
  Progress(Mode mode, std::size_t total, std::size_t skipped) :
      mode_(mode), total_(total), skipped_(skipped) {}

  /// Draws when due: the bar at most 10 times a second, a line every 2 s.
  void update(std::size_t finished, std::size_t failed, bool final = false) {
    const auto now = Clock::now();
    if (mode_ == Mode::none) return;
    const auto interval = mode_ == Mode::bar ? milliseconds(100) : milliseconds(2000);
    if (!final && now - last_draw_ < interval) return;
    last_draw_ = now;
    const std::size_t done = skipped_ + finished;
    const double elapsed_s = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed_s > 0 ? static_cast<double>(finished) / elapsed_s : 0;
    const double percent = total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
    const std::string eta = done >= total_ ? "0s"
                            : rate > 0     ? format_seconds(static_cast<double>(total_ - done) / rate)
                                           : "-";
    if (mode_ == Mode::bar) {
      constexpr std::size_t width = 20;
      const std::size_t filled = total_ ? width * done / total_ : width;
      std::fprintf(stderr, "\r[%s%s]  %zu/%zu  %.0f%%  %.0f rows/s  ETA %s  failed %zu\x1b[K",
                   std::string(filled, '#').c_str(), std::string(width - filled, '-').c_str(), done, total_,
                   percent, rate, eta.c_str(), failed);
      if (final) std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "batch: %zu/%zu rows (%.0f%%), %.0f rows/s, ETA %s, %zu failed\n", done, total_,
                   percent, rate, eta.c_str(), failed);
    }
    std::fflush(stderr);
  }

private:
  Mode mode_;
  std::size_t total_;
  std::size_t skipped_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_ = Clock::now();
};

struct Summary {
  std::string endpoint;
  std::string output;
  std::size_t rows = 0;
  std::size_t skipped = 0;
  std::size_t completed = 0;
  std::map<std::string, std::size_t> failed_by_status;
  std::size_t failed = 0;
  double wall_s = 0;
  double cost_usd = 0;
  bool interrupted = false;

  [[nodiscard]] std::size_t not_done() const { return rows - skipped - completed - failed; }
  [[nodiscard]] double rows_per_s() const {
    return wall_s > 0 ? static_cast<double>(completed + failed) / wall_s : 0;
  }

  void print(bool as_json) const {
    if (as_json) {
      json::object by_status;
      for (const auto& [status, count] : failed_by_status) by_status[status] = count;
      json::object o{
          {"endpoint", endpoint},   {"output", output},       {"rows", rows},
          {"completed", completed}, {"failed", failed},       {"failed_by_status", std::move(by_status)},
          {"skipped", skipped},     {"not_done", not_done()}, {"interrupted", interrupted}};
      // Boost.JSON writes doubles as 1.5E1: print these three by hand, rounded to what matters.
      std::string text = json::serialize(o);
      text.pop_back();
      char numbers[160];
      std::snprintf(numbers, sizeof numbers, R"(,"wall_s":%.3f,"rows_per_s":%.1f,"cost_usd":%.9f})", wall_s,
                    rows_per_s(), cost_usd);
      std::printf("%s%s\n", text.c_str(), numbers);
    } else {
      std::string by_status;
      for (const auto& [status, count] : failed_by_status)
        by_status += (by_status.empty() ? " (" : ", ") + status + " " + std::to_string(count);
      if (!by_status.empty()) by_status += ")";
      std::printf("rows:        %zu\n", rows);
      std::printf("completed:   %zu\n", completed);
      std::printf("failed:      %zu%s\n", failed, by_status.c_str());
      std::printf("skipped:     %zu (already completed in %s)\n", skipped, output.c_str());
      if (not_done() > 0)
        std::printf("not done:    %zu (run the same command again to resume)\n", not_done());
      std::printf("wall:        %.2f s\n", wall_s);
      std::printf("throughput:  %.1f rows/s\n", rows_per_s());
      std::printf("cost:        $%.9f (jobs of this run)\n", cost_usd);
    }
    std::fflush(stdout);
  }
};

int run_batch(const BatchArgs& a) {
  const auto started = Clock::now();
  // The URL first: a typo there should not wait for a large input to be read.
  auto probe = AdminClient::create(a.server, std::chrono::seconds(10));
  if (!probe) return usage_error(probe.error().message);

  std::error_code ec;
  if (fs::exists(a.output, ec) && fs::equivalent(a.input, a.output, ec))
    return usage_error("--input and --output are the same file");
  auto rows = read_rows(a);
  if (!rows) return usage_error(rows.error().message);
  const std::string journal_path = a.output + ".jobs";
  auto recorded = read_recorded(a.output);
  if (!recorded) return usage_error(recorded.error().message);
  auto journal = read_journal(journal_path);
  if (!journal) return usage_error(journal.error().message);

  std::vector<Task> tasks;
  std::size_t skipped = 0;
  std::size_t attached = 0;
  std::size_t retried = 0;
  std::size_t input_rows_recorded = 0;
  for (const auto& row : *rows) {
    const auto seen = recorded->find(row.line);
    if (seen != recorded->end()) ++input_rows_recorded;
    if (seen != recorded->end() && seen->second.status == "COMPLETED") {
      ++skipped;
      continue;
    }
    Task task{&row, {}};
    // A job submitted but never recorded (the run was killed while it ran) is followed, not
    // submitted again; one that was recorded and not completed is run again.
    if (const auto job = journal->find(row.line);
        job != journal->end() && (seen == recorded->end() || seen->second.id != job->second)) {
      task.attach_id = job->second;
      ++attached;
    } else if (seen != recorded->end()) {
      ++retried;
    }
    tasks.push_back(std::move(task));
  }
  if (input_rows_recorded < recorded->size())
    std::fprintf(
        stderr,
        "tandem batch: warning: %s has results for %zu rows that are not in %s (another input file?)\n",
        a.output.c_str(), recorded->size() - input_rows_recorded, a.input.c_str());

  Progress::Mode mode = Progress::Mode::none;
  if (a.progress == "bar" || (a.progress == "auto" && ::isatty(STDERR_FILENO)))
    mode = Progress::Mode::bar;
  else if (a.progress == "lines" || a.progress == "auto")
    mode = Progress::Mode::lines;
  if ((skipped > 0 || retried > 0 || attached > 0) && mode != Progress::Mode::none) {
    std::fprintf(stderr, "batch: resuming: %zu of %zu rows already done", skipped, rows->size());
    if (retried > 0) std::fprintf(stderr, ", %zu that did not complete to run again", retried);
    if (attached > 0) std::fprintf(stderr, ", following %zu jobs submitted before", attached);
    std::fprintf(stderr, "\n");
  }

  if (!tasks.empty()) {
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
  Progress progress(mode, total, skipped);
  BatchRun run(a, std::move(tasks), writer);
  run.run([&] { progress.update(run.completed() + run.failed(), run.failed()); });
  if (run.abandoned()) writer.close_for_exit();
  progress.update(run.completed() + run.failed(), run.failed(), true);

  Summary summary;
  summary.endpoint = a.endpoint;
  summary.output = a.output;
  summary.rows = total;
  summary.skipped = skipped;
  summary.completed = run.completed();
  summary.failed = run.failed();
  summary.failed_by_status = run.failed_by_status();
  summary.cost_usd = run.cost_usd();
  summary.wall_s = std::chrono::duration<double>(Clock::now() - started).count();
  summary.interrupted = interrupted != 0;
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
  auto* batch =
      app.add_subcommand("batch", "Run every line of a JSONL file as a job and collect the results");
  batch->add_option("endpoint", a->endpoint, "Endpoint name")->required();
  batch->add_option("--input", a->input, "JSONL file: one v2 inference request (or job body) per line")
      ->required();
  batch
      ->add_option("--output", a->output,
                   "JSONL file the results are appended to, in completion order; an existing one is resumed")
      ->required();
  batch->add_option("--server", a->server,
                    "tandem server URL (default: $TANDEM_SERVER, else http://127.0.0.1:8080)");
  batch->add_option("--parallel", a->parallel, "Jobs in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  batch->add_option("--wait-ms", a->wait_ms, "How long each runsync/status-sync call waits for a job")
      ->capture_default_str()
      ->check(CLI::Range(1000, 300'000));
  batch->add_option("--progress", a->progress, "auto (a bar on a terminal, else lines), bar, lines or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}));
  batch->add_flag("--low-priority", a->low_priority,
                  "Submit every job with policy.lowPriority (idle capacity only)");
  batch->add_flag("--json", a->as_json, "Print the summary as JSON");
  batch->callback([a, &exit_code] { exit_code = run_batch(*a); });
}

} // namespace tandem::cli
