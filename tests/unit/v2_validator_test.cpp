// The gateway's single-pass validator must agree with the DOM decoder the worker uses: same
// verdict, same error code, same message (malformed JSON aside, where only the code matters).
// A corpus of hand-written cases plus thousands of random mutations of valid bodies, run once
// per way the validator can scan runs of numbers (byte by byte, SSE2, AVX2 blocks).
#include "protocol/v2_codec.hpp"
#include "protocol/v2_validator.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <ostream>
#include <random>

namespace tandem::v2 {
namespace detail {
// Found by argument-dependent lookup: names the variant in test listings instead of its bytes.
void PrintTo(NumberScan scan, std::ostream* os) { // NOLINT(readability-identifier-naming): GoogleTest's name
  *os << (scan == NumberScan::bytewise ? "bytewise"
          : scan == NumberScan::sse2   ? "sse2"
          : scan == NumberScan::avx2   ? "avx2"
          : scan == NumberScan::avx512 ? "avx512"
                                       : "avx512_lanes");
}
} // namespace detail

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
  EXPECT_EQ(dom.error().code, fast.error().code)
      << body << "\n dom: " << dom.error().message << "\n fast: " << fast.error().message;
  if (dom.error().code != ErrorCode::malformed_json) {
    EXPECT_EQ(dom.error().message, fast.error().message) << body;
  }
}

// Runs every test once per number scan this machine can run; the others are skipped.
class Validator : public ::testing::TestWithParam<detail::NumberScan> {
protected:
  void SetUp() override {
    if (!detail::set_number_scan(GetParam())) GTEST_SKIP() << "this CPU or build cannot run this scan";
  }
  void TearDown() override { detail::set_number_scan(original_); }

private:
  detail::NumberScan original_ = detail::number_scan();
};

std::string scan_name(const ::testing::TestParamInfo<detail::NumberScan>& info) {
  switch (info.param) {
  case detail::NumberScan::bytewise: return "bytewise";
  case detail::NumberScan::sse2: return "sse2";
  case detail::NumberScan::avx2: return "avx2";
  case detail::NumberScan::avx512: return "avx512";
  case detail::NumberScan::avx512_lanes: return "avx512_lanes";
  }
  return "unknown";
}

INSTANTIATE_TEST_SUITE_P(Scans, Validator,
                         ::testing::Values(detail::NumberScan::bytewise, detail::NumberScan::sse2,
                                           detail::NumberScan::avx2, detail::NumberScan::avx512,
                                           detail::NumberScan::avx512_lanes),
                         scan_name);

std::string x_body(const std::string& datatype, const std::string& shape, const std::string& data,
                   const std::string& extra = "") {
  return R"({"inputs":[{"name":"x","datatype":")" + datatype + R"(","shape":)" + shape + R"(,"data":)" +
         data + "}]" + extra + "}";
}

TEST_P(Validator, AgreesWithTheDecoderOnHandWrittenCases) {
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
      x_body("FP32", "[4611686018427387904,4]", "[]"),
      x_body("FP32", "[1099511627777,4]", "[]"),
      x_body("FP32", "[1099511627776,4]", "[]"),
      x_body("FP32", "[9223372036854775808,4]", "[]"),
      x_body("FP32", "[-9223372036854775809,4]", "[]"),
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

TEST_P(Validator, AgreesOnBodiesThatEndInsideTheDataArray) {
  auto fp = schema_with(DataType::FP32, {-1, 4});
  const std::string whole = x_body("FP32", "[1,4]", "[1,2,3,4]");
  const auto data_at = whole.find("[1,2,3,4]");
  ASSERT_NE(data_at, std::string::npos);
  // Cut right after the bracket, after each element and after each comma.
  for (std::size_t end = data_at + 1; end <= data_at + 9; ++end) expect_same(whole.substr(0, end), fp);
}

// Every prefix of a body, each in a heap block of exactly its size: the validator must never
// look at the byte past the end (a std::string's terminating NUL would hide such a read from
// AddressSanitizer, so the bytes are copied out of it).
TEST_P(Validator, NeverReadsPastTheEndOfATruncatedBody) {
  auto fp = schema_with(DataType::FP32, {-1, 2});
  const std::string whole = R"({"id":"r","inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1.5,true]},)"
                            R"({"name":"m","datatype":"BOOL","shape":[1],"data":[false]}],"outputs":[{"name":"y"}]})";
  for (std::size_t size = 0; size <= whole.size(); ++size) {
    auto exact = std::make_unique<char[]>(size == 0 ? 1 : size);
    std::memcpy(exact.get(), whole.data(), size);
    const std::string_view body(exact.get(), size);
    auto fast = validate_infer_request(body, fp);
    auto dom = decode_infer_request(body, fp);
    EXPECT_EQ(fast.ok(), dom.ok()) << whole.substr(0, size);
  }
}

