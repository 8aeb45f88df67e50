// Dynamic batching: the pure parts (keys, merging and splitting rows), the manifest's
// `batching:` section, and the queue driven by a real io_context with a row-wise engine.
#include "worker/batcher.hpp"

#include "model/model_manifest.hpp"

#include <gtest/gtest.h>

#include <boost/asio.hpp>

#include <memory>
#include <string>
#include <vector>

namespace tandem::worker {
namespace {

namespace asio = boost::asio;

const TensorSpec kSpec{"x", DataType::FP32, {-1, 2}};

// A request of `rows` rows of 2 values: row r of request `tag` is {tag, r}.
v2::DecodedRequest make_request(float tag, std::int64_t rows, std::vector<std::string> outputs = {}) {
  v2::DecodedRequest r;
  r.id = "r" + std::to_string(static_cast<int>(tag));
  r.batch_size = rows;
  r.requested_outputs = std::move(outputs);
  v2::DecodedInput in;
  in.name = "x";
  in.spec = &kSpec;
  in.shape = {rows, 2};
  for (std::int64_t i = 0; i < rows; ++i) {
    in.values.push_back(tag);
    in.values.push_back(static_cast<float>(i));
  }
  r.inputs.push_back(std::move(in));
  return r;
}

// Row-wise: "sum" [N] = x0 + x1 and "pair" [N, 2] = x * 10, as a model with a batch dimension.
Result<std::vector<v2::OutputTensor>> rowwise_engine(const v2::DecodedRequest& request,
                                                     const std::vector<std::string>&) {
  const auto& in = request.inputs.at(0);
  v2::OutputTensor sum{"sum", DataType::FP32, {in.shape[0]}, {}};
  v2::OutputTensor pair{"pair", DataType::FP32, {in.shape[0], 2}, {}};
  for (std::int64_t r = 0; r < in.shape[0]; ++r) {
    sum.values.push_back(in.values[2 * r] + in.values[2 * r + 1]);
    pair.values.push_back(in.values[2 * r] * 10.0);
    pair.values.push_back(in.values[2 * r + 1] * 10.0);
  }
  return std::vector<v2::OutputTensor>{sum, pair};
}

TEST(BatchKey, SameForCompatibleRowsDifferentOtherwise) {
  EXPECT_EQ(batch_key(make_request(1, 1)), batch_key(make_request(2, 5)));
  EXPECT_NE(batch_key(make_request(1, 1)), batch_key(make_request(1, 1, {"sum"})));
  EXPECT_NE(batch_key(make_request(1, 1, {"sum", "pair"})), batch_key(make_request(1, 1, {"pair", "sum"})));
  auto wider = make_request(1, 1);
  wider.inputs[0].shape = {1, 3};
  EXPECT_NE(batch_key(make_request(1, 1)), batch_key(wider));
}

TEST(MergeSplit, RoundTripsRowsInOrder) {
  auto a = make_request(1, 2);
  auto b = make_request(2, 1);
  auto c = make_request(3, 3);
  auto merged = merge_rows({&a, &b, &c});
  EXPECT_EQ(merged.batch_size, 6);
  ASSERT_EQ(merged.inputs.size(), 1u);
  EXPECT_EQ(merged.inputs[0].shape, (std::vector<std::int64_t>{6, 2}));
  EXPECT_EQ(merged.inputs[0].values, (std::vector<float>{1, 0, 1, 1, 2, 0, 3, 0, 3, 1, 3, 2}));
  EXPECT_EQ(merged.inputs[0].spec, &kSpec);

  auto outputs = rowwise_engine(merged, {});
  ASSERT_TRUE(outputs);
  auto parts = split_rows(*outputs, {2, 1, 3});
  ASSERT_TRUE(parts) << parts.error().message;
  ASSERT_EQ(parts->size(), 3u);
  // Each part equals what the engine returns for that request alone.
  const std::vector<const v2::DecodedRequest*> singles = {&a, &b, &c};
  for (std::size_t i = 0; i < 3; ++i) {
    auto alone = rowwise_engine(*singles[i], {});
    ASSERT_TRUE(alone);
    ASSERT_EQ((*parts)[i].size(), alone->size());
    for (std::size_t o = 0; o < alone->size(); ++o) {
      EXPECT_EQ((*parts)[i][o].name, (*alone)[o].name);
      EXPECT_EQ((*parts)[i][o].shape, (*alone)[o].shape);
      EXPECT_EQ((*parts)[i][o].values, (*alone)[o].values);
    }
  }
}

TEST(MergeSplit, SplitRejectsAMismatchedRowCount) {
  auto a = make_request(1, 2);
  auto outputs = rowwise_engine(a, {});
  ASSERT_TRUE(outputs);
  auto parts = split_rows(*outputs, {1, 2});
  ASSERT_FALSE(parts);
  EXPECT_NE(parts.error().message.find("\"sum\""), std::string::npos) << parts.error().message;
}

// ---- manifest section -------------------------------------------------------------------------

const std::string kManifestHead = R"(name: m
artifact: model.onnx
inputs:
  - {name: x, datatype: FP32, shape: [-1, 2]}
outputs:
  - {name: y, datatype: FP32, shape: [-1]}
max_batch_size: 64
)";

Result<ModelManifest> parse(const std::string& tail) {
  return parse_model_manifest(kManifestHead + tail, "/tmp", "m.yaml");
}

TEST(ManifestBatching, AbsentMeansOff) {
  auto m = parse("");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_FALSE(m->batching);
}

TEST(ManifestBatching, ParsesTheSection) {
  auto m = parse("batching: {max_batch_size: 16, max_queue_delay_us: 250}\n");
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_TRUE(m->batching);
  EXPECT_EQ(m->batching->max_batch_size, 16);
  EXPECT_EQ(m->batching->max_queue_delay_us, 250);
  EXPECT_EQ(m->batching->max_queue_size, 1024);
  auto sized = parse("batching: {max_batch_size: 16, max_queue_delay_us: 0, max_queue_size: 8}\n");
  ASSERT_TRUE(sized) << sized.error().message;
  EXPECT_EQ(sized->batching->max_queue_size, 8);
}

TEST(ManifestBatching, ErrorsNameTheKey) {
  struct Case {
    std::string tail;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"batching: {max_batch_size: 16, max_queue_delay_us: 10, max_delay: 1}\n",
       "batching.max_delay: unknown key"},
      {"batching: {max_queue_delay_us: 10}\n", "batching.max_batch_size: required"},
      {"batching: {max_batch_size: 16}\n", "batching.max_queue_delay_us: required"},
      {"batching: {max_batch_size: 65, max_queue_delay_us: 10}\n",
       "batching.max_batch_size: expected an integer from 1 to 64"},
      {"batching: {max_batch_size: 0, max_queue_delay_us: 10}\n",
       "batching.max_batch_size: expected an integer"},
      {"batching: {max_batch_size: 8, max_queue_delay_us: -1}\n",
       "batching.max_queue_delay_us: expected an integer"},
      {"batching: {max_batch_size: 8, max_queue_delay_us: 1.5}\n",
       "batching.max_queue_delay_us: expected an integer"},
      {"batching: {max_batch_size: 8, max_queue_delay_us: 10, max_queue_size: 0}\n",
       "batching.max_queue_size"},
      {"batching: 8\n", "batching: expected a map"},
  };
  for (const auto& c : cases) {
    auto m = parse(c.tail);
    ASSERT_FALSE(m) << c.tail;
    EXPECT_NE(m.error().message.find(c.expected), std::string::npos) << c.tail << " -> " << m.error().message;
    EXPECT_NE(m.error().message.find("m.yaml"), std::string::npos) << m.error().message;
  }
  auto no_batch_dim = parse_model_manifest(R"(name: m
artifact: model.onnx
inputs:
  - {name: x, datatype: FP32, shape: [2]}
outputs:
  - {name: y, datatype: FP32, shape: [1]}
batching: {max_batch_size: 4, max_queue_delay_us: 10}
)",
                                           "/tmp", "m.yaml");
  ASSERT_FALSE(no_batch_dim);
  EXPECT_NE(no_batch_dim.error().message.find("batching: needs max_batch_size > 0"), std::string::npos)
      << no_batch_dim.error().message;
}

