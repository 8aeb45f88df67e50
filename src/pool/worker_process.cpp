#include "pool/worker_process.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace tandem::pool {

namespace {

// What execvp would run: a name with a slash as given, a bare name looked up on PATH.
bool find_executable(const std::string& command) {
  if (command.find('/') != std::string::npos) return ::access(command.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  const std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t begin = 0;
  while (begin <= dirs.size()) {
    std::size_t end = dirs.find(':', begin);
    if (end == std::string_view::npos) end = dirs.size();
    const std::string_view dir = dirs.substr(begin, end - begin);
    std::string candidate(dir.empty() ? std::string_view(".") : dir);  // an empty entry is the current directory
    candidate.append("/").append(command);
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    begin = end + 1;
  }
  return false;
}

} // namespace

Result<SpawnedProcess> spawn_process(const std::vector<std::string>& argv) {
  if (argv.empty()) return make_error(ErrorCode::internal, "empty worker command");
  // The child's exec failing shows only as exit code 127; find the program here to say why.
  if (!find_executable(argv[0])) return make_error(ErrorCode::not_found, "command not found: " + argv[0]);
  // Everything the child needs is prepared before fork: after fork only async-signal-safe calls.
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return make_error(ErrorCode::internal, std::string("pipe2: ") + std::strerror(errno));
  int err_fds[2];
  if (::pipe2(err_fds, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return make_error(ErrorCode::internal, std::string("pipe2: ") + std::strerror(err));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    for (int fd : {fds[0], fds[1], err_fds[0], err_fds[1]}) ::close(fd);
    return make_error(ErrorCode::internal, std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
    ::dup2(err_fds[1], STDERR_FILENO);  // clears O_CLOEXEC on the duplicate, as below
    if (fds[1] == kReadyFd) {
      ::fcntl(kReadyFd, F_SETFD, 0);
    } else {
      ::dup2(fds[1], kReadyFd);  // the duplicate does not inherit O_CLOEXEC
    }
    ::execvp(args[0], args.data());  // a bare command name is looked up on PATH
    ::_exit(127);
  }
  ::close(fds[1]);
  ::close(err_fds[1]);
  return SpawnedProcess{pid, fds[0], err_fds[0]};
}

std::string self_executable() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "tandem";
  return std::string(buf, static_cast<std::size_t>(n));
}

Result<unsigned short> pick_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(ErrorCode::internal, std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    return make_error(ErrorCode::internal, std::string("cannot pick a free port: ") + std::strerror(err));
  }
  ::close(fd);
  return static_cast<unsigned short>(ntohs(addr.sin_port));
}

unsigned long raise_open_files_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<unsigned long>(limit.rlim_cur);
}

} // namespace tandem::pool
