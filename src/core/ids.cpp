#include "core/ids.hpp"

#include <algorithm>
#include <array>

namespace tandem {

std::uint64_t IdGenerator::next_u64() {
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void IdGenerator::fill_hex(char* out, std::size_t digits) {
  // Two digits per table lookup: ids are made several times per request.
  static constexpr auto pairs = [] {
    std::array<char, 512> table{};
    constexpr char hex[] = "0123456789abcdef";
    for (std::size_t b = 0; b < 256; ++b) {
      table[2 * b] = hex[b >> 4];
      table[2 * b + 1] = hex[b & 0xF];
    }
    return table;
  }();
  for (std::size_t at = 0; at < digits; at += 16) {
    std::uint64_t bits = next_u64();
    for (std::size_t i = 0; i < 16; i += 2) {
      const std::size_t b = bits & 0xFF;
      out[at + i] = pairs[2 * b];
      out[at + i + 1] = pairs[2 * b + 1];
      bits >>= 8;
    }
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