// ---- the queue --------------------------------------------------------------------------------

struct BatcherFixture : ::testing::Test {
  asio::io_context io;
  MetricsRegistry metrics;
  std::vector<std::int64_t> engine_rows; // rows per engine call, in order
  bool fail_engine = false;

  std::unique_ptr<DynamicBatcher> make(std::int64_t max_rows, std::int64_t delay_us,
                                       std::int64_t queue = 1024) {
    BatchingConfig config{max_rows, delay_us, queue};
    return std::make_unique<DynamicBatcher>(
        io, config,
        [this](const v2::DecodedRequest& r,
               const std::vector<std::string>& requested) -> Result<DynamicBatcher::Outputs> {
          engine_rows.push_back(r.batch_size);
          if (fail_engine) return make_error(ErrorCode::internal, "engine failed");
          return rowwise_engine(r, requested);
        },
        metrics, "m");
  }

  // Submits every request concurrently and runs the loop until all have answered.
  std::vector<Result<DynamicBatcher::Outputs>> run_all(DynamicBatcher& batcher,
                                                       std::vector<v2::DecodedRequest> requests) {
    std::vector<std::optional<Result<DynamicBatcher::Outputs>>> slots(requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i)
      asio::co_spawn(
          io,
          [&, i]() -> asio::awaitable<void> {
            slots[i].emplace(co_await batcher.submit(std::move(requests[i])));
          },
          asio::detached);
    io.run_for(std::chrono::seconds(10));
    std::vector<Result<DynamicBatcher::Outputs>> out;
    for (auto& s : slots) {
      EXPECT_TRUE(s.has_value());
      out.push_back(s ? std::move(*s)
                      : Result<DynamicBatcher::Outputs>(make_error(ErrorCode::internal, "none")));
    }
    return out;
  }
};

