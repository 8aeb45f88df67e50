// The output file and the journal of `tandem batch`: result lines, appending them, and reading
// them back to resume.
#include "cli/batch_results.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

namespace tandem::cli::batch {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

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

} // namespace

Result<Resume> plan_resume(const std::vector<Row>& rows, const std::string& output,
                           const std::string& journal) {
  auto recorded = read_recorded(output);
  if (!recorded) return recorded.error();
  auto jobs = read_journal(journal);
  if (!jobs) return jobs.error();

  Resume resume;
  std::size_t input_rows_recorded = 0;
  for (const auto& row : rows) {
    const auto seen = recorded->find(row.line);
    if (seen != recorded->end()) ++input_rows_recorded;
    if (seen != recorded->end() && seen->second.status == "COMPLETED") {
      ++resume.skipped;
      continue;
    }
    Task task{&row, {}};
    // A job submitted but never recorded (the run was killed while it ran) is followed, not
    // submitted again; one that was recorded and not completed is run again.
    if (const auto job = jobs->find(row.line);
        job != jobs->end() && (seen == recorded->end() || seen->second.id != job->second)) {
      task.attach_id = job->second;
      ++resume.attached;
    } else if (seen != recorded->end()) {
      ++resume.retried;
    }
    resume.tasks.push_back(std::move(task));
  }
  resume.foreign = recorded->size() - input_rows_recorded;
  return resume;
}

std::string result_line(std::size_t row, const json::object& status) {
  json::object line;
  line["row"] = row;
  const json::value* id = status.if_contains("id");
  line["id"] = id ? *id : json::value(nullptr);
  line["status"] = status.at("status");
  for (const char* field : {"output", "error", "delayTime", "executionTime", "cost_usd"})
    if (const auto* v = status.if_contains(field)) line[field] = *v;
  std::string text;
  append_json(text, line);
  return text;
}

ResultWriter::~ResultWriter() {
  if (out_) std::fclose(out_);
  if (journal_) std::fclose(journal_);
}

Status ResultWriter::open(const std::string& output, const std::string& journal) {
  out_ = std::fopen(output.c_str(), "a");
  if (!out_) return make_error(ErrorCode::invalid_request, "cannot open " + output + " for appending");
  journal_ = std::fopen(journal.c_str(), "a");
  if (!journal_) return make_error(ErrorCode::invalid_request, "cannot open " + journal + " for appending");
  return Ok{};
}

bool ResultWriter::record_submit(std::size_t row, const std::string& id) {
  return write(journal_, std::to_string(row) + " " + id + "\n");
}

bool ResultWriter::record_result(const std::string& line) {
  return write(out_, line + "\n");
}

void ResultWriter::close_for_exit() {
  mutex_.lock();
  closed_ = true;
  if (out_) std::fflush(out_);
  if (journal_) std::fflush(journal_);
}

bool ResultWriter::write(std::FILE* file, const std::string& line) {
  std::lock_guard lock(mutex_);
  if (closed_) return true;
  return std::fwrite(line.data(), 1, line.size(), file) == line.size() && std::fflush(file) == 0;
}

} // namespace tandem::cli::batch
