// Dynamic batching in the reference worker, against the real binary and the real `deep` model:
// answers with batching equal answers without, batches really form under concurrency, a lone
// request waits only the queue delay, bad requests fail alone, and a full queue answers 503.
#include "harness.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace tandem::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const std::filesystem::path kDeep = source_dir() / "models" / "deep";
const std::string kInfer = "/v2/models/deep/infer";

/// `tandem worker` as a child process on port 0; the destructor stops it.
class WorkerProcess {
public:
  explicit WorkerProcess(const std::vector<std::string>& extra_args,
                         const std::filesystem::path& model = kDeep) {
    dir_ = make_temp_dir();
    const std::string out_path = (dir_ / "out").string();
    const std::string log_path = (dir_ / "log").string();
    std::vector<std::string> args = {tandem_binary().string(), "worker",   "--model",
                                     model.string(),           "--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out_fd >= 0) ::dup2(out_fd, STDOUT_FILENO);
      if (log_fd >= 0) ::dup2(log_fd, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    std::string output;
    wait_until(
        [&] {
          output = read(out_path);
          if (output.find('\n') != std::string::npos) return true;
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            return true;
          }
          return false;
        },
        20s);
    const std::string prefix = "listening on http://";
    auto at = output.find(prefix);
    if (at == std::string::npos) return;
    auto address = output.substr(at + prefix.size());
    address = address.substr(0, address.find('\n'));
    port_ = static_cast<unsigned short>(std::stoi(address.substr(address.rfind(':') + 1)));
  }
  ~WorkerProcess() {
    if (!exited_ && pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      if (!wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 10s)) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  [[nodiscard]] bool serving() const { return port_ != 0; }
  [[nodiscard]] std::optional<int> exit_code() const { return exit_code_; }
  [[nodiscard]] HttpClient client() const { return HttpClient("127.0.0.1", port_); }
  [[nodiscard]] std::string logs() const { return read((dir_ / "log").string()); }
  [[nodiscard]] double metric(const std::string& sample) const {
    auto text = client().get("/metrics").body;
    return metric_value(text, sample).value_or(-1);
  }

private:
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::optional<int> exit_code_;
  unsigned short port_ = 0;
};

struct Query {
  std::string body;
  std::int64_t rows = 0;
  bool label_only = false;
};

// Mixed batch sizes (1-4 rows) and output selections, deterministic.
std::vector<Query> make_queries(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> value(-2.0f, 2.0f);
  std::vector<Query> queries;
  for (std::size_t i = 0; i < count; ++i) {
    Query q;
    q.rows = 1 + static_cast<std::int64_t>(rng() % 4);
    q.label_only = rng() % 3 == 0;
    json::array data;
    for (std::int64_t v = 0; v < q.rows * 64; ++v) data.push_back(static_cast<double>(value(rng)));
    json::object input{
        {"name", "features"}, {"datatype", "FP32"}, {"shape", json::array{q.rows, 64}}, {"data", data}};
    json::object body{{"id", "q" + std::to_string(i)}, {"inputs", json::array{input}}};
    if (q.label_only) body["outputs"] = json::array{json::object{{"name", "label"}}};
    q.body = json::serialize(body);
    queries.push_back(std::move(q));
  }
  return queries;
}

// Answers compare equal when ids, names, shapes and integer values agree exactly and floats
// within FP tolerance (a batched matrix product may sum in another order than a single row).
void expect_same_answer(const std::string& expected_body, const std::string& actual_body,
                        const std::string& what) {
  auto expected = json::parse(expected_body).as_object();
  auto actual = json::parse(actual_body).as_object();
  EXPECT_EQ(expected.at("id"), actual.at("id")) << what;
  const auto& eo = expected.at("outputs").as_array();
  const auto& ao = actual.at("outputs").as_array();
  ASSERT_EQ(eo.size(), ao.size()) << what;
  for (std::size_t o = 0; o < eo.size(); ++o) {
    const auto& e = eo[o].as_object();
    const auto& a = ao[o].as_object();
    EXPECT_EQ(e.at("name"), a.at("name")) << what;
    EXPECT_EQ(e.at("datatype"), a.at("datatype")) << what;
    EXPECT_EQ(e.at("shape"), a.at("shape")) << what;
    const auto& ev = e.at("data").as_array();
    const auto& av = a.at("data").as_array();
    ASSERT_EQ(ev.size(), av.size()) << what;
    for (std::size_t i = 0; i < ev.size(); ++i) {
      if (e.at("datatype") == "INT64") {
        EXPECT_EQ(ev[i].to_number<std::int64_t>(), av[i].to_number<std::int64_t>())
            << what << " [" << i << "]";
      } else {
        const double x = ev[i].to_number<double>();
        const double y = av[i].to_number<double>();
        EXPECT_LE(std::abs(x - y), 1e-6 + 1e-4 * std::abs(x)) << what << " [" << i << "]";
      }
    }
  }
}

// Sends every query from `clients` threads at once (query i goes to thread i % clients);
// returns (status, body) per query.
std::vector<HttpResult> send_concurrently(const WorkerProcess& worker, const std::vector<std::string>& bodies,
                                          std::size_t clients) {
  std::vector<HttpResult> results(bodies.size());
  std::atomic<std::size_t> ready{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < clients; ++t)
    threads.emplace_back([&, t] {
      auto client = worker.client();
      client.get("/v2/health/ready"); // connect before the burst
      ++ready;
      while (ready.load() < clients) std::this_thread::yield();
      for (std::size_t i = t; i < bodies.size(); i += clients) results[i] = client.post(kInfer, bodies[i]);
    });
  for (auto& th : threads) th.join();
  return results;
}

const std::string kBatchRowsLe1 = R"(tandem_worker_batch_rows_bucket{model="deep",le="1"})";
const std::string kBatchRowsCount = R"(tandem_worker_batch_rows_count{model="deep"})";
const std::string kBatchRowsSum = R"(tandem_worker_batch_rows_sum{model="deep"})";

TEST(DynamicBatching, AnswersEqualUnbatchedAnswersUnderConcurrency) {
  WorkerProcess plain({"--batch-max-size", "0"});
  WorkerProcess batched({"--batch-max-size", "32", "--batch-max-queue-delay-us", "2000"});
  ASSERT_TRUE(plain.serving()) << plain.logs();
  ASSERT_TRUE(batched.serving()) << batched.logs();

  const auto queries = make_queries(400, 7);
  std::vector<std::string> bodies;
  for (const auto& q : queries) bodies.push_back(q.body);
  std::vector<std::string> expected;
  auto reference = plain.client();
  for (const auto& body : bodies) {
    auto res = reference.post(kInfer, body);
    ASSERT_EQ(res.status, 200) << res.body;
    expected.push_back(res.body);
  }
  // Without batching the worker makes one engine call per request and no batch metrics.
  EXPECT_EQ(plain.metric(kBatchRowsCount), -1);

  auto results = send_concurrently(batched, bodies, 24);
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_EQ(results[i].status, 200) << i << ": " << results[i].body;
    expect_same_answer(expected[i], results[i].body, "query " + std::to_string(i));
  }
  const double batches = batched.metric(kBatchRowsCount);
  const double single_row_batches = batched.metric(kBatchRowsLe1);
  const double rows = batched.metric(kBatchRowsSum);
  std::int64_t total_rows = 0;
  for (const auto& q : queries) total_rows += q.rows;
  EXPECT_EQ(rows, static_cast<double>(total_rows));
  EXPECT_EQ(batched.metric(R"(tandem_worker_batches_total{model="deep"})"), batches);
  // Batches formed: fewer engine calls than requests, and some of more than one row.
  EXPECT_LT(batches, static_cast<double>(queries.size()));
  EXPECT_GT(batches - single_row_batches, 0);
  EXPECT_EQ(batched.metric(R"(tandem_worker_batch_queue_delay_seconds_count{model="deep"})"),
            static_cast<double>(queries.size()));
}

TEST(DynamicBatching, BadRequestsInABurstFailAlone) {
  WorkerProcess batched({"--batch-max-size", "32", "--batch-max-queue-delay-us", "2000"});
  WorkerProcess plain({"--batch-max-size", "0"});
  ASSERT_TRUE(batched.serving()) << batched.logs();
  ASSERT_TRUE(plain.serving()) << plain.logs();
  const auto queries = make_queries(120, 11);
  std::vector<std::string> bodies;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    if (i % 5 == 2)
      bodies.push_back(R"({"inputs":[{"name":"features","datatype":"FP32","shape":[1,63],"data":[1]}]})");
    else if (i % 5 == 4)
      bodies.push_back(R"({"inputs": [)");
    else
      bodies.push_back(queries[i].body);
  }
  auto results = send_concurrently(batched, bodies, 16);
  auto reference = plain.client();
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (i % 5 == 2) {
      EXPECT_EQ(results[i].status, 400) << results[i].body;
      EXPECT_NE(results[i].body.find("inputs[0].shape"), std::string::npos) << results[i].body;
    } else if (i % 5 == 4) {
      EXPECT_EQ(results[i].status, 400) << results[i].body;
    } else {
      ASSERT_EQ(results[i].status, 200) << i << ": " << results[i].body;
      expect_same_answer(reference.post(kInfer, bodies[i]).body, results[i].body,
                         "query " + std::to_string(i));
    }
  }
  EXPECT_GT(batched.metric(kBatchRowsCount) - batched.metric(kBatchRowsLe1), 0);
}

