#pragma once
// Reaps child processes on SIGCHLD and tells whoever spawned each pid how it ended.
#include <boost/asio.hpp>
#include <sys/types.h>

#include <functional>
#include <unordered_map>

namespace tandem::pool {

class ChildReaper {
public:
  using ExitCallback = std::function<void(int wait_status)>;
  /// Create before spawning any child. Callbacks run on the io thread.
  explicit ChildReaper(boost::asio::io_context& io);
  void watch(pid_t pid, ExitCallback on_exit);
  [[nodiscard]] std::size_t watched() const { return callbacks_.size(); }
  /// Reaps whatever has exited now (also called from the SIGCHLD handler).
  void reap();

private:
  void arm();
  boost::asio::signal_set signals_;
  std::unordered_map<pid_t, ExitCallback> callbacks_;
};

/// "exit code 3" / "killed by signal 9 (Killed)".
std::string describe_wait_status(int wait_status);

} // namespace tandem::pool
