#include "protocol/v2_codec.hpp"

#include "base/sha256.hpp"
#include "model/model_manifest.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace tandem::v2 {
namespace {

namespace json = boost::json;

const std::filesystem::path kDigitsDir = std::filesystem::path(TANDEM_SOURCE_DIR) / "models" / "digits";

// The real digits model: pixels FP32 [-1, 64] -> probabilities FP32 [-1, 10], label INT64 [-1].
const ModelManifest& digits() {
  static const ModelManifest manifest = [] {
    auto loaded = load_model_manifest(kDigitsDir);
    if (!loaded) throw std::runtime_error(loaded.error().message);
    return *loaded;
  }();
  return manifest;
}

const ModelSchema& schema() {
  return digits().schema;
}

std::string numbers(std::size_t count, double value = 0.5) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    if (i) out += ',';
    std::ostringstream s;
    s << value;
    out += s.str();
  }
  return out;
}

// A well-formed "pixels" input with `rows` rows; `data` overrides the data array text.
std::string pixels_input(int rows = 1, std::string data = {}) {
  if (data.empty()) data = "[" + numbers(static_cast<std::size_t>(rows) * 64) + "]";
  return R"({"name":"pixels","datatype":"FP32","shape":[)" + std::to_string(rows) + R"(,64],"data":)" + data +
         "}";
}

std::string body_with(const std::string& inputs_json, const std::string& extra = {}) {
  return R"({"inputs":[)" + inputs_json + "]" + extra + "}";
}

Result<DecodedRequest> decode(const std::string& body, const ModelSchema& s = schema(),
                              bool keep_values = false) {
  return decode_infer_request(body, s, {.keep_values = keep_values});
}

// Expects a rejection with this code whose message starts with `field` and contains `detail`.
void expect_error(const std::string& body, const std::string& field, const std::string& detail = {},
                  ErrorCode code = ErrorCode::invalid_request, const ModelSchema& s = schema()) {
  auto result = decode(body, s);
  ASSERT_FALSE(result.ok()) << "accepted: " << body.substr(0, 300);
  EXPECT_EQ(result.error().code, code) << result.error().message;
  EXPECT_EQ(result.error().message.rfind(field, 0), 0u)
      << "expected the message to name \"" << field << "\": " << result.error().message;
  if (!detail.empty()) {
    EXPECT_NE(result.error().message.find(detail), std::string::npos)
        << "expected \"" << detail << "\" in: " << result.error().message;
  }
}

ModelSchema single_input_schema(DataType type, std::vector<std::int64_t> shape = {-1, 4},
                                std::int64_t max_batch_size = 8) {
  ModelSchema s;
  s.inputs.push_back(TensorSpec{.name = "x", .datatype = type, .shape = std::move(shape)});
  s.outputs.push_back(TensorSpec{.name = "y", .datatype = DataType::FP32, .shape = {-1, 1}});
  s.max_batch_size = max_batch_size;
  return s;
}

std::string x_body(std::string_view datatype, const std::string& data, const std::string& shape = "[1,4]") {
  return R"({"inputs":[{"name":"x","datatype":")" + std::string(datatype) + R"(","shape":)" + shape +
         R"(,"data":)" + data + "}]}";
}

// ---- the model manifest ------------------------------------------------------------------------

TEST(ModelManifest, LoadsTheDigitsSchema) {
  const auto& m = digits();
  EXPECT_EQ(m.name, "digits");
  EXPECT_EQ(m.format, "onnx");
  EXPECT_EQ(m.artifact, std::filesystem::absolute(kDigitsDir / "model.onnx").lexically_normal());
  EXPECT_EQ(m.schema.max_batch_size, 1024);
  ASSERT_EQ(m.schema.inputs.size(), 1u);
  EXPECT_EQ(m.schema.inputs[0].name, "pixels");
  EXPECT_EQ(m.schema.inputs[0].datatype, DataType::FP32);
  EXPECT_EQ(m.schema.inputs[0].shape, (std::vector<std::int64_t>{-1, 64}));
  ASSERT_EQ(m.schema.outputs.size(), 2u);
  EXPECT_EQ(m.schema.outputs[0].name, "probabilities");
  EXPECT_EQ(m.schema.outputs[1].name, "label");
  EXPECT_EQ(m.schema.outputs[1].datatype, DataType::INT64);
  EXPECT_NE(m.schema.find_output("label"), nullptr);
  EXPECT_EQ(m.schema.find_output("pixels"), nullptr);
  EXPECT_EQ(m.schema.find_input("pixels"), &m.schema.inputs[0]);
}

