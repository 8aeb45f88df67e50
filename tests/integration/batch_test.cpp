// `tandem batch`: a JSONL file of digits rows through the job API, resumed after a kill, with
// its usage errors and progress lines.
#include "harness.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace tandem::testing {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string url_of(const ServerProcess& server) {
  return "http://" + server.host() + ":" + std::to_string(server.port());
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// `count` rows, row i being held-out row i % 359 as a one-row v2 request.
void write_rows(const fs::path& path, const std::vector<DigitRow>& heldout, std::size_t count) {
  std::ofstream out(path);
  for (std::size_t i = 0; i < count; ++i) out << infer_body(heldout, i % heldout.size(), 1) << '\n';
}

/// The complete lines of a result file (a torn last line is left out).
std::vector<json::object> read_results(const fs::path& path) {
  const std::string text = read_text(path);
  std::vector<json::object> lines;
  std::size_t begin = 0;
  for (std::size_t end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
    lines.push_back(json::parse(std::string_view(text).substr(begin, end - begin)).as_object());
  return lines;
}

std::size_t complete_lines(const fs::path& path) {
  const std::string text = read_text(path);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

/// The "label" output of a v2 response for one row.
std::int64_t label_of(const json::value& response) {
  for (const auto& out : response.at("outputs").as_array())
    if (out.at("name").as_string() == "label") return out.at("data").as_array().at(0).as_int64();
  throw std::runtime_error("no label output in " + json::serialize(response));
}

/// The label the model gives each held-out row, asked synchronously one row at a time.
std::vector<std::int64_t> sync_labels(ServerProcess& server, const std::vector<DigitRow>& heldout) {
  auto client = server.client();
  std::vector<std::int64_t> labels;
  for (std::size_t i = 0; i < heldout.size(); ++i) {
    auto res = client.post("/v2/models/digits/infer", infer_body(heldout, i, 1));
    if (res.status != 200)
      throw std::runtime_error("infer: HTTP " + std::to_string(res.status) + " " + res.body);
    labels.push_back(label_of(json::parse(res.body)));
  }
  return labels;
}

json::object health(ServerProcess& server) {
  auto res = server.client().get("/runpod/v2/digits/health");
  if (res.status != 200)
    throw std::runtime_error("health: HTTP " + std::to_string(res.status) + " " + res.body);
  return json::parse(res.body).at("jobs").as_object();
}

std::int64_t count_of(const json::object& jobs, const char* name) {
  return jobs.at(name).to_number<std::int64_t>();
}

/// The value after "NAME:" in the text summary.
std::optional<std::size_t> summary_value(const std::string& out, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("(^|\n)" + name + ":\\s+([0-9]+)"))) return std::nullopt;
  return std::stoul(m[2].str());
}

/// What each test starts from: the held-out rows, a digits server with `replicas` workers, all
/// ready, and a fresh directory that goes with the setup.
struct BatchSetup {
  explicit BatchSetup(int replicas) : server(digits_endpoint(replicas)) {
    if (server.wait_ready(static_cast<std::size_t>(replicas))) return;
    fs::remove_all(dir); // the destructor does not run for a constructor that throws
    throw std::runtime_error("the workers did not get ready:\n" + server.logs());
  }
  ~BatchSetup() { fs::remove_all(dir); }
  BatchSetup(const BatchSetup&) = delete;
  BatchSetup& operator=(const BatchSetup&) = delete;

