#include "state/state_lock.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <unistd.h>

namespace tandem::registry {
namespace {

std::string read_holder_pid(int fd) {
  char text[32] = {};
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  std::string pid(text, n > 0 ? static_cast<size_t>(n) : 0);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid.empty() ? "unknown" : pid;
}

} // namespace

StateLock& StateLock::operator=(StateLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

// Closing the descriptor releases the flock; the file stays, holding the last holder's pid.
StateLock::~StateLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::filesystem::path state_lock_path(const std::filesystem::path& state_dir) {
  return state_dir / "tandem.lock";
}

Result<StateLock> lock_state_dir(const std::filesystem::path& state_dir) {
  const auto path = state_lock_path(state_dir);
  // O_CLOEXEC: a worker process must not inherit the lock and keep it after the server dies.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return make_error(ErrorCode::internal,
                      "cannot open lock file " + path.string() + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    std::string message;
    if (error == EWOULDBLOCK) {
      message = "state directory " + state_dir.string() + " is in use by another tandem serve (pid " +
                read_holder_pid(fd) + "); stop it or choose another --state";
    } else {
      message = "cannot lock " + path.string() + ": " + std::strerror(error);
    }
    ::close(fd);
    return make_error(ErrorCode::conflict, std::move(message));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock is held all the same; only the message a second server prints loses the pid.
  }
  return StateLock(fd);
}

} // namespace tandem::registry
