// Validates one request body repeatedly with the gateway's validator, for instruction counts
// (run under callgrind by bench/validator/run) and a rough wall-clock figure. Not a test: it
// only reports what the validator said and how long it took.
//
// Usage: tandem_validator_bench MODEL_DIR BODY_FILE [ITERATIONS]
// VALIDATOR_SCAN=bytewise|sse2|avx2|avx512|avx512_lanes in the environment picks how runs of numbers are
// scanned (default: the best this CPU supports), to compare the variants.
#include "protocol/v2_validator.hpp"
#include "model/model_manifest.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR BODY_FILE [ITERATIONS]\n", argv[0]);
    return 2;
  }
  auto manifest = tandem::load_model_manifest(argv[1]);
  if (!manifest.ok()) {
    std::fprintf(stderr, "%s\n", manifest.error().message.c_str());
    return 1;
  }
  std::ifstream in(argv[2], std::ios::binary);
  const std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) {
    std::fprintf(stderr, "cannot read %s\n", argv[2]);
    return 1;
  }
  const long iterations = argc == 4 ? std::strtol(argv[3], nullptr, 10) : 100;
  if (iterations < 1) {
    std::fprintf(stderr, "ITERATIONS must be at least 1\n");
    return 2;
  }

  if (const char* scan = std::getenv("VALIDATOR_SCAN"); scan != nullptr && *scan != '\0') {
    using tandem::v2::detail::NumberScan;
    const std::string_view name(scan);
    const NumberScan chosen = name == "bytewise" ? NumberScan::bytewise
                              : name == "sse2"   ? NumberScan::sse2
                              : name == "avx2"   ? NumberScan::avx2
                              : name == "avx512" ? NumberScan::avx512
                                                 : NumberScan::avx512_lanes;
    if ((name != "bytewise" && name != "sse2" && name != "avx2" && name != "avx512" &&
         name != "avx512_lanes") ||
        !tandem::v2::detail::set_number_scan(chosen)) {
      std::fprintf(
          stderr,
          "VALIDATOR_SCAN=%s: unknown, or not supported here (bytewise, sse2, avx2, avx512, avx512_lanes)\n",
          scan);
      return 2;
    }
  }

  bool ok = true;
  std::string verdict;
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < iterations; ++i) {
    auto result = tandem::v2::validate_infer_request(body, manifest->schema);
    ok = result.ok();
    if (!ok) verdict = result.error().message;
  }
  const std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
  std::printf("%s: %zu bytes, %s, %.1f us per validation (%ld iterations, wall clock)\n", argv[2],
              body.size(), ok ? "valid" : verdict.c_str(), elapsed.count() / static_cast<double>(iterations),
              iterations);
  return ok ? 0 : 1;
}
