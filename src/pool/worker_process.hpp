#pragma once
// Starting a worker as a child process of this host (the `local` provider).
#include "base/status.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace tandem::pool {

/// The child's end of the readiness pipe is always this descriptor number.
inline constexpr int kReadyFd = 3;

struct SpawnedProcess {
  pid_t pid = -1;
  int ready_read_fd = -1;   // the parent's end; the caller owns it
  int stderr_read_fd = -1;  // the child's stderr, a pipe the caller owns and must drain
};

/// fork + exec of argv[0] (a path, or a name looked up on PATH). The child: gets the pipe's write end as fd 3, its own
/// process group (a terminal's Ctrl-C reaches only the gateway, which then stops workers in
/// order), default signal dispositions, and PR_SET_PDEATHSIG=SIGKILL so that it cannot outlive
/// a gateway that was killed outright. Its stderr is a pipe (`stderr_read_fd`), so the caller
/// can relay it and keep the reason of a failed start (pool/stderr_relay.hpp).
Result<SpawnedProcess> spawn_process(const std::vector<std::string>& argv);

/// Path of the running executable (/proc/self/exe).
std::string self_executable();

/// Asks the kernel for a free loopback port (bind to port 0, read it, close). For worker
/// commands that cannot report the port they bound themselves.
Result<unsigned short> pick_free_port();

/// Raises the open-files soft limit to the hard limit; returns the new soft limit.
unsigned long raise_open_files_limit();

} // namespace tandem::pool
