#pragma once
#include <string>

namespace tandem {

/// `value` with `precision` digits after the point ("0.125", "-3.000"), as a response header
/// carries a duration or a price. Values that fit (|value| * 10^precision < 9e15, precision
/// 0..9) are rounded half away from zero to the last place and printed with integer arithmetic;
/// others go through std::to_chars. Never "-0...": a negative that rounds to zero prints as zero.
std::string fixed_decimal(double value, int precision);

} // namespace tandem
