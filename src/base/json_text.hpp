#pragma once
// JSON string text written by hand, for the encoders that stream JSON instead of building a
// DOM: OTLP spans and audit blocks. Escapes are Boost.JSON serializer's: \" \\ \b \f \n \r \t,
// other control bytes as \u00XX (lowercase hex), everything else (DEL included) as it is. Text
// that is not valid UTF-8 gets U+FFFD for each bad byte: a JSON reader would refuse it.
#include <cstddef>
#include <string>
#include <string_view>

namespace tandem {

/// Length of the valid UTF-8 sequence at the start of `text`, or 0: overlong forms, surrogates
/// and code points above U+10FFFF are invalid (RFC 3629).
std::size_t utf8_sequence_length(const unsigned char* text, std::size_t size);

/// The most bytes write_json_string() writes for `text`: quotes, and every byte as \u00XX.
constexpr std::size_t json_string_bound(std::string_view text) {
  return 6 * text.size() + 2;
}

/// Writes `text` as a quoted JSON string at `out` and returns the end. Room needed:
/// json_string_bound(text).
char* write_json_string(std::string_view text, char* out);

/// Appends `text` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view text);

} // namespace tandem