TEST(ModelManifest, VersionIsContentAddressed) {
  const auto& m = digits();
  ASSERT_EQ(m.digest.size(), 64u);
  for (char c : m.digest) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << m.digest;
  EXPECT_EQ(m.version, m.digest.substr(0, 12));

  auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  const std::string manifest = read(kDigitsDir / "tandem-model.yaml");
  const std::string artifact = read(kDigitsDir / "model.onnx");
  ASSERT_GT(artifact.size(), 1000u);
  EXPECT_EQ(m.manifest_sha256, sha256_hex(manifest));
  EXPECT_EQ(m.artifact_sha256, sha256_hex(artifact));
  EXPECT_EQ(m.digest, model_version_digest(sha256_hex(manifest), sha256_hex(artifact)))
      << "sha256 over the sha256 of the manifest and the sha256 of the artifact";

  auto again = load_model_manifest(kDigitsDir);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->digest, m.digest);
}

TEST(ModelManifest, MissingDirectoryIsNotFound) {
  auto missing = load_model_manifest(kDigitsDir / "does-not-exist");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);
  EXPECT_NE(missing.error().message.find("does-not-exist"), std::string::npos) << missing.error().message;
}

TEST(ModelManifest, DataTypeNamesRoundTrip) {
  for (auto type : {DataType::BOOL, DataType::UINT8, DataType::INT32, DataType::INT64, DataType::FP16,
                    DataType::FP32, DataType::FP64, DataType::BYTES}) {
    EXPECT_EQ(parse_datatype(to_string(type)), type) << to_string(type);
  }
  EXPECT_EQ(to_string(DataType::FP32), "FP32");
  EXPECT_FALSE(parse_datatype("fp32").has_value());
  EXPECT_FALSE(parse_datatype("FLOAT").has_value());
}

// ---- decoding: accepted requests ---------------------------------------------------------------

TEST(DecodeInferRequest, AcceptsAWellFormedRequest) {
  auto result = decode(body_with(pixels_input(2), R"(,"id":"req-1","outputs":[{"name":"label"}])"));
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->id, "req-1");
  EXPECT_EQ(result->batch_size, 2);
  ASSERT_EQ(result->inputs.size(), 1u);
  EXPECT_EQ(result->inputs[0].name, "pixels");
  EXPECT_EQ(result->inputs[0].spec, &schema().inputs[0]);
  EXPECT_EQ(result->inputs[0].shape, (std::vector<std::int64_t>{2, 64}));
  EXPECT_TRUE(result->inputs[0].values.empty()) << "values are kept only on request";
  EXPECT_EQ(result->requested_outputs, std::vector<std::string>{"label"});
}

TEST(DecodeInferRequest, KeepsValuesWhenAsked) {
  std::string data = "[";
  for (int i = 0; i < 64; ++i) data += (i ? "," : "") + std::to_string(i) + ".25";
  data += "]";
  auto result = decode(body_with(pixels_input(1, data)), schema(), true);
  ASSERT_TRUE(result.ok()) << result.error().message;
  const auto& values = result->inputs[0].values;
  ASSERT_EQ(values.size(), 64u);
  EXPECT_FLOAT_EQ(values[0], 0.25f);
  EXPECT_FLOAT_EQ(values[63], 63.25f);
  EXPECT_TRUE(result->requested_outputs.empty()) << "no outputs given: all of them";
  EXPECT_TRUE(result->id.empty());
}

