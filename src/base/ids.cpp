#include "base/ids.hpp"

#include "base/hex_text.hpp"

#include <algorithm>
#include <cstring>

namespace tandem {

std::uint64_t IdGenerator::next_u64() {
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void IdGenerator::fill_hex(char* out, std::size_t digits) {
  // Ids are made several times per request: 16 digits from one random word with a handful of
  // word operations, instead of a table lookup per pair.
  for (std::size_t at = 0; at < digits; at += 16) {
    const std::uint64_t bits = next_u64();
    unsigned char bytes[sizeof bits];
    std::memcpy(bytes, &bits, sizeof bits);
    write_hex_of4(bytes, out + at);
    write_hex_of4(bytes + 4, out + at + 8);
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
