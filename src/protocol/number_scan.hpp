#pragma once
// Runs of plain numbers in a float tensor's data array (`0.807843,0.529412,...`), checked many
// bytes at a time with SIMD compares instead of one byte at a time. The validator's element loop
// (v2_validator.cpp) calls a scanner where an element may start; the scanner accepts what it can
// prove is a run of complete, valid elements and hands back the rest. It never reports an error:
// the element loop does, exactly as the worker's decoder would.
#include <cstddef>

namespace tandem::v2::detail {

/// How runs of numbers are checked: one byte at a time; 64 bytes at a time with SSE2, AVX2 or
/// AVX-512 (BW) compares; or 512 bytes at a time, the grammar checked on eight blocks' masks at
/// once in the lanes of AVX-512 registers. The best this CPU supports is chosen at start-up; the
/// verdicts are the same either way.
enum class NumberScan { bytewise, sse2, avx2, avx512, avx512_lanes };

/// Accepts complete elements from `p`, which must be where an element may start (after '[' or
/// ',', or after whitespace that follows one). Returns where it stopped: `p`, or just after the
/// last accepted comma. Adds the accepted elements to `elements`. `reject_long_numbers` turns
/// down any run of 39 or more digits (FP32 and FP16 must range-check those).
using NumberRunScanner = const char* (*)(const char* p, const char* end, bool reject_long_numbers,
                                         std::size_t& elements);

/// Below this many bytes left, no scanner accepts anything.
inline constexpr std::size_t kNumberBlockBytes = 64;

NumberScan number_scan();
/// The scanner for number_scan(); nullptr for bytewise.
NumberRunScanner number_run_scanner();
/// For tests and benchmarks, to cover every variant. Returns false (and changes nothing) when
/// this build or CPU cannot run `scan`. Not thread-safe: call only while nothing is validated.
bool set_number_scan(NumberScan scan);

} // namespace tandem::v2::detail
