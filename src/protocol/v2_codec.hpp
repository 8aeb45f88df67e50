#pragma once
// Open Inference Protocol (KServe v2) REST: request decoding with validation against a model
// schema, and response encoding. Shared by the gateway (validate only) and the worker.
#include "base/status.hpp"
#include "model/model_manifest.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::v2 {

struct DecodedInput {
  std::string name;
  const TensorSpec* spec = nullptr;
  std::vector<std::int64_t> shape;
  std::vector<float> values; // filled only when the caller asks for values (FP32 engines)
};

struct DecodedRequest {
  std::string id;
  std::vector<DecodedInput> inputs;           // in schema order
  std::vector<std::string> requested_outputs; // empty: all outputs
  std::int64_t batch_size = 0;
};

struct DecodeOptions {
  bool keep_values = false;
};

/// Parses and validates an infer request body. Every error names the offending field, e.g.
/// `inputs[0].shape: expected [N, 64] for input "pixels", got [1, 63]`.
Result<DecodedRequest> decode_infer_request(std::string_view body, const ModelSchema& schema,
                                            DecodeOptions options = {});

struct OutputTensor {
  std::string name;
  DataType datatype = DataType::FP32;
  std::vector<std::int64_t> shape;
  std::vector<double> values;
};

/// Encodes {"model_name","model_version","id"?,"outputs":[...]} with shortest round-trip
/// number formatting.
std::string encode_infer_response(std::string_view model_name, std::string_view model_version,
                                  std::string_view id, const std::vector<OutputTensor>& outputs);

/// {"error": message} with JSON escaping.
std::string encode_error(std::string_view message);

/// Model metadata as in the v2 spec: name, versions, platform, inputs, outputs.
std::string encode_model_metadata(std::string_view name, std::string_view version, std::string_view platform,
                                  const ModelSchema& schema);

std::string json_escape(std::string_view text);

/// "[1, 64]"; with `schema`, -1 prints as N ("[N, 64]").
std::string shape_to_string(const std::vector<std::int64_t>& shape, bool schema);

bool is_integer_type(DataType type);

/// Whether `number` fits an integer datatype. How the JSON held it matters at the 64-bit
/// limits, which are not exact doubles: `is_uint64` (above INT64_MAX as an integer) and
/// `is_double` (a fraction, an exponent or beyond 64 bits) follow Boost.JSON's kinds.
bool integer_in_range(DataType type, double number, bool is_uint64, bool is_double);

/// The largest tensor dimension accepted (2^40): far beyond any real tensor, small enough that
/// products of a few dimensions cannot overflow before the element count check refuses them.
inline constexpr std::int64_t kMaxDimension = std::int64_t{1} << 40;
inline constexpr std::string_view kDimensionTooLarge = "dimensions must be at most 1099511627776";

/// A client-supplied value quoted for an error message: at most 64 characters, then "...".
/// Not escaped: encode_error escapes the whole message once.
std::string quote_value(std::string_view text);

} // namespace tandem::v2