  [[nodiscard]] std::string url() const { return url_of(server); }
  /// `batch digits` from rows.jsonl into out.jsonl of the directory, then `extra`.
  [[nodiscard]] std::vector<std::string> args(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> args{"batch",    "digits",
                                  "--input",  (dir / "rows.jsonl").string(),
                                  "--output", (dir / "out.jsonl").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  std::vector<DigitRow> heldout = load_heldout();
  ServerProcess server;
  fs::path dir = make_temp_dir();
};

TEST(Batch, TenThousandRowsCompleteWithTheModelsOwnAnswers) {
  BatchSetup env(2);
  const auto& heldout = env.heldout;
  ASSERT_EQ(heldout.size(), 359u);
  const auto expected = sync_labels(env.server, heldout);

  constexpr std::size_t rows = 10'000;
  write_rows(env.dir / "rows.jsonl", heldout, rows);
  const auto started = std::chrono::steady_clock::now();
  auto run = run_tandem(env.args({"--parallel", "16"}), env.url());
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out << env.server.logs();
  EXPECT_EQ(summary_value(run.out, "rows"), rows) << run.out;
  EXPECT_EQ(summary_value(run.out, "completed"), rows) << run.out;
  EXPECT_FALSE(fs::exists(env.dir / "out.jsonl.jobs")) << "the journal goes once every row is done";

  const auto results = read_results(env.dir / "out.jsonl");
  ASSERT_EQ(results.size(), rows);
  std::set<std::int64_t> seen;
  std::set<std::string> ids;
  std::size_t correct = 0;
  for (const auto& line : results) {
    const auto row = line.at("row").as_int64();
    ASSERT_TRUE(row >= 0 && row < static_cast<std::int64_t>(rows)) << json::serialize(line);
    ASSERT_TRUE(seen.insert(row).second) << "row " << row << " twice";
    ASSERT_EQ(line.at("status").as_string(), "COMPLETED") << json::serialize(line);
    ids.insert(std::string(line.at("id").as_string()));
    const auto heldout_row = static_cast<std::size_t>(row) % heldout.size();
    const auto label = label_of(line.at("output"));
    ASSERT_EQ(label, expected[heldout_row]) << "row " << row << " (held-out row " << heldout_row << ")";
    correct += label == heldout[heldout_row].label ? 1 : 0;
  }
  EXPECT_EQ(ids.size(), rows) << "one job per row";
  const double accuracy = static_cast<double>(correct) / static_cast<double>(rows);
  EXPECT_GE(accuracy, 0.97);
  std::printf("batch: %zu rows in %.2f s (%.0f rows/s), accuracy %.4f\n", rows, wall_s,
              static_cast<double>(rows) / wall_s, accuracy);
}

TEST(Batch, ResumesAfterSigkillWithoutLosingOrRepeatingRows) {
  BatchSetup env(2);
  const auto& dir = env.dir;
  constexpr std::size_t rows = 10'000;
  constexpr std::size_t parallel = 16;
  write_rows(dir / "rows.jsonl", env.heldout, rows);
  const auto args = env.args({"--parallel", std::to_string(parallel)});

  const pid_t first = spawn_tandem(args, env.url(), dir / "first.out", dir / "first.err");
  ASSERT_TRUE(wait_until([&] { return complete_lines(dir / "out.jsonl") >= rows / 2; }, 60s))
      << read_text(dir / "first.err");
  ::kill(first, SIGKILL); // no chance to flush or clean up: the harsh case
  ASSERT_EQ(wait_exit(first, 10s), 128 + SIGKILL);
  const auto before = read_results(dir / "out.jsonl");
  ASSERT_LT(before.size(), rows) << "the first run was to be killed halfway";
  std::set<std::int64_t> done_before;
  for (const auto& line : before)
    if (line.at("status").as_string() == "COMPLETED") done_before.insert(line.at("row").as_int64());
  EXPECT_TRUE(fs::exists(dir / "out.jsonl.jobs")) << "the journal of submitted jobs survives a kill";

  auto second = run_tandem(args, env.url());
  ASSERT_EQ(second.exit_code, 0) << second.err << second.out << env.server.logs();
  EXPECT_EQ(summary_value(second.out, "skipped"), done_before.size()) << second.out;
  EXPECT_NE(
      second.err.find("resuming: " + std::to_string(done_before.size()) + " of " + std::to_string(rows)),
      std::string::npos)
      << second.err;
  EXPECT_FALSE(fs::exists(dir / "out.jsonl.jobs"));

  // Every row exactly once COMPLETED; a row appears twice only after a line that was not.
  std::map<std::int64_t, std::vector<std::string>> statuses;
  for (const auto& line : read_results(dir / "out.jsonl"))
    statuses[line.at("row").as_int64()].emplace_back(line.at("status").as_string());
  ASSERT_EQ(statuses.size(), rows);
  for (const auto& [row, seen] : statuses) {
    ASSERT_EQ(std::count(seen.begin(), seen.end(), "COMPLETED"), 1) << "row " << row;
    ASSERT_EQ(seen.back(), "COMPLETED") << "row " << row;
  }

  // Jobs the killed run had submitted were followed, not submitted again: only the ones still
  // inside a runsync call at the kill (their ids never reached the client) ran twice.
  ASSERT_TRUE(wait_until(
      [&] {
        const auto jobs = health(env.server);
        return count_of(jobs, "inQueue") + count_of(jobs, "inProgress") == 0;
      },
      30s));
  const auto jobs = health(env.server);
  const auto submitted = count_of(jobs, "completed") + count_of(jobs, "failed");
  EXPECT_GE(submitted, static_cast<std::int64_t>(rows));
  EXPECT_LE(submitted, static_cast<std::int64_t>(rows + parallel));
  std::printf("batch resume: killed after %zu rows, %lld jobs for %zu rows\n", before.size(),
              static_cast<long long>(submitted), rows);
}

TEST(Batch, SigintStopsSubmittingFlushesAndExits130) {
  BatchSetup env(2);
  const auto& dir = env.dir;
  constexpr std::size_t rows = 10'000;
  write_rows(dir / "rows.jsonl", env.heldout, rows);
  const pid_t batch =
      spawn_tandem(env.args({"--progress", "lines"}), env.url(), dir / "batch.out", dir / "batch.err");
  ASSERT_TRUE(wait_until([&] { return complete_lines(dir / "out.jsonl") >= 1000; }, 60s))
      << read_text(dir / "batch.err");
  ::kill(batch, SIGINT);
  // The jobs in flight get 2 s to finish; a clean stop is much faster than that.
  ASSERT_EQ(wait_exit(batch, 10s), 130) << read_text(dir / "batch.err");
  const std::string out = read_text(dir / "batch.out");
  const auto written = read_results(dir / "out.jsonl");
  EXPECT_LT(written.size(), rows);
  EXPECT_EQ(summary_value(out, "completed"), written.size()) << out;
  EXPECT_EQ(summary_value(out, "not done"), rows - written.size()) << out;
  EXPECT_EQ(read_text(dir / "out.jsonl").back(), '\n') << "no torn line after a clean stop";
  EXPECT_NE(read_text(dir / "batch.err").find("interrupted"), std::string::npos);
}

TEST(Batch, RejectsBadInputUnknownEndpointAndMissingFile) {
  BatchSetup env(1);
  const auto& heldout = env.heldout;
  const auto& dir = env.dir;
  const auto url = env.url();
  const auto out = (dir / "out.jsonl").string();
  {
    std::ofstream bad(dir / "bad.jsonl");
    bad << infer_body(heldout, 0, 1) << "\n\n"
        << "{\"inputs\": [oops\n"
        << infer_body(heldout, 1, 1) << "\n";
  }
  auto bad = run_tandem({"batch", "digits", "--input", (dir / "bad.jsonl").string(), "--output", out}, url);
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("line 3"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(out)) << "nothing is submitted before the whole file is valid";

  {
    std::ofstream array(dir / "array.jsonl");
    array << "[1, 2, 3]\n";
  }
  auto not_object =
      run_tandem({"batch", "digits", "--input", (dir / "array.jsonl").string(), "--output", out}, url);
  EXPECT_EQ(not_object.exit_code, 2) << not_object.err;
  EXPECT_NE(not_object.err.find("line 1: expected a JSON object"), std::string::npos) << not_object.err;

  write_rows(dir / "rows.jsonl", heldout, 3);
  auto unknown = run_tandem(
      {"batch", "no-such-endpoint", "--input", (dir / "rows.jsonl").string(), "--output", out}, url);
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("endpoint \"no-such-endpoint\" not found"), std::string::npos) << unknown.err;

  auto missing =
      run_tandem({"batch", "digits", "--input", (dir / "missing.jsonl").string(), "--output", out}, url);
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("missing.jsonl"), std::string::npos) << missing.err;

