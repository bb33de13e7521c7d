#include "common/process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace berth {

Status harden_process() {
  rlimit none{0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0)
    return make_error(
        ErrorCode::kFailedPrecondition,
        std::string("cannot turn core files off (setrlimit RLIMIT_CORE): ") + std::strerror(errno));
  // Read back: a limit that did not take (a seccomp filter answering 0, a container runtime
  // that pins limits) must not pass for one that did.
  rlimit now{};
  if (::getrlimit(RLIMIT_CORE, &now) != 0 || now.rlim_cur != 0 || now.rlim_max != 0)
    return make_error(ErrorCode::kFailedPrecondition,
                      "core files are still allowed after setrlimit RLIMIT_CORE 0");
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    return make_error(
        ErrorCode::kFailedPrecondition,
        std::string("cannot make the process non-dumpable (prctl PR_SET_DUMPABLE): ") +
            std::strerror(errno));
  if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
    return make_error(ErrorCode::kFailedPrecondition,
                      "the process is still dumpable after prctl PR_SET_DUMPABLE 0");
  return Status::Ok();
}

namespace {

// The parent reads errno from the pipe; nothing else is safe to report from the child.
[[noreturn]] void child_failed(int error_fd, int err) {
  [[maybe_unused]] auto n = ::write(error_fd, &err, sizeof err);
  ::_exit(127);
}

// Between fork and exec only async-signal-safe calls: the parent may have other threads, and
// one of them may have held a lock (malloc's, the logger's) at the moment of the fork.
[[noreturn]] void exec_child(const SpawnOptions& options, char* const* argv, pid_t parent,
                             int error_fd) {
  if (options.parent_death_signal != 0) {
    if (::prctl(PR_SET_PDEATHSIG, options.parent_death_signal) != 0) child_failed(error_fd, errno);
    // The parent may have died between fork() and prctl(): then no signal will ever come.
    if (::getppid() != parent) ::_exit(1);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // EINVAL for some: fine
  // Every descriptor above 2 is closed at exec (marking them close-on-exec rather than closing
  // keeps error_fd open until the exec succeeds).
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    // Kernels before 5.11: close them one by one, keeping the error pipe.
    const long max = ::sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (max > 0 ? max : 65536); ++fd)
      if (fd != error_fd) ::close(fd);
  }
  ::execve(argv[0], argv, environ);
  child_failed(error_fd, errno);
}

}  // namespace

Result<pid_t> spawn_child(const SpawnOptions& options) {
  if (options.argv.empty() || options.argv[0].empty())
    return make_error(ErrorCode::kInvalidArgument, "nothing to run");
  std::vector<std::string> args = options.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    return make_error(ErrorCode::kUnavailable, "cannot create a pipe to start " + args[0]);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return make_error(ErrorCode::kUnavailable, "cannot fork to start " + args[0]);
  }
  if (pid == 0) {
    ::close(pipe_fds[0]);
    exec_child(options, argv.data(), parent, pipe_fds[1]);
  }
  ::close(pipe_fds[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(pipe_fds[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(pipe_fds[0]);
  if (n == sizeof child_errno) {
    // The exec failed: the child has exited; reap it so no zombie stays behind.
    int status = 0;
    ::waitpid(pid, &status, 0);
    return make_error(ErrorCode::kUnavailable,
                      "cannot run " + args[0] + ": " + std::strerror(child_errno));
  }
  return pid;
}

}  // namespace berth
