// The held-out digits split through the gateway, batched and one by one, must score >= 0.95.
#include "harness.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace tandem::testing {
namespace {

namespace json = boost::json;

std::vector<std::int64_t> labels_of(const std::string& body) {
  auto doc = json::parse(body);
  std::vector<std::int64_t> labels;
  for (const auto& out : doc.at("outputs").as_array()) {
    if (out.at("name").as_string() != "label") continue;
    for (const auto& v : out.at("data").as_array()) labels.push_back(v.as_int64());
  }
  return labels;
}

double accuracy(const std::vector<DigitRow>& rows, const std::vector<std::int64_t>& predicted) {
  std::size_t correct = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) correct += predicted.at(i) == rows[i].label ? 1 : 0;
  return static_cast<double>(correct) / static_cast<double>(rows.size());
}

TEST(Accuracy, HeldOutSetThroughTheGatewayBatchedAndOneByOne) {
  auto rows = load_heldout();
  ASSERT_GT(rows.size(), 300u);
  ServerProcess server(digits_endpoint(2));
  auto c = server.client();

  auto batched = c.post("/v2/models/digits/infer", infer_body(rows, 0, rows.size()));
  ASSERT_EQ(batched.status, 200) << batched.body << server.logs();
  auto batch_labels = labels_of(batched.body);
  ASSERT_EQ(batch_labels.size(), rows.size());
  double batch_accuracy = accuracy(rows, batch_labels);

  std::vector<std::int64_t> single_labels;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto res = c.post("/v2/models/digits/infer", infer_body(rows, i, 1));
    ASSERT_EQ(res.status, 200) << res.body;
    auto l = labels_of(res.body);
    ASSERT_EQ(l.size(), 1u);
    single_labels.push_back(l[0]);
  }
  double single_accuracy = accuracy(rows, single_labels);

  EXPECT_GE(batch_accuracy, 0.95);
  EXPECT_GE(single_accuracy, 0.95);
  EXPECT_EQ(batch_labels, single_labels) << "batching must not change predictions";
  RecordProperty("batched_accuracy", std::to_string(batch_accuracy));
  RecordProperty("single_accuracy", std::to_string(single_accuracy));
  std::printf("held-out accuracy: batched %.4f, one by one %.4f over %zu rows\n", batch_accuracy,
              single_accuracy, rows.size());
}

} // namespace
} // namespace tandem::testing