TEST(DecodeInferRequest, NestedDataIsFlattenedInRowMajorOrder) {
  std::string rows = "[[" + numbers(63, 1) + ",7],[" + numbers(64, 2) + "]]";
  auto result = decode(body_with(pixels_input(2, rows)), schema(), true);
  ASSERT_TRUE(result.ok()) << result.error().message;
  const auto& values = result->inputs[0].values;
  ASSERT_EQ(values.size(), 128u);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[63], 7.0f);
  EXPECT_EQ(values[64], 2.0f);
  EXPECT_EQ(values[127], 2.0f);
}

TEST(DecodeInferRequest, MaxBatchSizeIsAccepted) {
  auto result = decode(body_with(pixels_input(1024)));
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->batch_size, 1024);
}

TEST(DecodeInferRequest, IntegersAreAcceptedForFloatInputs) {
  auto result = decode(body_with(pixels_input(1, "[" + numbers(64, 16) + "]")), schema(), true);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->inputs[0].values[5], 16.0f);
}

// ---- decoding: every rejection names its field --------------------------------------------------

TEST(DecodeInferRequest, MalformedJson) {
  for (std::string body : {"", "{", "{\"inputs\":[}", "not json", "{\"inputs\":[]} trailing"}) {
    SCOPED_TRACE(body);
    expect_error(body, "malformed JSON", "", ErrorCode::malformed_json);
  }
}

TEST(DecodeInferRequest, TooDeeplyNestedJsonIsMalformed) {
  std::string deep = std::string(64, '[') + std::string(64, ']');
  expect_error(deep, "malformed JSON", "", ErrorCode::malformed_json);
}

TEST(DecodeInferRequest, BodyMustBeAnObject) {
  expect_error("[1,2,3]", "request body: expected a JSON object");
  expect_error("\"inputs\"", "request body: expected a JSON object");
  expect_error("null", "request body: expected a JSON object");
}

TEST(DecodeInferRequest, InputsMissingOrEmpty) {
  expect_error("{}", "inputs: required");
  expect_error(R"({"id":"a"})", "inputs: required");
  expect_error(R"({"inputs":{}})", "inputs: expected an array");
  expect_error(R"({"inputs":[]})", "inputs: must not be empty");
}

TEST(DecodeInferRequest, InputEntryMustBeAnObjectWithAName) {
  expect_error(R"({"inputs":[42]})", "inputs[0]: expected an object");
  expect_error(R"({"inputs":[{"datatype":"FP32"}]})", "inputs[0].name: required string");
  expect_error(R"({"inputs":[{"name":7}]})", "inputs[0].name: required string");
}

TEST(DecodeInferRequest, UnknownInputName) {
  expect_error(body_with(R"({"name":"pixelz","datatype":"FP32","shape":[1,64],"data":[]})"),
               "inputs[0].name: unknown input \"pixelz\"", "(expected: pixels)");
}

TEST(DecodeInferRequest, ClientValuesAreQuotedOnceAndTruncated) {
  // The message holds the raw value; encode_error escapes the whole message exactly once.
  auto result = decode(body_with(R"({"name":"a\"b","datatype":"FP32","shape":[1,64],"data":[]})"));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find(R"(unknown input "a"b")"), std::string::npos)
      << result.error().message;
  auto body = json::parse(encode_error(result.error().message));
  EXPECT_EQ(body.at("error").as_string(), result.error().message);

  std::string long_name(200, 'n');
  auto truncated =
      decode(body_with(R"({"name":")" + long_name + R"(","datatype":"FP32","shape":[1,64],"data":[]})"));
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().message.find("\"" + std::string(64, 'n') + "...\""), std::string::npos)
      << truncated.error().message;
  EXPECT_EQ(truncated.error().message.find(std::string(65, 'n')), std::string::npos);
}

