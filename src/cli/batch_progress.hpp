#pragma once
// What `tandem batch` shows: while it runs, a bar on a terminal or a line every 2 s (stderr);
// at the end, the summary as text or --json (stdout).
#include <chrono>
#include <cstddef>
#include <map>
#include <string>

namespace tandem::cli::batch {

class Progress {
public:
  enum class Mode { bar, lines, none };
  /// The mode for a --progress value: "auto" is a bar when stderr is a terminal, else lines.
  static Mode mode_for(const std::string& option);

  /// `total` rows of which `skipped` were done before; the rate counts from now.
  Progress(Mode mode, std::size_t total, std::size_t skipped);

  /// Draws when due: the bar at most 10 times a second, a line every 2 s; `final` draws now and
  /// ends the bar's line. One thread only (the one that runs the batch).
  void update(std::size_t finished, std::size_t failed, bool final = false);

private:
  Mode mode_;
  std::size_t total_;
  std::size_t skipped_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw_ = std::chrono::steady_clock::now();
};

/// "batch: resuming: ..." on stderr when an earlier run left anything behind, unless `mode` is
/// none.
void print_resuming(Progress::Mode mode, std::size_t rows, std::size_t skipped, std::size_t retried,
                    std::size_t attached);

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
  /// On stdout, flushed: aligned text lines, or one JSON object.
  void print(bool as_json) const;
};

} // namespace tandem::cli::batch
