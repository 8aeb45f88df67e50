// The gateway's single-pass validator must agree with the DOM decoder the worker uses: same
// verdict, same error code, same message (malformed JSON aside, where only the code matters).
// A corpus of hand-written cases plus thousands of random mutations of valid bodies.
#include "protocol/v2_codec.hpp"
#include "protocol/v2_validator.hpp"

#include <gtest/gtest.h>

#include <random>

namespace tandem::v2 {
namespace {

ModelSchema schema_with(DataType type, std::vector<std::int64_t> shape, std::int64_t max_batch = 8) {
  ModelSchema s;
  s.inputs.push_back({"x", type, std::move(shape)});
  s.outputs.push_back({"y", DataType::FP32, {-1, 1}});
  s.outputs.push_back({"z", DataType::INT64, {-1}});
  s.max_batch_size = max_batch;
  return s;
}

ModelSchema two_inputs() {
  ModelSchema s = schema_with(DataType::FP32, {-1, 2});
  s.inputs.push_back({"mask", DataType::BOOL, {-1, 2}});
  return s;
}

void expect_same(const std::string& body, const ModelSchema& schema) {
  auto dom = decode_infer_request(body, schema);
  auto fast = validate_infer_request(body, schema);
  ASSERT_EQ(dom.ok(), fast.ok()) << body << "\n dom: " << (dom.ok() ? "ok" : dom.error().message)
                                 << "\n fast: " << (fast.ok() ? "ok" : fast.error().message);
  if (dom.ok()) {
    EXPECT_EQ(dom->batch_size, fast->batch_size) << body;
    EXPECT_EQ(dom->id, fast->id) << body;
    EXPECT_EQ(dom->requested_outputs, fast->requested_outputs) << body;
    return;
  }
  EXPECT_EQ(dom.error().code, fast.error().code) << body << "\n dom: " << dom.error().message
                                                << "\n fast: " << fast.error().message;
  if (dom.error().code != ErrorCode::malformed_json) {
    EXPECT_EQ(dom.error().message, fast.error().message) << body;
  }
}

std::string x_body(const std::string& datatype, const std::string& shape, const std::string& data,
                   const std::string& extra = "") {
  return R"({"inputs":[{"name":"x","datatype":")" + datatype + R"(","shape":)" + shape + R"(,"data":)" + data +
         "}]" + extra + "}";
}

TEST(Validator, AgreesWithTheDecoderOnHandWrittenCases) {
  auto fp = schema_with(DataType::FP32, {-1, 4});
  const std::vector<std::string> bodies = {
      x_body("FP32", "[1,4]", "[1,2,3,4]"),
      x_body("FP32", "[2,4]", "[[1,2,3,4],[5,6,7,8]]"),
      x_body("FP32", "[2,4]", "[[1,2,3,4],[5,6,7,[8]]]"),
      x_body("FP32", "[2,4]", "[[[1,2,3,4]],[5,6,7,8]]"),
      x_body("FP32", "[1,4]", "[1,2,3]"),
      x_body("FP32", "[1,4]", "[1,\"2\",3,4]"),
      x_body("FP32", "[1,4]", "[1,true,3,4]"),
      x_body("FP32", "[1,4]", "[1,null,3,4]"),
      x_body("FP32", "[1,4]", "[1,{},3,4]"),
      x_body("FP32", "[1,4]", "[1,2,3,1e39]"),
      x_body("FP32", "[1,4]", "[1,2,3,-3.5e38]"),
      x_body("FP32", "[1,4]", "[1,2,3,1e-300]"),
      x_body("FP32", "[1,4]", "[1,2,3,340282346638528859811704183484516925440]"),
      x_body("FP32", "[1,4]", "[1,2,3,3402823466385288598117041834845169254400]"),
      x_body("FP32", "[1,4]", "[1,2,3,4]", R"(,"outputs":[{"name":"z"}],"id":"abc")"),
      x_body("FP32", "[1,4]", "[1,2,3,4]", R"(,"outputs":[{"name":"nope"}])"),
      x_body("FP32", "[1,4]", "[1,2,3,4]", R"(,"outputs":{"name":"z"})"),
      x_body("FP32", "[1,4]", "[1,2,3,4]", R"(,"outputs":[5])"),
      x_body("FP32", "[1,4]", "[1,2,3,4]", R"(,"outputs":[{"name":5}])"),
      x_body("FP32", "[1,4]", "[1,2,3,4]", R"(,"id":5)"),
      x_body("FP32", "[1,4]", "[1,2,3,4]", R"(,"parameters":{"a":[1,{"b":null}]})"),
      x_body("INT32", "[1,4]", "[1,2,3,4]"),
      x_body("FP32", "[1,3]", "[1,2,3]"),
      x_body("FP32", "[1,4,1]", "[1,2,3,4]"),
      x_body("FP32", "[0,4]", "[]"),
      x_body("FP32", "[9,4]", "[]"),
      x_body("FP32", "[1.5,4]", "[]"),
      x_body("FP32", "[-1,4]", "[]"),
      x_body("FP32", "[1,\"4\"]", "[]"),
      x_body("FP32", "[99999999999999999999,4]", "[]"),
      x_body("FP32", "5", "[]"),
      x_body("FP32", "[1,4]", "\"abc\""),
      R"({"inputs":[{"datatype":"FP32","shape":[1,4],"data":[1,2,3,4],"name":"x"}]})",
      R"({"inputs":[{"data":[1,2,"a",4],"shape":[1,4],"name":"x","datatype":"FP32"}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]},{"name":"x"}]})",
      R"({"inputs":[{"name":"q","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]})",
      R"({"inputs":[{"name":"x\u0041","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]})",
      R"({"inputs":[{"name":5}]})",
      R"({"inputs":[{"name":"x"}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32"}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4]}]})",
      R"({"inputs":[7]})",
      R"({"inputs":[]})",
      R"({"inputs":{}})",
      R"({})",
      R"([])",
      R"("x")",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]} extra)",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}])",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,04]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4.]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,+4]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4,]}]})",
      "{\"inputs\":[{\"name\":\"x\ty\"}]}",
      R"({"inputs":[{"name":"x\q"}]})",
      "",
      "   ",
      R"({"id":")" + std::string(300, 'a') + R"(","inputs":[]})",
  };
  for (const auto& body : bodies) expect_same(body, fp);
}