TEST(QuoteValue, QuotesAndTruncatesWithoutEscaping) {
  EXPECT_EQ(v2::quote_value("abc"), "\"abc\"");
  EXPECT_EQ(v2::quote_value("a\"b"), "\"a\"b\"");
  EXPECT_EQ(v2::quote_value(std::string(64, 'x')), "\"" + std::string(64, 'x') + "\"");
  EXPECT_EQ(v2::quote_value(std::string(65, 'x')), "\"" + std::string(64, 'x') + "...\"");
}

TEST(DecodeInferRequest, DuplicateInput) {
  expect_error(body_with(pixels_input() + "," + pixels_input()),
               "inputs[1].name: input \"pixels\" given twice");
}

TEST(DecodeInferRequest, MissingInput) {
  ModelSchema two = schema();
  two.inputs.push_back(TensorSpec{.name = "mask", .datatype = DataType::BOOL, .shape = {-1, 64}});
  expect_error(body_with(pixels_input()), "inputs: missing input \"mask\"", "", ErrorCode::invalid_request,
               two);
}

TEST(DecodeInferRequest, WrongDatatype) {
  expect_error(body_with(R"({"name":"pixels","datatype":"FP64","shape":[1,64],"data":[]})"),
               "inputs[0].datatype: expected \"FP32\" for input \"pixels\", got \"FP64\"");
  expect_error(body_with(R"({"name":"pixels","shape":[1,64],"data":[]})"),
               "inputs[0].datatype: required string");
}

TEST(DecodeInferRequest, WrongRankOrShape) {
  auto with_shape = [](const std::string& shape) {
    return body_with(R"({"name":"pixels","datatype":"FP32","shape":)" + shape + R"(,"data":[]})");
  };
  expect_error(with_shape("[1,63]"), "inputs[0].shape: expected [N, 64] for input \"pixels\", got [1, 63]");
  expect_error(with_shape("[64]"), "inputs[0].shape: expected [N, 64]", "got [64]");
  expect_error(with_shape("[1,1,64]"), "inputs[0].shape: expected [N, 64]", "got [1, 1, 64]");
  expect_error(with_shape("[]"), "inputs[0].shape: expected [N, 64]", "got []");
  expect_error(with_shape("[1,-64]"), "inputs[0].shape: dimensions must be >= 0");
  // Too large is not negative: the message says what the limit is.
  expect_error(with_shape("[4611686018427387904,64]"),
               "inputs[0].shape: dimensions must be at most 1099511627776");
  expect_error(with_shape("[18446744073709551615,64]"),
               "inputs[0].shape: dimensions must be at most 1099511627776");
  expect_error(with_shape("[1,64.0]"), "inputs[0].shape: expected integers");
  expect_error(with_shape("[1,\"64\"]"), "inputs[0].shape: expected integers");
  expect_error(with_shape("\"1x64\""), "inputs[0].shape: required array of integers");
}

TEST(DecodeInferRequest, BatchDimensionZero) {
  expect_error(body_with(R"({"name":"pixels","datatype":"FP32","shape":[0,64],"data":[]})"),
               "inputs[0].shape[0]: batch size must be at least 1");
}

TEST(DecodeInferRequest, BatchLargerThanMaxBatchSize) {
  expect_error(body_with(pixels_input(1025)),
               "inputs[0].shape[0]: batch size 1025 exceeds the model's max_batch_size 1024");
}

TEST(DecodeInferRequest, BatchSizesMustAgreeAcrossInputs) {
  ModelSchema two = schema();
  two.inputs.push_back(TensorSpec{.name = "mask", .datatype = DataType::BOOL, .shape = {-1, 2}});
  std::string mask = R"({"name":"mask","datatype":"BOOL","shape":[1,2],"data":[true,false]})";
  expect_error(body_with(pixels_input(2) + "," + mask),
               "inputs[1].shape[0]: batch size differs from the other inputs", "", ErrorCode::invalid_request,
               two);
  // Inputs given in another order than the schema's come back in schema order.
  auto ok = decode(body_with(mask + "," + pixels_input(1)), two);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->inputs[0].name, "pixels");
  EXPECT_EQ(ok->inputs[1].name, "mask");
}

