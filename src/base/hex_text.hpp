#pragma once
// Lowercase hex digits written a word at a time (SWAR), for the digests and ids the request path
// writes on every request: a table load per byte cost several times as many instructions.
#include <bit>
#include <cstdint>
#include <cstring>

namespace tandem {

/// Writes the 8 lowercase hex digits of the 4 bytes at `bytes`, in order, to `out`. Each byte is
/// spread to a 16-bit lane, its high nibble to the lane's first (lower) byte and its low nibble
/// to the second; then '0' is added, and 'a' - '0' - 10 more where a nibble is above 9.
inline void write_hex_of4(const unsigned char* bytes, char* out) {
  static_assert(std::endian::native == std::endian::little, "bytes are read as a little-endian word");
  std::uint32_t word = 0;
  std::memcpy(&word, bytes, sizeof word);
  std::uint64_t x = word;
  x = (x | (x << 16)) & 0x0000FFFF0000FFFFULL;
  x = (x | (x << 8)) & 0x00FF00FF00FF00FFULL;
  x = ((x >> 4) & 0x000F000F000F000FULL) | ((x & 0x000F000F000F000FULL) << 8);
  const std::uint64_t above_nine = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  x += 0x3030303030303030ULL + above_nine * ('a' - '0' - 10);
  std::memcpy(out, &x, sizeof x);
}

} // namespace tandem
