// For fuzz_config_no_worker_args only: accepts every worker argument list, so the rest of the
// config loader can be fuzzed while cli::worker_args_error() (src/cli/worker_command.cpp) has
// the use-after-free recorded in fuzz/crashes/config_worker_args_use_after_free.yaml.
#include <optional>
#include <string>
#include <vector>

namespace tandem::cli {
std::optional<std::string> worker_args_error(const std::vector<std::string>&) { return std::nullopt; }
} // namespace tandem::cli