TEST(DecodeInferRequest, DataLengthMismatch) {
  expect_error(body_with(pixels_input(1, "[" + numbers(63) + "]")),
               "inputs[0].data: has 63 elements but shape [1, 64] needs 64");
  expect_error(body_with(pixels_input(2, "[" + numbers(129) + "]")),
               "inputs[0].data: has 129 elements but shape [2, 64] needs 128");
  expect_error(body_with(R"({"name":"pixels","datatype":"FP32","shape":[1,64]})"),
               "inputs[0].data: required");
  expect_error(body_with(pixels_input(1, "{}")), "inputs[0].data: expected an array");
}

TEST(DecodeInferRequest, NonNumericElementNamesItsIndex) {
  std::string data = "[0,1,2,3,4,\"five\"," + numbers(58) + "]";
  expect_error(body_with(pixels_input(1, data)), "inputs[0].data[5]: expected a number");
  expect_error(body_with(pixels_input(1, "[null," + numbers(63) + "]")),
               "inputs[0].data[0]: expected a number");
  expect_error(body_with(pixels_input(1, "[" + numbers(63) + ",true]")),
               "inputs[0].data[63]: expected a number");
}

TEST(DecodeInferRequest, NonNumericElementInNestedDataUsesTheFlatIndex) {
  std::string rows = "[[" + numbers(64) + "],[" + numbers(2) + ",{}," + numbers(61) + "]]";
  expect_error(body_with(pixels_input(2, rows)), "inputs[0].data[66]: expected a number");
}

TEST(DecodeInferRequest, DataNestedDeeperThanTheRank) {
  std::string rows = "[[[" + numbers(64) + "]]]";
  expect_error(body_with(pixels_input(1, rows)), "inputs[0].data[0]: nested deeper than the tensor's rank");
}

TEST(DecodeInferRequest, Fp32RangeIsChecked) {
  expect_error(body_with(pixels_input(1, "[1e39," + numbers(63) + "]")),
               "inputs[0].data[0]: out of range for FP32");
}

TEST(DecodeInferRequest, UnknownOutput) {
  expect_error(body_with(pixels_input(), R"(,"outputs":[{"name":"label"},{"name":"logits"}])"),
               "outputs[1].name: unknown output \"logits\"");
  expect_error(body_with(pixels_input(), R"(,"outputs":{"name":"label"})"), "outputs: expected an array");
  expect_error(body_with(pixels_input(), R"(,"outputs":["label"])"), "outputs[0]: expected an object");
  expect_error(body_with(pixels_input(), R"(,"outputs":[{}])"), "outputs[0].name: required string");
}

TEST(DecodeInferRequest, IdMustBeAShortString) {
  expect_error(body_with(pixels_input(), R"(,"id":42)"), "id: expected a string");
  expect_error(body_with(pixels_input(), R"(,"id":null)"), "id: expected a string");
  expect_error(body_with(pixels_input(), R"(,"id":")" + std::string(257, 'a') + "\""),
               "id: longer than 256 characters");
  EXPECT_TRUE(decode(body_with(pixels_input(), R"(,"id":")" + std::string(256, 'a') + "\"")).ok());
}

// ---- decoding: datatypes other than FP32 (hand-built schemas) ------------------------------------

TEST(DecodeInferRequest, IntegerInputsRejectFractions) {
  auto s = single_input_schema(DataType::INT32);
  auto ok = decode(x_body("INT32", "[1,-2,3.0,2147483647]"), s, true);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->inputs[0].values, (std::vector<float>{1, -2, 3, 2147483647.0f}));
  expect_error(x_body("INT32", "[1,2,3.5,4]"), "inputs[0].data[2]: expected an integer", "",
               ErrorCode::invalid_request, s);
}