TEST(Validator, AgreesOnIntegerBoolAndBytesTypes) {
  for (auto type : {DataType::INT8, DataType::UINT8, DataType::INT16, DataType::UINT16, DataType::INT32,
                    DataType::UINT32, DataType::INT64, DataType::UINT64}) {
    auto s = schema_with(type, {-1, 4});
    std::string name(to_string(type));
    for (const char* data :
         {"[0,1,2,3]", "[-1,0,0,0]", "[127,128,-128,-129]", "[255,256,65535,65536]", "[2.0,3.5,0,0]", "[1e2,0,0,0]",
          "[4294967295,4294967296,0,0]", "[9223372036854775807,0,0,0]", "[9223372036854775808,0,0,0]",
          "[-9223372036854775808,0,0,0]", "[-9223372036854775809,0,0,0]", "[18446744073709551615,0,0,0]",
          "[18446744073709551616,0,0,0]", "[1e19,0,0,0]", "[-0,0,0,0]", "[\"1\",0,0,0]", "[true,0,0,0]"})
      expect_same(x_body(name, "[1,4]", data), s);
  }
  auto b = schema_with(DataType::BOOL, {-1, 4});
  for (const char* data : {"[true,false,true,false]", "[true,1,true,false]", "[true,\"true\",false,null]"})
    expect_same(x_body("BOOL", "[1,4]", data), b);
  auto y = schema_with(DataType::BYTES, {-1, 4});
  for (const char* data : {R"(["a","b","c","d"])", R"(["a",1,"c","d"])", R"(["a","b\n","c\u00e9",false])"})
    expect_same(x_body("BYTES", "[1,4]", data), y);
  auto two = two_inputs();
  expect_same(R"({"inputs":[{"name":"mask","datatype":"BOOL","shape":[1,2],"data":[true,false]},)"
              R"({"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]})",
              two);
  expect_same(R"({"inputs":[{"name":"mask","datatype":"BOOL","shape":[1,2],"data":[true,false]},)"
              R"({"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2,3,4]}]})",
              two);
  expect_same(R"({"inputs":[{"name":"mask","datatype":"BOOL","shape":[1,2],"data":[true,false]}]})", two);
}

TEST(Validator, AgreesWithTheDecoderOnRandomMutations) {
  auto fp = schema_with(DataType::FP32, {-1, 4});
  auto i32 = schema_with(DataType::INT32, {-1, 2});
  const std::vector<std::pair<std::string, const ModelSchema*>> seeds = {
      {x_body("FP32", "[2,4]", "[[1.5,-2,3e2,4],[5,6,7,8]]", R"(,"id":"r1","outputs":[{"name":"y"}])"), &fp},
      {x_body("INT32", "[2,2]", "[1,-2,300,4]", R"(,"parameters":{"k":[true,null]})"), &i32},
  };
  const std::string alphabet = "[]{},:\"0123456789.eE-+ tfnulrsax\\";
  std::mt19937_64 rng(20261128);
  int mutated = 0;
  for (int round = 0; round < 20000; ++round) {
    const auto& [seed, schema] = seeds[static_cast<std::size_t>(round) % seeds.size()];
    std::string body = seed;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      std::size_t at = rng() % body.size();
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
      case 0: body.erase(at, 1); break;
      case 1: body.insert(at, 1, c); break;
      default: body[at] = c; break;
      }
    }
    ++mutated;
    expect_same(body, *schema);
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_EQ(mutated, 20000);
}

} // namespace
} // namespace tandem::v2
