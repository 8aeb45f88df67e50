#include "base/status.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace tandem {
namespace {

constexpr ErrorCode kAll[] = {
#define TANDEM_ERROR_LIST(name, http, grpc, what) ErrorCode::name,
    TANDEM_ERROR_CODES(TANDEM_ERROR_LIST)
#undef TANDEM_ERROR_LIST
};

TEST(ErrorCodes, EveryCodeHasAUniqueLabelThatParsesBack) {
  std::set<std::string> labels;
  for (ErrorCode code : kAll) {
    const std::string label(error_label(code));
    EXPECT_TRUE(labels.insert(label).second) << "duplicate label " << label;
    ASSERT_TRUE(parse_error_label(label).has_value()) << label;
    EXPECT_EQ(*parse_error_label(label), code);
    EXPECT_GE(http_status(code), 400);
    EXPECT_LE(http_status(code), 599);
    EXPECT_GT(grpc_status(code), 0) << "no error maps to gRPC OK";
  }
  EXPECT_FALSE(parse_error_label("timeout").has_value());
}

TEST(ErrorCodes, CodesSayWhatHappenedAndFrontendsMapThem) {
  EXPECT_EQ(error_label(ErrorCode::queue_full), "queue_full");
  EXPECT_EQ(http_status(ErrorCode::queue_full), 429);
  EXPECT_EQ(http_status(ErrorCode::overloaded), 429);
  EXPECT_EQ(http_status(ErrorCode::deadline_exceeded), 504);
  EXPECT_EQ(grpc_status(ErrorCode::deadline_exceeded), 4);
  EXPECT_EQ(http_status(ErrorCode::no_capacity), 503);
  EXPECT_EQ(grpc_status(ErrorCode::no_capacity), 14);
  EXPECT_EQ(http_status(ErrorCode::worker_rejected_input), 400);
  EXPECT_NE(error_label(ErrorCode::worker_rejected_input), error_label(ErrorCode::invalid_request));
  EXPECT_EQ(http_status(ErrorCode::insufficient_storage), 507);
}

} // namespace
} // namespace tandem
