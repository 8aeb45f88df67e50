#include "core/ids.hpp"

#include <algorithm>
#include <cstring>

namespace tandem {

std::uint64_t IdGenerator::next_u64() {
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

namespace {

// Eight hex digits from the low 32 bits, all in one 64-bit word (SWAR): each nibble spread to a
// byte of its own, then '0' added, and 'a' - '0' - 10 more where the nibble is above 9. Which
// digit comes from which nibble does not matter for random ids.
void write_hex8(std::uint32_t bits, char* out) {
  std::uint64_t x = bits;
  x = (x | (x << 16)) & 0x0000FFFF0000FFFFULL;
  x = (x | (x << 8)) & 0x00FF00FF00FF00FFULL;
  x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0FULL;
  const std::uint64_t above_nine = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  x += 0x3030303030303030ULL + above_nine * ('a' - '0' - 10);
  std::memcpy(out, &x, sizeof x);
}

} // namespace

void IdGenerator::fill_hex(char* out, std::size_t digits) {
  // Ids are made several times per request: 16 digits from one random word with a handful of
  // word operations, instead of a table lookup per pair.
  for (std::size_t at = 0; at < digits; at += 16) {
    const std::uint64_t bits = next_u64();
    write_hex8(static_cast<std::uint32_t>(bits), out + at);
    write_hex8(static_cast<std::uint32_t>(bits >> 32), out + at + 8);
  }
}

std::string IdGenerator::next() {
  std::string out(32, '0');
  fill_hex(out.data(), 32);
  return out;
}

std::string IdGenerator::next_time_ordered(std::int64_t unix_ms) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(32, '0');
  auto time = static_cast<std::uint64_t>(unix_ms);
  for (int i = 11; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = hex[time & 0xF];
    time >>= 4;
  }
  // 80 random bits after the time: unique within a millisecond.
  char random[32];
  fill_hex(random, 32);
  std::copy(random, random + 20, out.begin() + 12);
  return out;
}

bool is_acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

} // namespace tandem
