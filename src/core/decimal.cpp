#include "core/decimal.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>

namespace tandem {

std::string fixed_decimal(double value, int precision) {
  char buffer[48];
  // Header values (milliseconds, dollars) are small: rounded to an integer of the last place
  // and printed with integer arithmetic, a tenth of the cost of a fixed-precision double
  // conversion. Ties may round the other way than that conversion would; a header does not mind.
  static constexpr std::int64_t kPowers[] = {1,       10,        100,        1'000,       10'000,
                                             100'000, 1'000'000, 10'000'000, 100'000'000, 1'000'000'000};
  if (precision >= 0 && precision <= 9 && std::isfinite(value) &&
      std::fabs(value) * static_cast<double>(kPowers[precision]) < 9e15) {
    const std::int64_t scale = kPowers[precision];
    const std::int64_t scaled = std::llround(value * static_cast<double>(scale));
    const std::uint64_t magnitude =
        scaled < 0 ? 0 - static_cast<std::uint64_t>(scaled) : static_cast<std::uint64_t>(scaled);
    char* p = buffer;
    if (scaled < 0) *p++ = '-';
    p = std::to_chars(p, buffer + sizeof buffer, magnitude / static_cast<std::uint64_t>(scale)).ptr;
    if (precision > 0) {
      *p++ = '.';
      std::uint64_t fraction = magnitude % static_cast<std::uint64_t>(scale);
      for (int d = precision - 1; d >= 0; --d, fraction /= 10) p[d] = static_cast<char>('0' + fraction % 10);
      p += precision;
    }
    return std::string(buffer, p);
  }
  auto r = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed, precision);
  return std::string(buffer, r.ptr);
}

} // namespace tandem
