#pragma once
// Query strings (application/x-www-form-urlencoded): what the admin API and the CLI exchange.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::http {

/// Splits "a=1&b=x%20y" into decoded pairs ('+' is a space). nullopt on a malformed
/// percent-escape. Empty segments ("a=1&&b=2") are skipped; a key without '=' has an empty value.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query);

/// Percent-encodes everything but the unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string url_encode(std::string_view text);

} // namespace tandem::http
