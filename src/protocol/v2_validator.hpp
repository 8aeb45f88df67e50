#pragma once
// The gateway's validation of an infer request: the same rules and the same error messages as
// decode_infer_request, in one pass over the bytes, without building a JSON document or
// converting the tensor data to numbers. The body is forwarded as it came, so the gateway only
// has to know that it is well-formed and matches the schema; the worker decodes the values.
// (A 150 000-value tensor costs ~7.5 ms as a JSON DOM; here runs of numbers are checked 64 bytes
// at a time with SIMD compares.)
#include "core/status.hpp"
#include "registry/model_manifest.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::v2 {

struct ValidatedRequest {
  std::int64_t batch_size = 0;
  std::string id;
  std::vector<std::string> requested_outputs;
};

Result<ValidatedRequest> validate_infer_request(std::string_view body, const ModelSchema& schema);

namespace detail {

/// How the validator checks runs of numbers in float tensors: one byte at a time, or 64 bytes at
/// a time with SSE2, AVX2 or AVX-512 (BW) compares. The best this CPU supports is chosen at
/// start-up; the verdicts are the same either way.
enum class NumberScan { bytewise, sse2, avx2, avx512 };
NumberScan number_scan();
/// For tests, to cover every variant. Returns false (and changes nothing) when this build or
/// CPU cannot run `scan`. Not thread-safe: call only while nothing is being validated.
bool set_number_scan(NumberScan scan);

} // namespace detail

} // namespace tandem::v2