// The decoder refuses text that is not UTF-8 anywhere in the body; so does the validator, or
// the gateway would forward what every worker refuses.
TEST_P(Validator, AgreesOnInvalidUtf8InKeysAndStrings) {
  auto fp = schema_with(DataType::FP32, {-1, 1});
  auto bytes = schema_with(DataType::BYTES, {-1, 1});
  for (const std::string bad : {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80"}) {
    const std::string& raw = bad;
    expect_same(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1]}],")" + raw + R"(":1})", fp);
    expect_same(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1],"k)" + raw + R"(":1}]})", fp);
    expect_same(R"({"id":")" + raw + R"(","inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1]}]})", fp);
    expect_same(R"({"inputs":[{"name":"x","datatype":"BYTES","shape":[1,1],"data":["a)" + raw + R"("]}]})", bytes);
    auto fast = validate_infer_request(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1]}],")" + raw + R"(":1})", fp);
    EXPECT_FALSE(fast.ok()) << bad;
  }
  // Valid multi-byte text stays accepted: two, three and four bytes.
  expect_same("{\"id\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,1],\"data\":[1]}]}", fp);
  EXPECT_TRUE(validate_infer_request("{\"id\":\"\xc3\xa9\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,1],\"data\":[1]}]}", fp).ok());
}