TEST(DecodeInferRequest, IntegerInputsRejectOutOfRange) {
  auto i32 = single_input_schema(DataType::INT32);
  expect_error(x_body("INT32", "[1,2,3,2147483648]"), "inputs[0].data[3]: out of range for INT32", "",
               ErrorCode::invalid_request, i32);
  expect_error(x_body("INT32", "[-2147483649,2,3,4]"), "inputs[0].data[0]: out of range for INT32", "",
               ErrorCode::invalid_request, i32);
  EXPECT_TRUE(decode(x_body("INT32", "[-2147483648,0,0,0]"), i32).ok());

  auto u8 = single_input_schema(DataType::UINT8);
  EXPECT_TRUE(decode(x_body("UINT8", "[0,1,254,255]"), u8).ok());
  expect_error(x_body("UINT8", "[0,1,256,3]"), "inputs[0].data[2]: out of range for UINT8", "",
               ErrorCode::invalid_request, u8);
  expect_error(x_body("UINT8", "[0,-1,2,3]"), "inputs[0].data[1]: out of range for UINT8", "",
               ErrorCode::invalid_request, u8);

  auto i64 = single_input_schema(DataType::INT64);
  EXPECT_TRUE(decode(x_body("INT64", "[9223372036854775807,-9223372036854775808,0,1]"), i64).ok());
  expect_error(x_body("INT64", "[1e19,0,0,0]"), "inputs[0].data[0]: out of range for INT64", "",
               ErrorCode::invalid_request, i64);
}

TEST(DecodeInferRequest, Int64RejectsTwoToThe63) {
  auto i64 = single_input_schema(DataType::INT64);
  expect_error(x_body("INT64", "[9223372036854775808,0,0,0]"), "inputs[0].data[0]: out of range for INT64",
               "", ErrorCode::invalid_request, i64);
  auto u64 = single_input_schema(DataType::UINT64);
  expect_error(x_body("UINT64", "[18446744073709551616,0,0,0]"), "inputs[0].data[0]: out of range for UINT64",
               "", ErrorCode::invalid_request, u64);
}

TEST(DecodeInferRequest, BoolExpectsTrueOrFalse) {
  auto s = single_input_schema(DataType::BOOL);
  auto ok = decode(x_body("BOOL", "[true,false,false,true]"), s, true);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->inputs[0].values, (std::vector<float>{1, 0, 0, 1}));
  expect_error(x_body("BOOL", "[true,1,false,true]"), "inputs[0].data[1]: expected true or false", "",
               ErrorCode::invalid_request, s);
  expect_error(x_body("BOOL", "[true,false,\"true\",true]"), "inputs[0].data[2]: expected true or false", "",
               ErrorCode::invalid_request, s);
}

TEST(DecodeInferRequest, BytesExpectStrings) {
  auto s = single_input_schema(DataType::BYTES);
  EXPECT_TRUE(decode(x_body("BYTES", R"(["a","b","","d"])"), s).ok());
  expect_error(x_body("BYTES", R"(["a","b",3,"d"])"), "inputs[0].data[2]: expected a string", "",
               ErrorCode::invalid_request, s);
}

TEST(DecodeInferRequest, WithoutBatchDimensionShapeZeroIsAllowed) {
  auto s = single_input_schema(DataType::FP32, {-1, 4}, 0);
  auto ok = decode(x_body("FP32", "[]", "[0,4]"), s);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->batch_size, 0) << "no batch dimension declared";
  EXPECT_TRUE(decode(x_body("FP32", "[" + numbers(4000) + "]", "[1000,4]"), s).ok());
}

TEST(DecodeInferRequest, HugeVariableDimensionIsRejectedWithoutAllocating) {
  auto s = single_input_schema(DataType::FP32, {-1, -1}, 8);
  auto kept = decode(x_body("FP32", "[1]", "[1,1099511627776]"), s, /*keep_values=*/true);
  ASSERT_FALSE(kept.ok());
  EXPECT_EQ(kept.error().message.rfind("inputs[0]", 0), 0u) << kept.error().message;
  // Within the element bound, the data count decides, and nothing is reserved beyond the data.
  auto bounded = decode(x_body("FP32", "[1]", "[1,1000000]"), s, /*keep_values=*/true);
  ASSERT_FALSE(bounded.ok());
  EXPECT_NE(bounded.error().message.find("inputs[0].data: has 1 elements"), std::string::npos)
      << bounded.error().message;
}

