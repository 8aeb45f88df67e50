#include "cli/commands.hpp"

#include <CLI/CLI.hpp>

#include <csignal>

int main(int argc, char** argv) {
  CLI::App app{"tandem: a hybrid GPU inference platform (dedicated + serverless tiers behind one gateway)",
               "tandem"};
  // A server must not die because a reader of its stdout went away (`tandem serve | head -1`);
  // sockets already use MSG_NOSIGNAL. Workers are started with default dispositions and
  // the reference worker sets this again through this same main().
  std::signal(SIGPIPE, SIG_IGN);
  app.set_version_flag("--version", TANDEM_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  tandem::cli::add_serve_command(app, exit_code);
  tandem::cli::add_worker_command(app, exit_code);
  tandem::cli::add_models_command(app, exit_code);
  tandem::cli::add_requests_command(app, exit_code);
  tandem::cli::add_rollout_command(app, exit_code);
  tandem::cli::add_batch_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a bad command line is exit code 2, like the usage errors the
    // subcommands find themselves (CLI11's own codes are 100 and up).
    return app.exit(e) == 0 ? 0 : 2;
  }
  return exit_code;
}
