#include "pool/child_reaper.hpp"

#include <sys/wait.h>

#include <cstring>
#include <string>

namespace tandem::pool {

ChildReaper::ChildReaper(boost::asio::io_context& io) : signals_(io, SIGCHLD) { arm(); }

void ChildReaper::arm() {
  signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    reap();
    arm();
  });
}

void ChildReaper::watch(pid_t pid, ExitCallback on_exit) { callbacks_[pid] = std::move(on_exit); }

void ChildReaper::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    auto it = callbacks_.find(pid);
    if (it == callbacks_.end()) continue;
    auto callback = std::move(it->second);
    callbacks_.erase(it);
    callback(status);
  }
}

std::string describe_wait_status(int wait_status) {
  if (WIFEXITED(wait_status)) return "exit code " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    int sig = WTERMSIG(wait_status);
    return "killed by signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
  }
  return "status " + std::to_string(wait_status);
}

} // namespace tandem::pool