TEST(DynamicBatching, ALoneRequestWaitsOnlyTheQueueDelay) {
  // 50 ms: long against inference (well under 1 ms) and scheduling noise, short for a test.
  WorkerProcess batched({"--batch-max-size", "32", "--batch-max-queue-delay-us", "50000"});
  ASSERT_TRUE(batched.serving()) << batched.logs();
  const auto queries = make_queries(5, 3);
  auto client = batched.client();
  std::vector<double> latencies_ms;
  for (const auto& q : queries) {
    const auto started = std::chrono::steady_clock::now();
    auto res = client.post(kInfer, q.body);
    latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
    ASSERT_EQ(res.status, 200) << res.body;
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  EXPECT_GE(latencies_ms.front(), 50.0);
  // Median: the queue delay plus inference and a loaded machine's scheduling, never a full batch.
  EXPECT_LT(latencies_ms[latencies_ms.size() / 2], 50.0 + 100.0);
  EXPECT_EQ(batched.metric(kBatchRowsCount), 5);
  const double waited_s = batched.metric(R"(tandem_worker_batch_queue_delay_seconds_sum{model="deep"})");
  EXPECT_GE(waited_s, 5 * 0.050);
  EXPECT_LT(waited_s, 5 * 0.150);
}

TEST(DynamicBatching, AFullQueueAnswers503) {
  WorkerProcess batched(
      {"--batch-max-size", "32", "--batch-max-queue-delay-us", "1000000", "--batch-max-queue-size", "2"});
  ASSERT_TRUE(batched.serving()) << batched.logs();
  const auto queries = make_queries(3, 5);
  std::vector<HttpResult> waiting(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] { waiting[i] = batched.client().post(kInfer, queries[i].body); });
  const std::string queued = R"(tandem_worker_batch_queue_requests{model="deep"})";
  ASSERT_TRUE(wait_until([&] { return batched.metric(queued) == 2; }, 10s));
  auto refused = batched.client().post(kInfer, queries[2].body);
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("max_queue_size"), std::string::npos) << refused.body;
  for (auto& t : threads) t.join();
  EXPECT_EQ(waiting[0].status, 200) << waiting[0].body;
  EXPECT_EQ(waiting[1].status, 200) << waiting[1].body;
  EXPECT_EQ(batched.metric(R"(tandem_worker_batch_queue_rejected_total{model="deep"})"), 1);
  EXPECT_EQ(batched.metric(R"(tandem_worker_inferences_total{model="deep",code="503"})"), 1);
}

TEST(DynamicBatching, InvalidSettingsStopTheWorkerWithAClearError) {
  auto too_big = run_tandem({"worker", "--model", kDeep.string(), "--batch-max-size", "1000"}, "");
  EXPECT_EQ(too_big.exit_code, 2);
  EXPECT_NE(too_big.err.find("--batch-max-size: 1000 exceeds the model's max_batch_size 256"),
            std::string::npos)
      << too_big.err;

  const auto dir = make_temp_dir();
  std::filesystem::copy_file(kDeep / "model.onnx", dir / "model.onnx");
  std::ifstream in(kDeep / "tandem-model.yaml");
  std::stringstream manifest;
  manifest << in.rdbuf();
  std::string text = manifest.str();
  const std::string from = "max_queue_delay_us:";
  text.replace(text.find(from), from.size(), "max_queue_delay:");
  std::ofstream(dir / "tandem-model.yaml") << text;
  auto misspelt = run_tandem({"worker", "--model", dir.string()}, "");
  EXPECT_EQ(misspelt.exit_code, 2);
  EXPECT_NE(misspelt.err.find("batching.max_queue_delay: unknown key"), std::string::npos) << misspelt.err;
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace tandem::testing
