#pragma once
#include "base/status.hpp"

#include <chrono>
#include <string_view>

namespace tandem {

/// Parses "250ms", "60s", "5m" or a bare number of milliseconds. Rejects negatives, overflow
/// and unknown suffixes with a message that quotes the input.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

} // namespace tandem
