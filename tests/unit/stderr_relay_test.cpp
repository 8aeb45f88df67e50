// What a worker's stderr line says went wrong: the reason shown for a failed start.
#include "pool/stderr_relay.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tandem::pool {
namespace {

TEST(StderrRelay, AJsonLogLineIsAnErrorAtLevelErrorOrCriticalAndItsMessageIsTheText) {
  EXPECT_EQ(error_text_of(R"({"time":"t","level":"error","role":"worker d-0","pid":7,"msg":"cannot load model.onnx"})"
                          "\n"),
            "cannot load model.onnx");
  EXPECT_EQ(error_text_of(R"({"level":"critical","msg":"out of memory"})"), "out of memory");
  EXPECT_EQ(error_text_of(R"({"level":"info","msg":"listening"})"), std::nullopt);
  EXPECT_EQ(error_text_of(R"({"level":"warning","msg":"slow"})"), std::nullopt);
}

TEST(StderrRelay, AnyOtherLineCountsAsItIsAndBlankLinesDoNot) {
  EXPECT_EQ(error_text_of("Traceback (most recent call last):\r\n"), "Traceback (most recent call last):");
  EXPECT_EQ(error_text_of("{not json"), "{not json");
  EXPECT_EQ(error_text_of("\n"), std::nullopt);
  EXPECT_EQ(error_text_of(""), std::nullopt);
}

TEST(StderrRelay, LongTextIsCutAtACharacterBoundary) {
  const std::string line = std::string(296, 'a') + "\xc3\xa9\xc3\xa9" + std::string(50, 'b');
  const auto text = error_text_of(line);
  ASSERT_TRUE(text.has_value());
  EXPECT_LE(text->size(), 300u);
  EXPECT_EQ(text->substr(text->size() - 3), "...");
  EXPECT_EQ(*text, std::string(296, 'a') + "...");  // the é that would have been split is left out
}

} // namespace
} // namespace tandem::pool
