// The v2 infer request path: the gateway's one-pass validator and the worker's decoder, on the
// same bytes, against the digits schema (input "pixels" FP32 [-1, 64]). Both must agree on
// whether a body is acceptable (they document the same rules); FUZZ_V2_DIFFERENTIAL=1 aborts
// when they do not.
//
// The body is passed as exactly its bytes, so a read past its end is reported. The gateway
// passes a std::string, whose terminating NUL follows the bytes: FUZZ_V2_NUL_TERMINATED=1 does
// the same (a read of that one byte then goes unreported), for fuzzing past the known overreads
// recorded in fuzz/crashes/.
#include "protocol/v2_codec.hpp"
#include "protocol/v2_validator.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {
const tandem::ModelSchema& digits_schema() {
  static const tandem::ModelSchema schema = [] {
    tandem::ModelSchema s;
    s.inputs.push_back({"pixels", tandem::DataType::FP32, {-1, 64}});
    s.outputs.push_back({"label", tandem::DataType::INT64, {-1}});
    s.outputs.push_back({"probabilities", tandem::DataType::FP32, {-1, 10}});
    s.max_batch_size = 32;
    return s;
  }();
  return schema;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool nul_terminated = std::getenv("FUZZ_V2_NUL_TERMINATED") != nullptr;
  static const bool differential = std::getenv("FUZZ_V2_DIFFERENTIAL") != nullptr;
  std::string copy;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (nul_terminated) {
    copy.assign(body);
    body = copy;
  }
  const auto& schema = digits_schema();
  auto validated = tandem::v2::validate_infer_request(body, schema);
  auto decoded = tandem::v2::decode_infer_request(body, schema, {.keep_values = true});
  if (static_cast<bool>(validated) != static_cast<bool>(decoded) && differential) {
    std::fprintf(stderr, "validator: %s\ndecoder: %s\n", validated ? "accepts" : validated.error().message.c_str(),
                 decoded ? "accepts" : decoded.error().message.c_str());
    std::abort();
  }
  return 0;
}
