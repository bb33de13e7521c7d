#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

extern char** environ;

namespace berth {
namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

// Reads what is available; returns false at EOF or on a hard error.
bool drain(int fd, std::string& into, std::size_t max) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      const std::size_t room = into.size() < max ? max - into.size() : 0;
      into.append(buf, std::min<std::size_t>(room, static_cast<std::size_t>(n)));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

// The caller's environment with `extra` set on top: built for the child only.
std::vector<std::string> child_environment(
    const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : extra) replaced = replaced || name == k;
    if (!replaced) out.emplace_back(entry);
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

}  // namespace

Result<ProcessOutput> run_process(const std::vector<std::string>& argv, const RunOptions& options) {
  if (argv.empty()) return make_error(ErrorCode::kInvalidArgument, "No program to run.");
  const auto deadline = options.deadline;
  const auto max_output = options.max_output;
  Pipe out, err;
  if (::pipe2(out.fd, O_CLOEXEC | O_NONBLOCK) != 0 || ::pipe2(err.fd, O_CLOEXEC | O_NONBLOCK) != 0)
    return make_error(ErrorCode::kResourceExhausted, "Could not create pipes for a child process.");
  // The child's ends must block: some programs misbehave on a non-blocking stdout.
  ::fcntl(out.fd[1], F_SETFL, 0);
  ::fcntl(err.fd[1], F_SETFL, 0);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  // Sockets and files of the caller (the agent's controller link and state database, the
  // controller's connections) stay its own.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  std::vector<std::string> env_strings;
  std::vector<char*> envp;
  if (!options.env.empty()) {
    env_strings = child_environment(options.env);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
  }

  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(),
                                envp.empty() ? environ : envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return make_error(ErrorCode::kUnavailable,
                      "Could not start " + argv[0] + ": " + std::strerror(rc) + ".");
  out.close_end(1);
  err.close_end(1);

  ProcessOutput result;
  const auto until = std::chrono::steady_clock::now() + deadline;
  bool out_open = true, err_open = true, exited = false;
  int status = 0;
  while (!exited) {
    pollfd fds[2] = {{out_open ? out.fd[0] : -1, POLLIN, 0},
                     {err_open ? err.fd[0] : -1, POLLIN, 0}};
    // Short polls: a grandchild (conmon) may keep the pipes open after podman itself exits,
    // so the exit of the direct child, not EOF, ends the call.
    ::poll(fds, 2, 50);
    if (out_open) out_open = drain(out.fd[0], result.out, max_output);
    if (err_open) err_open = drain(err.fd[0], result.err, max_output);
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      exited = true;
    } else if (std::chrono::steady_clock::now() >= until) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      result.timed_out = true;
      exited = true;
    }
  }
  if (out_open) drain(out.fd[0], result.out, max_output);
  if (err_open) drain(err.fd[0], result.err, max_output);
  if (WIFEXITED(status))
    result.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.exit_code = 128 + WTERMSIG(status);
  return result;
}

}  // namespace berth
