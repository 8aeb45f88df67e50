#pragma once
#include <CLI/CLI.hpp>

namespace tandem::cli {

/// Each adds its subcommand to the app; the callback runs it and stores the exit code.
void add_serve_command(CLI::App& app, int& exit_code);
void add_worker_command(CLI::App& app, int& exit_code);
void add_models_command(CLI::App& app, int& exit_code);
void add_requests_command(CLI::App& app, int& exit_code);
void add_rollout_command(CLI::App& app, int& exit_code);
void add_batch_command(CLI::App& app, int& exit_code);

} // namespace tandem::cli
