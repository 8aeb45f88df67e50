#pragma once
// Checks the extra arguments a configuration gives the reference worker, at config load, so a
// typo fails start-up with a message instead of crash-looping every worker.
#include <optional>
#include <string>
#include <vector>

namespace tandem::cli {

/// Parses `args` with the `tandem worker` parser without running the worker. Returns CLI11's
/// message (naming the bad argument) when they would not parse; nullopt when they would.
std::optional<std::string> worker_args_error(const std::vector<std::string>& args);

} // namespace tandem::cli
