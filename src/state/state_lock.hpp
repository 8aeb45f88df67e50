#pragma once
// One server per state directory. Two servers on one directory would both recover its unfinished
// jobs and run them twice, and both append to the same audit trail. The lock is flock(2) on a
// file in the directory: the kernel drops it when the holder's process ends, however it ends
// (kill -9 included), so a crash never leaves a stale lock behind.
#include "base/status.hpp"

#include <filesystem>

namespace tandem::registry {

/// Holds the exclusive lock on a state directory until destroyed. Move-only; not thread-bound.
class StateLock {
public:
  StateLock() = default;
  explicit StateLock(int fd) : fd_(fd) {}
  StateLock(StateLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  StateLock& operator=(StateLock&& other) noexcept;
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  ~StateLock();

private:
  int fd_ = -1;
};

/// The lock file inside a state directory.
std::filesystem::path state_lock_path(const std::filesystem::path& state_dir);

/// Takes the lock without waiting, and writes this process's pid into the lock file. Fails with
/// `conflict` naming the directory and the holder's pid when another process holds it.
Result<StateLock> lock_state_dir(const std::filesystem::path& state_dir);

} // namespace tandem::registry