TEST_F(BatcherFixture, MergesConcurrentRequestsAndSplitsTheAnswers) {
  auto batcher = make(8, 100'000);
  std::vector<v2::DecodedRequest> requests;
  for (int i = 0; i < 6; ++i) requests.push_back(make_request(static_cast<float>(i), 1 + i % 3));
  auto copies = requests;
  auto results = run_all(*batcher, std::move(requests));
  // Rows 1,2,3,1,2,3 with at most 8 per call: the fifth request makes 9 queued rows, so the first
  // call takes the four that fit (7 rows); the last two (5 rows) wait for the delay.
  ASSERT_EQ(engine_rows.size(), 2u);
  EXPECT_EQ(engine_rows[0], 7);
  EXPECT_EQ(engine_rows[1], 5);
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i]) << results[i].error().message;
    auto alone = rowwise_engine(copies[i], {});
    ASSERT_EQ(results[i]->size(), alone->size());
    for (std::size_t o = 0; o < alone->size(); ++o) EXPECT_EQ((*results[i])[o].values, (*alone)[o].values);
  }
}

TEST_F(BatcherFixture, IncompatibleRequestsGoToSeparateCalls) {
  auto batcher = make(8, 0);
  std::vector<v2::DecodedRequest> requests = {make_request(1, 1), make_request(2, 1, {"sum"}),
                                              make_request(3, 1)};
  auto results = run_all(*batcher, std::move(requests));
  ASSERT_EQ(engine_rows.size(), 2u);
  for (auto& r : results) EXPECT_TRUE(r);
}

TEST_F(BatcherFixture, ALoneRequestRunsAfterTheDelay) {
  auto batcher = make(32, 2000);
  const auto started = std::chrono::steady_clock::now();
  auto results = run_all(*batcher, {make_request(1, 1)});
  const auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(results[0]);
  EXPECT_GE(waited, std::chrono::microseconds(2000));
  EXPECT_LT(waited, std::chrono::milliseconds(500));
  EXPECT_EQ(engine_rows, (std::vector<std::int64_t>{1}));
}

TEST_F(BatcherFixture, AFullQueueRefusesWith503) {
  auto batcher = make(32, 1000, 2);
  auto results = run_all(*batcher, {make_request(1, 1), make_request(2, 1), make_request(3, 1)});
  EXPECT_TRUE(results[0]);
  EXPECT_TRUE(results[1]);
  ASSERT_FALSE(results[2]);
  EXPECT_EQ(http_status(results[2].error().code), 503);
  EXPECT_NE(results[2].error().message.find("max_queue_size"), std::string::npos);
}

TEST_F(BatcherFixture, AnEngineErrorReachesEveryRequestOfTheBatch) {
  auto batcher = make(4, 100'000);
  fail_engine = true;
  auto results = run_all(*batcher, {make_request(1, 2), make_request(2, 2)});
  for (auto& r : results) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "engine failed");
  }
}

TEST_F(BatcherFixture, RecordsBatchMetrics) {
  auto batcher = make(4, 0);
  run_all(*batcher, {make_request(1, 2), make_request(2, 2), make_request(3, 1)});
  const std::string text = metrics.render();
  EXPECT_NE(text.find("tandem_worker_batches_total{model=\"m\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("tandem_worker_batch_rows_count{model=\"m\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("tandem_worker_batch_queue_delay_seconds_count{model=\"m\"} 3"), std::string::npos)
      << text;
}

} // namespace
} // namespace tandem::worker
