// The v2 infer request path: the gateway's one-pass validator and the worker's decoder, on the
// same bytes, against the digits schema (input "pixels" FP32 [-1, 64]). Both must agree on
// whether a body is acceptable (they document the same rules): the target aborts when they do
// not. The body is passed as exactly its bytes, in a buffer of its size, so a read past its end
// is reported.
#include "protocol/v2_codec.hpp"
#include "protocol/v2_validator.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const auto& schema = digits_schema();
  auto validated = tandem::v2::validate_infer_request(body, schema);
  auto decoded = tandem::v2::decode_infer_request(body, schema, {.keep_values = true});
  if (static_cast<bool>(validated) != static_cast<bool>(decoded)) {
    std::fprintf(stderr, "validator: %s\ndecoder: %s\n", validated ? "accepts" : validated.error().message.c_str(),
                 decoded ? "accepts" : decoded.error().message.c_str());
    std::abort();
  }
  return 0;
}
