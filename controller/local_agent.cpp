#include "local_agent.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "common/log.h"

extern char** environ;

namespace berth::controller {
namespace fs = std::filesystem;

fs::path sibling_binary(const std::string& name) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return name;
  return self.parent_path() / name;
}

LocalAgent::LocalAgent(LocalAgentOptions options) : options_(std::move(options)) {}

LocalAgent::~LocalAgent() { stop(); }

Status LocalAgent::spawn_locked() {
  const fs::path base = options_.data_dir / "local-agent";
  std::vector<std::string> args = {options_.agent_binary.string(),
                                   "--controller",
                                   options_.controller_url,
                                   "--credentials",
                                   (base / "credentials").string(),
                                   "--data-dir",
                                   (base / "data").string(),
                                   "--zone",
                                   options_.zone,
                                   "--log-level",
                                   options_.log_level};
  for (const auto& ca : options_.registry_cas) {
    args.push_back("--registry-ca");
    args.push_back(ca);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The controller blocks SIGTERM/SIGINT for its sigwait loop; the child starts with a clean
  // mask and default dispositions so it can be stopped like any process.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return make_error(ErrorCode::kUnavailable,
                      "could not start the local agent " + options_.agent_binary.string());
  }
  pid_ = pid;
  log::info("local agent started", {{"agent", options_.name}, {"pid", pid}});
  return Status::Ok();
}

Status LocalAgent::start() {
  std::lock_guard lock(mu_);
  if (Status st = spawn_locked(); !st.ok()) return st;
  supervisor_ = std::thread([this] { supervise(); });
  return Status::Ok();
}

void LocalAgent::supervise() {
  int restarts = 0;
  for (;;) {
    pid_t pid;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      pid = pid_;
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return;
    std::unique_lock lock(mu_);
    pid_ = -1;
    if (stopping_) return;
    log::warn("local agent exited; restarting it",
              {{"agent", options_.name},
               {"exit_code", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)}});
    const auto delay = std::chrono::milliseconds(500LL << std::min(restarts++, 6));
    if (cv_.wait_for(lock, delay, [this] { return stopping_; })) return;
    if (Status st = spawn_locked(); !st.ok()) {
      log::error("local agent could not be restarted", {{"error", st.error().message}});
      return;
    }
  }
}

void LocalAgent::stop() {
  pid_t pid;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    pid = pid_;
  }
  cv_.notify_all();
  if (pid > 0) {
    kill(pid, SIGTERM);
    // The supervisor reaps it; give it time to finish what it is doing, then insist.
    for (int i = 0; i < 100; ++i) {
      {
        std::lock_guard lock(mu_);
        if (pid_ == -1) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::lock_guard lock(mu_);
    if (pid_ != -1) kill(pid, SIGKILL);
  }
  if (supervisor_.joinable()) supervisor_.join();
}

pid_t LocalAgent::pid() const {
  std::lock_guard lock(mu_);
  return pid_;
}

}  // namespace berth::controller