TEST(DecodeInferRequest, ElementCountOverflowIsRejected) {
  // [1, 2^40, 2^40] would overflow the element count; it must be refused, not wrapped to 0.
  auto s = single_input_schema(DataType::FP32, {-1, -1, -1}, 8);
  expect_error(x_body("FP32", "[]", "[1,1099511627776,1099511627776]"), "inputs[0]", "",
               ErrorCode::invalid_request, s);
}

// ---- encoding ----------------------------------------------------------------------------------

TEST(EncodeInferResponse, ParsesWithTheRightShapesAndValues) {
  std::vector<OutputTensor> outputs = {
      {.name = "probabilities",
       .datatype = DataType::FP32,
       .shape = {2, 3},
       .values = {0.1f, 0.2f, 0.7f, 1.0f, 0.0f, 0.0f}},
      {.name = "label", .datatype = DataType::INT64, .shape = {2}, .values = {2, 0}},
  };
  std::string text = encode_infer_response("digits", "abc123def456", "req-9", outputs);
  std::error_code ec;
  json::value root = json::parse(text, ec);
  ASSERT_FALSE(ec) << text;
  const auto& obj = root.as_object();
  EXPECT_EQ(obj.at("model_name").as_string(), "digits");
  EXPECT_EQ(obj.at("model_version").as_string(), "abc123def456");
  EXPECT_EQ(obj.at("id").as_string(), "req-9");
  const auto& outs = obj.at("outputs").as_array();
  ASSERT_EQ(outs.size(), 2u);

  const auto& probs = outs[0].as_object();
  EXPECT_EQ(probs.at("name").as_string(), "probabilities");
  EXPECT_EQ(probs.at("datatype").as_string(), "FP32");
  EXPECT_EQ(json::value_to<std::vector<std::int64_t>>(probs.at("shape")), (std::vector<std::int64_t>{2, 3}));
  const auto& probs_data = probs.at("data").as_array();
  ASSERT_EQ(probs_data.size(), 6u);
  EXPECT_EQ(static_cast<float>(probs_data[2].to_number<double>()), 0.7f);

  const auto& label = outs[1].as_object();
  EXPECT_EQ(label.at("datatype").as_string(), "INT64");
  EXPECT_EQ(json::value_to<std::vector<std::int64_t>>(label.at("shape")), std::vector<std::int64_t>{2});
  const auto& label_data = label.at("data").as_array();
  ASSERT_EQ(label_data.size(), 2u);
  EXPECT_TRUE(label_data[0].is_int64()) << "INT64 values are printed as integers: " << text;
  EXPECT_EQ(label_data[0].as_int64(), 2);
  EXPECT_EQ(label_data[1].as_int64(), 0);
}

TEST(EncodeInferResponse, Fp32UsesTheShortestRoundTrip) {
  std::vector<float> samples = {0.1f, 1.0f / 3.0f, 0.7f, 1e-8f, 3.4028235e38f, -2.5f, 123456.79f};
  OutputTensor t{
      .name = "p", .datatype = DataType::FP32, .shape = {static_cast<std::int64_t>(samples.size())}};
  for (float f : samples) t.values.push_back(f);
  std::string text = encode_infer_response("m", "v", "", {t});
  EXPECT_NE(text.find("[0.1,"), std::string::npos)
      << "0.1f prints as 0.1, not its double expansion: " << text;
  EXPECT_EQ(text.find("0.10000000149"), std::string::npos) << text;
  auto root = json::parse(text);
  const auto& data = root.at("outputs").at(0).at("data").as_array();
  ASSERT_EQ(data.size(), samples.size());
  for (std::size_t i = 0; i < samples.size(); ++i)
    EXPECT_EQ(static_cast<float>(data[i].to_number<double>()), samples[i]) << "element " << i;
}