  auto bad_option = run_tandem(
      {"batch", "digits", "--input", (dir / "rows.jsonl").string(), "--output", out, "--parallel", "0"}, url);
  EXPECT_EQ(bad_option.exit_code, 2) << bad_option.err;
  EXPECT_NE(bad_option.err.find("--parallel"), std::string::npos) << bad_option.err;
}

TEST(Batch, ProgressLinesAndSummaryWhenNotATerminal) {
  BatchSetup env(1);
  const auto& heldout = env.heldout;
  const auto& dir = env.dir;
  // Blank lines are skipped but still count for "row" (the physical line); a line with "input"
  // is a job body already.
  std::set<std::int64_t> data_lines;
  {
    std::ofstream in(dir / "rows.jsonl");
    for (std::size_t line = 0; line < 60; ++line) {
      if (line % 10 == 4) {
        in << "\n";
        continue;
      }
      data_lines.insert(static_cast<std::int64_t>(line));
      if (line == 7)
        in << R"({"input": )" << infer_body(heldout, line, 1) << R"(, "policy": {"ttl": 60000}})"
           << "\n";
      else
        in << infer_body(heldout, line, 1) << "\n";
    }
  }
  auto run = run_tandem(env.args({"--parallel", "4", "--progress", "lines"}), env.url());
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  EXPECT_NE(run.err.find("batch: 54/54 rows (100%)"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find('\r'), std::string::npos) << "no bar redraws off a terminal";
  EXPECT_EQ(summary_value(run.out, "rows"), 54u) << run.out;
  EXPECT_EQ(summary_value(run.out, "failed"), 0u) << run.out;
  std::set<std::int64_t> rows;
  for (const auto& line : read_results(dir / "out.jsonl")) {
    rows.insert(line.at("row").as_int64());
    EXPECT_EQ(line.at("status").as_string(), "COMPLETED") << json::serialize(line);
  }
  EXPECT_EQ(rows, data_lines);

  // Run again: nothing left to do, and the summary as JSON says so.
  auto again = run_tandem(env.args({"--json"}), env.url());
  ASSERT_EQ(again.exit_code, 0) << again.err << again.out;
  const auto summary = json::parse(again.out).as_object();
  EXPECT_EQ(summary.at("rows").as_int64(), 54);
  EXPECT_EQ(summary.at("skipped").as_int64(), 54);
  EXPECT_EQ(summary.at("completed").as_int64(), 0);
  EXPECT_NE(again.err.find("resuming: 54 of 54 rows already done"), std::string::npos) << again.err;
}

} // namespace
} // namespace tandem::testing
