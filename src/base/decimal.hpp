#pragma once
#include <cstdint>
#include <string>

namespace tandem {

/// `value` with `precision` digits after the point ("0.125", "-3.000"), as a response header
/// carries a duration or a price. Values that fit (|value| * 10^precision < 9e15, precision
/// 0..9) are rounded half away from zero to the last place and printed with integer arithmetic;
/// others go through std::to_chars. Never "-0...": a negative that rounds to zero prints as zero.
std::string fixed_decimal(double value, int precision);

/// Writes `units` / 10^digits (digits 0..9) at `out` with integer arithmetic and returns the end
/// (room: 32 bytes). All `digits` follow the point, or with `trim` the trailing zeros do not (nor
/// a point with nothing after it). For fixed_decimal() and the audit blocks' numbers.
char* write_scaled_decimal(std::int64_t units, int digits, bool trim, char* out);

} // namespace tandem