TEST(EncodeInferResponse, Fp64KeepsDoublePrecision) {
  OutputTensor t{.name = "p", .datatype = DataType::FP64, .shape = {1}, .values = {0.1}};
  auto root = json::parse(encode_infer_response("m", "v", "", {t}));
  EXPECT_EQ(root.at("outputs").at(0).at("data").at(0).as_double(), 0.1);
}

TEST(EncodeInferResponse, NoIdWhenEmptyAndNamesAreEscaped) {
  std::string text = encode_infer_response("we\"ird", "v", "", {});
  auto root = json::parse(text);
  EXPECT_FALSE(root.as_object().contains("id")) << text;
  EXPECT_EQ(root.at("model_name").as_string(), "we\"ird");
  EXPECT_TRUE(root.at("outputs").as_array().empty());
}

TEST(EncodeInferResponse, BoolOutputsAreJsonBooleans) {
  OutputTensor t{.name = "b", .datatype = DataType::BOOL, .shape = {2}, .values = {1, 0}};
  auto root = json::parse(encode_infer_response("m", "v", "", {t}));
  const auto& data = root.at("outputs").at(0).at("data").as_array();
  EXPECT_EQ(data.at(0), json::value(true));
  EXPECT_EQ(data.at(1), json::value(false));
}

TEST(EncodeError, EscapesQuotesAndControlCharacters) {
  std::string text = encode_error("input \"pixels\"\nback\\slash");
  EXPECT_EQ(text, R"({"error":"input \"pixels\"\nback\\slash"})");
  auto root = json::parse(text);
  EXPECT_EQ(root.at("error").as_string(), "input \"pixels\"\nback\\slash");
}

TEST(EncodeModelMetadata, HasTheV2Shape) {
  std::string text = encode_model_metadata("digits", digits().version, "onnx", schema());
  auto root = json::parse(text);
  EXPECT_EQ(root.at("name").as_string(), "digits");
  ASSERT_EQ(root.at("versions").as_array().size(), 1u);
  EXPECT_EQ(root.at("versions").at(0).as_string(), digits().version);
  EXPECT_EQ(root.at("platform").as_string(), "onnx");
  const auto& inputs = root.at("inputs").as_array();
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].at("name").as_string(), "pixels");
  EXPECT_EQ(inputs[0].at("datatype").as_string(), "FP32");
  EXPECT_EQ(json::value_to<std::vector<std::int64_t>>(inputs[0].at("shape")),
            (std::vector<std::int64_t>{-1, 64}));
  const auto& outputs = root.at("outputs").as_array();
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].at("name").as_string(), "probabilities");
  EXPECT_EQ(json::value_to<std::vector<std::int64_t>>(outputs[0].at("shape")),
            (std::vector<std::int64_t>{-1, 10}));
  EXPECT_EQ(outputs[1].at("name").as_string(), "label");
  EXPECT_EQ(outputs[1].at("datatype").as_string(), "INT64");
  EXPECT_EQ(json::value_to<std::vector<std::int64_t>>(outputs[1].at("shape")), std::vector<std::int64_t>{-1});
}

TEST(JsonEscape, EscapesWithoutQuotes) {
  EXPECT_EQ(json_escape("plain"), "plain");
  EXPECT_EQ(json_escape("a\"b"), "a\\\"b");
  EXPECT_EQ(json_escape("tab\t"), "tab\\t");
  EXPECT_EQ(json_escape(std::string_view("\x01", 1)), "\\u0001");
}

TEST(EncodeError, BytesThatAreNotUtf8BecomeReplacementCharactersSoTheBodyIsJson) {
  // An input name is echoed into the message; a client may send any bytes.
  const std::string body = encode_error("inputs[0].name: unknown input \"ab\xff\xc0z\"");
  std::error_code ec;
  auto parsed = boost::json::parse(body, ec);
  ASSERT_FALSE(ec) << body;
  EXPECT_EQ(std::string(parsed.at("error").as_string().c_str()),
            "inputs[0].name: unknown input \"ab\xef\xbf\xbd\xef\xbf\xbdz\"");
}

} // namespace
} // namespace tandem::v2
