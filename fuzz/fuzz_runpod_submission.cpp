// The RunPod /run and /runsync body parser.
#include "jobs/runpod_api.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto parsed = tandem::jobs::parse_submission(body, "digits", 86'400'000);
  (void)parsed;
  return 0;
}