TEST_P(Validator, AgreesOnIntegerBoolAndBytesTypes) {
  for (auto type : {DataType::INT8, DataType::UINT8, DataType::INT16, DataType::UINT16, DataType::INT32,
                    DataType::UINT32, DataType::INT64, DataType::UINT64}) {
    auto s = schema_with(type, {-1, 4});
    std::string name(to_string(type));
    for (const char* data :
         {"[0,1,2,3]", "[-1,0,0,0]", "[127,128,-128,-129]", "[255,256,65535,65536]", "[2.0,3.5,0,0]",
          "[1e2,0,0,0]", "[4294967295,4294967296,0,0]", "[9223372036854775807,0,0,0]",
          "[9223372036854775808,0,0,0]", "[-9223372036854775808,0,0,0]", "[-9223372036854775809,0,0,0]",
          "[18446744073709551615,0,0,0]", "[18446744073709551616,0,0,0]", "[1e19,0,0,0]", "[-0,0,0,0]",
          "[\"1\",0,0,0]", "[true,0,0,0]"})
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

TEST_P(Validator, AgreesWithTheDecoderOnRandomMutations) {
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

// ---- Runs of numbers long enough for the 64-byte block scanner ------------------------------

// A data array of `count` numbers in a few shapes and lengths, so that over the array the
// numbers fall at every offset within a block.
std::vector<std::string> mixed_numbers(std::size_t count) {
  const std::vector<std::string> forms = {"0.807843", "-0.5",      "12",  "0",   "1.25",
                                          "-3",       "0.0392157", "255", "-0.0"};
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(forms[(i * 7 + i / 3) % forms.size()]);
  return out;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

// Accepted and turned-down numbers, values out of FP32's range, and elements that are not
// numbers or not JSON at all.
const std::vector<std::string>& number_probes() {
  // clang-format off (one long list reads better packed than one probe a line)
  static const std::vector<std::string> probes = {"0",
                                                  "-0",
                                                  "0.0",
                                                  "-0.0",
                                                  "7",
                                                  "-7",
                                                  "10",
                                                  "100.001",
                                                  "1e5",
                                                  "1E+5",
                                                  "-2.5e-3",
                                                  "0e0",
                                                  "1.5E38",
                                                  "3.4028234e38",
                                                  "-3.5e38",
                                                  "1e39",
                                                  "1e-400",
                                                  "123456789012345678901234567890123456789",
                                                  "999999999999999999999999999999999999999",
                                                  "-999999999999999999999999999999999999999",
                                                  "12345678901234567890123456789012345678",
                                                  "99999999999999999999999999999999999999.5",
                                                  "0.0000000000000000000000000000000000000000000000000001",
                                                  " 5",
                                                  "\n5",
                                                  "\t5\r",
                                                  "5 ",
                                                  " 5 ",
                                                  "01",
                                                  "-01",
                                                  "00",
                                                  "00.5",
                                                  "-",
                                                  "1.",
                                                  ".5",
                                                  "-.5",
                                                  "1..2",
                                                  "1.2.3",
                                                  "--1",
                                                  "1-2",
                                                  "+1",
                                                  "1e",
                                                  "1e+",
                                                  "1.e5",
                                                  "0x1",
                                                  "",
                                                  "1 2",
                                                  "a",
                                                  "\"1\"",
                                                  "true",
                                                  "null",
                                                  "[1]",
                                                  "{}",
                                                  "\x01",
                                                  "\xC3\xA9",
                                                  "1\x80",
                                                  "2]",
                                                  "1,",
                                                  ",",
                                                  "1/2",
                                                  "1:2"};
  // clang-format on
  return probes;
}

// Puts each probe at every `stride`-th index of an `n`-number array, for first numbers of
// 1..`longest_first` decimals: each step shifts everything after it by one byte.
void probe_every_offset(std::size_t n, std::size_t longest_first, std::size_t stride) {
  auto fp = schema_with(DataType::FP32, {-1, static_cast<std::int64_t>(n)});
  for (std::size_t first = 1; first <= longest_first; ++first) {
    auto items = mixed_numbers(n);
    items[0] = "0." + std::string(first, '5');
    for (const auto& probe : number_probes()) {
      for (std::size_t at = first % stride; at < n; at += stride) {
        auto with = items;
        with[at] = probe;
        expect_same(x_body("FP32", "[1," + std::to_string(n) + "]", "[" + join(with, ",") + "]"), fp);
        if (::testing::Test::HasFailure()) return;
      }
    }
  }
}

TEST_P(Validator, AgreesOnNumbersAtEveryBlockOffset) {
  probe_every_offset(24, 16, 1);
}

// Puts each probe at exactly byte `offset` of the data array (after its '['), behind numbers of
// two and three bytes with their commas, with plain numbers after it to fill 1 500 bytes.
std::string probe_at_offset(const std::string& probe, std::size_t offset, std::size_t& count) {
  std::vector<std::string> items(offset / 2, "1");
  if (offset % 2 == 1) items.back() = "12";
  items.push_back(probe);
  for (std::size_t bytes = offset + probe.size(); bytes < 1500; bytes += 5) items.emplace_back("0.25");
  count = items.size();
  return "[" + join(items, ",") + "]";
}

// Lane edges (every 64 bytes) and the edge between 512-byte steps, at every byte around them.
TEST_P(Validator, AgreesOnNumbersAcrossLaneEdges) {
  for (const std::size_t edge : {64, 512, 1024}) {
    for (std::size_t offset = edge - 24; offset < edge + 4; ++offset) {
      for (const auto& probe : number_probes()) {
        std::size_t count = 0;
        const std::string data = probe_at_offset(probe, offset, count);
        const auto n = static_cast<std::int64_t>(count);
        expect_same(x_body("FP32", "[1," + std::to_string(n) + "]", data),
                    schema_with(DataType::FP32, {-1, n}));
        if (::testing::Test::HasFailure()) return;
      }
    }
  }
}

// Long enough for the 512-byte step (eight 64-byte lanes, ~5.5 bytes a number) to take two whole
// steps: probes land on every lane edge and on the edge between two steps.
TEST_P(Validator, AgreesOnNumbersAtEveryLaneOffset) {
  probe_every_offset(200, 6, 2);
}

// Rows of `columns` numbers: 10 fit a 64-byte block, 100 need the 512-byte step.
void whitespace_layouts(std::size_t columns) {
  const std::size_t n = 4 * columns;
  const std::string flat_shape = "[1," + std::to_string(n) + "]";
  const std::string rows_shape = "[1,4," + std::to_string(columns) + "]";
  auto fp = schema_with(DataType::FP32, {-1, static_cast<std::int64_t>(n)});
  auto rows = schema_with(DataType::FP32, {-1, 4, static_cast<std::int64_t>(columns)});
  const auto items = mixed_numbers(n);
  for (const std::string separator :
       {",", ", ", ",\n  ", ",\t", ",\r\n", " ,", " , ", "\n,\n", ",  \n\n  "}) {
    const std::string flat = join(items, separator);
    expect_same(x_body("FP32", flat_shape, "[" + flat + "]"), fp);
    expect_same(x_body("FP32", flat_shape, "[ \n" + flat + " \n]"), fp);
    expect_same(x_body("FP32", flat_shape, "[" + flat + separator + "]"), fp);
    expect_same(x_body("FP32", flat_shape, "[" + separator + flat + "]"), fp);
    std::vector<std::string> row_texts;
    for (std::size_t r = 0; r < 4; ++r)
      row_texts.push_back(
          "[" +
          join(std::vector<std::string>(items.begin() + static_cast<std::ptrdiff_t>(r * columns),
                                        items.begin() + static_cast<std::ptrdiff_t>((r + 1) * columns)),
               separator) +
          "]");
    expect_same(x_body("FP32", rows_shape, "[[" + join(row_texts, separator) + "]]"), rows);
  }
  // A comma followed by more whitespace than one 512-byte step holds.
  auto spaced = items;
  spaced[n / 2] = std::string(1100, ' ') + spaced[n / 2];
  expect_same(x_body("FP32", flat_shape, "[" + join(spaced, ",") + "]"), fp);
}

TEST_P(Validator, AgreesOnWhitespaceLayouts) {
  whitespace_layouts(10);
  whitespace_layouts(100);
}

TEST_P(Validator, AgreesOnShapedDataInNestedArrays) {
  auto schema = schema_with(DataType::FP32, {-1, 3, 16});
  auto row = [](std::size_t r, std::size_t length) {
    std::vector<std::string> v;
    for (std::size_t i = 0; i < length; ++i)
      v.push_back(std::to_string(r) + "." + std::to_string(1000 + i * 37));
    return "[" + join(v, ",") + "]";
  };
  const std::string good = "[[" + row(0, 16) + "," + row(1, 16) + "," + row(2, 16) + "]]";
  expect_same(x_body("FP32", "[1,3,16]", good), schema);
  expect_same(x_body("FP32", "[1,3,16]", "[[" + row(0, 16) + "," + row(1, 15) + "," + row(2, 17) + "]]"),
              schema);
  expect_same(x_body("FP32", "[1,3,16]", "[[" + row(0, 16) + "," + row(1, 16) + "]]"), schema);
  expect_same(x_body("FP32", "[1,3,16]", "[[" + row(0, 16) + ",[" + row(1, 16) + "]," + row(2, 16) + "]]"),
              schema);
  expect_same(x_body("FP32", "[1,3,16]", "[" + row(0, 16) + "," + row(1, 16) + "," + row(2, 16) + "]"),
              schema);
  expect_same(x_body("FP32", "[1,3,16]", "[" + row(0, 48) + "]"), schema);
  expect_same(x_body("FP32", "[1,3,16]", row(0, 48)), schema);
  for (const char* bad : {"1.2.3", "01", "-", "x", "1e39", "\"s\"", "[]"}) {
    std::string body = good;
    body.replace(body.find("1.1333"), 6, bad);
    expect_same(x_body("FP32", "[1,3,16]", body), schema);
  }
}

// A number of 30 to 140 digits at index `at` of an `n`-number array, for each float type.
void long_numbers(std::size_t n, std::size_t at) {
  // FP32 and FP16 check the range above 38 integer digits; FP64 does not.
  for (auto type : {DataType::FP16, DataType::FP32, DataType::FP64}) {
    auto schema = schema_with(type, {-1, static_cast<std::int64_t>(n)});
    const std::string name(to_string(type));
    const std::string shape = "[1," + std::to_string(n) + "]";
    for (std::size_t digits = 30; digits <= 140; digits += digits < 70 ? 1 : 7) {
      for (const char lead : {'1', '3', '9'}) {
        std::string big(digits, '0');
        big[0] = lead;
        // Past 64 digits a run fills a whole lane; the last form has a second point after it.
        for (const std::string& number :
             {big, "-" + big, big + ".5", "0." + big, big + "e-5", "0." + big + ".5"}) {
          auto items = mixed_numbers(n);
          items[at] = number;
          expect_same(x_body(name, shape, "[" + join(items, ",") + "]"), schema);
        }
      }
    }
  }
}

TEST_P(Validator, AgreesOnLongNumbersForEachFloatType) {
  long_numbers(12, 5);
  // Inside the 512-byte steps, where runs of digits cross lanes: at bytes ~550 and ~600.
  long_numbers(200, 100);
  long_numbers(200, 109);
}

// Random edits inside the data array of an `n`-number body, where the scanners work.
void mutate_number_run(std::size_t n, int rounds, std::uint64_t seed_value) {
  auto fp = schema_with(DataType::FP32, {-1, static_cast<std::int64_t>(n)});
  auto items = mixed_numbers(n);
  items[10] = "1.5e-7";
  items[33] = "-12345678.875";
  const std::string shape = "[1," + std::to_string(n) + "]";
  const std::string seed = x_body("FP32", shape, "[" + join(items, ",") + "]");
  const std::string alphabet = "0123456789012345.,,--eE+ \n]x[\"";
  const std::size_t data_at = seed.find("\"data\":[") + 8;
  std::mt19937_64 rng(seed_value);
  for (int round = 0; round < rounds; ++round) {
    std::string body = seed;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      // Inside the data array, where the block scanner works.
      std::size_t at = data_at + rng() % (body.size() - data_at - 3);
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
      case 0: body.erase(at, 1); break;
      case 1: body.insert(at, 1, c); break;
      default: body[at] = c; break;
      }
    }
    expect_same(body, fp);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST_P(Validator, AgreesWithTheDecoderOnRandomMutationsOfLongNumberRuns) {
  mutate_number_run(64, 10000, 20261129);
}

// ~1 900 bytes: three 512-byte steps, edited anywhere in them.
TEST_P(Validator, AgreesWithTheDecoderOnRandomMutationsOfLaneRuns) {
  mutate_number_run(340, 10000, 20261130);
}

TEST_P(Validator, AgreesOnTheWideBenchmarkRequest) {
  // As bench/lib/payloads.py writes it: 3x224x224 values v/255, printed with 6 significant digits.
  auto schema = schema_with(DataType::FP32, {-1, 3, 224, 224});
  std::uint64_t x = 20261128;
  std::string data = "[";
  char buffer[32];
  for (std::size_t i = 0; i < std::size_t{3} * 224 * 224; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    std::snprintf(buffer, sizeof buffer, "%.6g", static_cast<double>((x >> 40) % 256) / 255.0);
    data += (i ? "," : "") + std::string(buffer);
  }
  data += "]";
  const std::string body = x_body("FP32", "[1,3,224,224]", data);
  expect_same(body, schema);
  auto fast = validate_infer_request(body, schema);
  ASSERT_TRUE(fast.ok()) << fast.error().message;
  EXPECT_EQ(fast->batch_size, 1);
  // One flaw deep inside the run: a second point, a leading zero, a lost comma, a stray byte,
  // one element too many, and a number out of FP32's range.
  const std::size_t middle = body.find(',', body.size() / 2) + 1;
  for (const std::string flaw : {"0.5.", "01", "", "x", "1,", "1e39,"}) {
    std::string bad = body;
    if (flaw.empty())
      bad.erase(middle - 1, 1);
    else
      bad.insert(middle, flaw);
    expect_same(bad, schema);
  }
}

} // namespace
} // namespace tandem::v2
