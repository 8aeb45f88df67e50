#pragma once
#include <string_view>

namespace tandem {

/// Configures the process-wide spdlog logger: JSON lines on stderr, one object per line with
/// time, level, process role and message. Call once at start-up, before any thread starts.
/// Returns false for an unknown level name.
bool init_logging(std::string_view role, std::string_view level);

} // namespace tandem
