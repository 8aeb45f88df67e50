#pragma once
// The output of `tandem batch` (docs/batch.md#the-output-file): one result line per finished
// row, appended in completion order, and the OUTPUT.jobs journal of the jobs submitted. What an
// existing output and journal hold is what a resumed run has left to do.
#include "cli/batch_rows.hpp"
#include "base/status.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace tandem::cli::batch {

/// A row that is not done yet.
struct Task {
  const Row* row = nullptr; // one of the rows given to plan_resume
  std::string attach_id;    // a job submitted by an earlier run and never recorded: follow it
};

struct Resume {
  std::vector<Task> tasks;  // in input order
  std::size_t skipped = 0;  // rows with a COMPLETED result line already
  std::size_t retried = 0;  // rows with a result line that is not COMPLETED: run again
  std::size_t attached = 0; // rows whose job, submitted before, is followed
  std::size_t foreign = 0;  // rows with result lines that are not in the input
};

/// Reads the result lines of `output` and the journal (either may be missing; a torn last line
/// is cut off each file) and says which of `rows` are still to run. The tasks point into
/// `rows`, which must outlive them. Fails on an output line that is not a result line.
Result<Resume> plan_resume(const std::vector<Row>& rows, const std::string& output,
                           const std::string& journal);

/// The result line of input row `row` (without "\n") from its job's final status object, which
/// has a string "status": doubles are written in their shortest round-trip form.
std::string result_line(std::size_t row, const boost::json::object& status);

/// Appends result lines to the output and "ROW JOBID" lines to the journal; each line is written
/// whole and flushed, so that a killed run leaves at most one torn last line. Any thread.
class ResultWriter {
public:
  ResultWriter() = default;
  ~ResultWriter();
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;

  /// Opens both files for appending; once, before any record_*.
  Status open(const std::string& output, const std::string& journal);
  /// False when the line could not be written.
  bool record_submit(std::size_t row, const std::string& id);
  bool record_result(const std::string& line);
  /// Takes the lock for good: no line can start (and be torn) while the process exits.
  void close_for_exit();

private:
  bool write(std::FILE* file, const std::string& line);
  std::mutex mutex_;
  std::FILE* out_ = nullptr;
  std::FILE* journal_ = nullptr;
  bool closed_ = false;
};

} // namespace tandem::cli::batch
