// The progress display and the summary of `tandem batch`.
#include "cli/batch_progress.hpp"

#include <boost/json.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <utility>

namespace tandem::cli::batch {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string format_seconds(double seconds) {
  char text[32];
  const long long s = std::llround(seconds);
  if (s < 60)
    std::snprintf(text, sizeof text, "%llds", s);
  else if (s < 3600)
    std::snprintf(text, sizeof text, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(text, sizeof text, "%lldh%02lldm", s / 3600, s % 3600 / 60);
  return text;
}

} // namespace

Progress::Mode Progress::mode_for(const std::string& option) {
  if (option == "bar" || (option == "auto" && ::isatty(STDERR_FILENO))) return Mode::bar;
  if (option == "lines" || option == "auto") return Mode::lines;
  return Mode::none;
}

Progress::Progress(Mode mode, std::size_t total, std::size_t skipped) :
    mode_(mode), total_(total), skipped_(skipped) {}

void Progress::update(std::size_t finished, std::size_t failed, bool final) {
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

void print_resuming(Progress::Mode mode, std::size_t rows, std::size_t skipped, std::size_t retried,
                    std::size_t attached) {
  if ((skipped == 0 && retried == 0 && attached == 0) || mode == Progress::Mode::none) return;
  std::fprintf(stderr, "batch: resuming: %zu of %zu rows already done", skipped, rows);
  if (retried > 0) std::fprintf(stderr, ", %zu that did not complete to run again", retried);
  if (attached > 0) std::fprintf(stderr, ", following %zu jobs submitted before", attached);
  std::fprintf(stderr, "\n");
}

void Summary::print(bool as_json) const {
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
    if (not_done() > 0) std::printf("not done:    %zu (run the same command again to resume)\n", not_done());
    std::printf("wall:        %.2f s\n", wall_s);
    std::printf("throughput:  %.1f rows/s\n", rows_per_s());
    std::printf("cost:        $%.9f (jobs of this run)\n", cost_usd);
  }
  std::fflush(stdout);
}

} // namespace tandem::cli::batch
