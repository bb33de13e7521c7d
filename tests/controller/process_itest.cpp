// Child processes of the controller (the local agent) as real processes: what they inherit and
// that they die with the controller.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/process.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

std::vector<int> open_fds(pid_t pid) {
  std::vector<int> fds;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    fds.push_back(std::stoi(e.path().filename().string()));
  return fds;
}

// Reaps `pid` if it has exited (it is our child, or was re-parented to us as subreaper).
bool exited(pid_t pid) {
  int status = 0;
  const pid_t r = ::waitpid(pid, &status, WNOHANG);
  return r == pid || (r < 0 && errno == ECHILD && ::kill(pid, 0) != 0);
}

}  // namespace

TEST_CASE("A spawned child inherits none of its parent's sockets and files",
          "[process][integration]") {
  // Opened the way a careless library would: without close-on-exec.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 1) == 0);
  const std::string file_path = (fs::temp_directory_path() / "berth-process-itest-file").string();
  const int file = ::open(file_path.c_str(), O_CREAT | O_RDWR, 0600);
  REQUIRE(file >= 0);
  REQUIRE((::fcntl(listener, F_GETFD) & FD_CLOEXEC) == 0);

  auto child = berth::spawn_child({{"/bin/sleep", "30"}, SIGKILL});
  REQUIRE(child.ok());
  const pid_t pid = *child;
  // /proc/PID/fd shows the child's own table once it has exec'd sleep.
  REQUIRE(wait_until([&] {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    return std::getline(comm, name) && name == "sleep";
  }));
  // The dynamic loader of the new program briefly holds its own descriptors (ld.so.cache, libc)
  // after comm changes: wait for that to pass. An inherited descriptor never goes away.
  std::vector<int> fds;
  wait_until([&] {
    fds = open_fds(pid);
    return std::all_of(fds.begin(), fds.end(), [](int fd) { return fd <= 2; });
  });
  for (int fd : fds) CHECK(fd <= 2);

  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ::close(listener);
  ::close(file);
  fs::remove(file_path);
}

TEST_CASE("Spawning a program that does not exist is an error, not a child that exits 127",
          "[process][integration]") {
  auto child = berth::spawn_child({{"/nonexistent/berth-agent"}, SIGTERM});
  REQUIRE_FALSE(child.ok());
  CHECK(child.error().message.find("No such file") != std::string::npos);
}

TEST_CASE("A spawned child exits when its parent is killed with SIGKILL",
          "[process][integration]") {
  // The orphan is re-parented to this process, so it can be reaped and checked here.
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t parent = ::fork();
  REQUIRE(parent >= 0);
  if (parent == 0) {
    // The stand-in controller: spawns the child the way LocalAgent does, then waits forever.
    ::close(pipe_fds[0]);
    auto child = berth::spawn_child({{"/bin/sleep", "300"}, SIGTERM});
    const pid_t pid = child.ok() ? *child : -1;
    [[maybe_unused]] auto n = ::write(pipe_fds[1], &pid, sizeof pid);
    for (;;) ::pause();
  }
  ::close(pipe_fds[1]);
  pid_t child = -1;
  REQUIRE(::read(pipe_fds[0], &child, sizeof child) == sizeof child);
  ::close(pipe_fds[0]);
  REQUIRE(child > 0);
  CHECK_FALSE(exited(child));

  REQUIRE(::kill(parent, SIGKILL) == 0);
  REQUIRE(::waitpid(parent, nullptr, 0) == parent);
  const bool child_gone = wait_until([&] { return exited(child); });
  if (!child_gone) ::kill(child, SIGKILL);
  CHECK(child_gone);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}
