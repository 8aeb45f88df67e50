#include "base/decimal.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace tandem {
namespace {

constexpr std::uint64_t kPowers[] = {1,       10,        100,        1'000,       10'000,
                                     100'000, 1'000'000, 10'000'000, 100'000'000, 1'000'000'000};

// "00" "01" ... "99": the fraction is written two digits per division.
constexpr auto kDigitPairs = [] {
  std::array<char, 200> pairs{};
  for (std::size_t i = 0; i < 100; ++i) {
    pairs[2 * i] = static_cast<char>('0' + i / 10);
    pairs[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return pairs;
}();

} // namespace

std::string fixed_decimal(double value, int precision) {
  char buffer[48];
  // Header values (milliseconds, dollars) are small: rounded to an integer of the last place
  // and printed with integer arithmetic, a tenth of the cost of a fixed-precision double
  // conversion. Ties may round the other way than that conversion would; a header does not mind.
  if (precision >= 0 && precision <= 9 && std::isfinite(value) &&
      std::fabs(value) * static_cast<double>(kPowers[precision]) < 9e15) {
    const std::int64_t scaled = std::llround(value * static_cast<double>(kPowers[precision]));
    char* p = write_scaled_decimal(scaled, precision, false, buffer);
    return std::string(buffer, p);
  }
  auto r = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed, precision);
  return std::string(buffer, r.ptr);
}

char* write_scaled_decimal(std::int64_t units, int digits, bool trim, char* out) {
  const std::uint64_t scale = kPowers[digits];
  const std::uint64_t magnitude =
      units < 0 ? 0 - static_cast<std::uint64_t>(units) : static_cast<std::uint64_t>(units);
  if (units < 0) *out++ = '-';
  out = std::to_chars(out, out + 24, magnitude / scale).ptr;
  std::uint64_t fraction = magnitude % scale;
  if (trim && fraction == 0) return out; // whole numbers, zero above all, are common in records
  char places[9];
  // Each request writes a handful of these (reply headers, audit durations): two digits a step.
  int d = digits;
  for (; d >= 2; d -= 2, fraction /= 100)
    std::memcpy(places + d - 2, kDigitPairs.data() + 2 * (fraction % 100), 2);
  if (d == 1) places[0] = static_cast<char>('0' + fraction);
  int length = digits;
  if (trim)
    while (length > 0 && places[length - 1] == '0') --length;
  if (length == 0) return out;
  *out++ = '.';
  std::memcpy(out, places, static_cast<std::size_t>(length));
  return out + length;
}

} // namespace tandem
