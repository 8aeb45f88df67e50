#pragma once
// The input of `tandem batch` (docs/batch.md#the-input-file): a JSONL file that is read and
// checked whole before anything is submitted, each row becoming the body of a job. Also the
// whole-file and line reading that the output file shares.
#include "base/status.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::cli::batch {

struct Row {
  std::size_t line = 0; // 0-based physical line of the input: the output's "row"
  std::string body;     // the job body to POST
};

/// Every non-blank line of `input` as a job body: a line with "input" is a job body already,
/// anything else a v2 inference request that becomes the job's input. `low_priority` sets
/// policy.lowPriority on every body. Any bad line fails the whole file, naming the line.
Result<std::vector<Row>> read_rows(const std::string& input, bool low_priority);

/// The whole file; an error when it cannot be read or is larger than `limit_bytes`.
Result<std::string> read_file(const std::filesystem::path& path, std::uintmax_t limit_bytes);

/// Splits into lines without their "\n" (and "\r"); a last line without "\n" is included. The
/// views point into `text`, which must outlive them.
std::vector<std::string_view> split_lines(std::string_view text);

/// True for a line of nothing but spaces, tabs and "\r".
bool is_blank(std::string_view line);

} // namespace tandem::cli::batch
