#include "model/model_manifest.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tandem {
namespace {

const std::string kHead = R"(name: m
artifact: model.onnx
inputs:
  - {name: x, datatype: FP32, shape: [-1, 2]}
outputs:
  - {name: y, datatype: FP32, shape: [-1]}
)";

TEST(ModelManifestServiceTime, AModelMayDeclareItsServiceTimeAsTheRoutersPrior) {
  auto none = parse_model_manifest(kHead, "/tmp", "m.yaml");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->declared_service_ms, 0.0);
  auto declared = parse_model_manifest(kHead + "service_ms: 42.5\n", "/tmp", "m.yaml");
  ASSERT_TRUE(declared) << declared.error().message;
  EXPECT_DOUBLE_EQ(declared->declared_service_ms, 42.5);
}

TEST(ModelManifestServiceTime, AnythingButAPositiveNumberOfMillisecondsIsRefusedNamingTheKey) {
  for (const char* bad : {"0", "-3", "abc", "[1, 2]", "7200000"}) {
    auto m = parse_model_manifest(kHead + "service_ms: " + bad + "\n", "/tmp", "m.yaml");
    ASSERT_FALSE(m) << bad;
    EXPECT_NE(m.error().message.find("m.yaml: service_ms:"), std::string::npos) << m.error().message;
  }
}

} // namespace
} // namespace tandem
