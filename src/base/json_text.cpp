#include "base/json_text.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace tandem {
namespace {

/// Bytes copied as they are: printable ASCII and DEL, but the quote and the backslash.
constexpr std::array<bool, 256> kPlainByte = [] {
  std::array<bool, 256> plain{};
  for (std::size_t c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

/// Whether the 8 bytes at `p` are all plain. Bit tricks on one 64-bit word, a set high bit in a
/// lane marking a hit: ids and digests, most of the text written, go eight bytes a step.
bool all_plain(const char* p) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  std::uint64_t w = 0;
  std::memcpy(&w, p, 8);
  const auto zero_lane = [&](std::uint64_t x) { return (x - ones) & ~x & highs; };
  const std::uint64_t control = (w - ones * 0x20) & ~w & highs; // lanes below 0x20 (or >= 0x80)
  const std::uint64_t special = zero_lane(w ^ (ones * '"')) | zero_lane(w ^ (ones * '\\'));
  return ((w & highs) | control | special) == 0;
}

} // namespace

std::size_t utf8_sequence_length(const unsigned char* text, std::size_t size) {
  const unsigned char lead = text[0];
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80; // bounds of the second byte
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;  // overlong
    if (lead == 0xED) high = 0x9F; // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;  // overlong
    if (lead == 0xF4) high = 0x8F; // above U+10FFFF
  } else {
    return 0;
  }
  if (size < length || text[1] < low || text[1] > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (text[i] < 0x80 || text[i] > 0xBF) return 0;
  }
  return length;
}

char* write_json_string(std::string_view text, char* out) {
  static constexpr char hex[] = "0123456789abcdef";
  const char* const s = text.data();
  const std::size_t size = text.size();
  *out++ = '"';
  std::size_t i = 0;
  while (i < size) {
    const std::size_t plain_from = i;
    while (i + 8 <= size && all_plain(s + i)) i += 8;
    while (i < size && kPlainByte[static_cast<unsigned char>(s[i])]) ++i;
    std::memcpy(out, s + plain_from, i - plain_from);
    out += i - plain_from;
    if (i == size) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t length =
          utf8_sequence_length(reinterpret_cast<const unsigned char*>(s + i), size - i);
      if (length != 0) {
        std::memcpy(out, s + i, length);
        out += length;
        i += length;
      } else {
        std::memcpy(out, "\xEF\xBF\xBD", 3); // U+FFFD
        out += 3;
        ++i;
      }
      continue;
    }
    char escape = 0;
    switch (c) {
    case '"': escape = '"'; break;
    case '\\': escape = '\\'; break;
    case '\b': escape = 'b'; break;
    case '\f': escape = 'f'; break;
    case '\n': escape = 'n'; break;
    case '\r': escape = 'r'; break;
    case '\t': escape = 't'; break;
    default: break;
    }
    if (escape != 0) {
      *out++ = '\\';
      *out++ = escape;
    } else {
      const char escaped[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
      std::memcpy(out, escaped, sizeof escaped);
      out += sizeof escaped;
    }
    ++i;
  }
  *out++ = '"';
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  const std::size_t start = out.size();
  out.resize(start + json_string_bound(text));
  char* end = write_json_string(text, out.data() + start);
  out.resize(static_cast<std::size_t>(end - out.data()));
}

} // namespace tandem
