#include "local_agent.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include "common/log.h"
#include "common/process.h"

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
  SpawnOptions spawn;
  spawn.argv = {options_.agent_binary.string(), "--controller", options_.controller_url,
                "--credentials", (base / "credentials").string(), "--data-dir",
                (base / "data").string(), "--zone", options_.zone, "--log-level",
                options_.log_level,
                // The agent shares this process's stderr: the same form, whatever it is.
                "--log-format", log::format() == log::Format::kText ? "text" : "json"};
  for (const auto& ca : options_.registry_cas) {
    spawn.argv.push_back("--registry-ca");
    spawn.argv.push_back(ca);
  }
  // SIGTERM lets the agent finish what it is doing, as on a normal stop.
  spawn.parent_death_signal = SIGTERM;
  auto pid = spawn_child(spawn);
  if (!pid.ok()) return pid.error();
  pid_ = *pid;
  log::info("local agent started", {{"agent", options_.name}, {"pid", pid_}});
  return Status::Ok();
}

Status LocalAgent::start() {
  // The supervisor thread spawns every child, the first one too: the parent-death signal is
  // tied to the spawning thread, and this one lives exactly as long as the agent should.
  std::promise<Status> first;
  auto started = first.get_future();
  supervisor_ =
      std::thread([this, first = std::move(first)]() mutable { supervise(std::move(first)); });
  Status st = started.get();
  if (!st.ok() && supervisor_.joinable()) supervisor_.join();
  return st;
}

void LocalAgent::supervise(std::promise<Status> first) {
  {
    std::lock_guard lock(mu_);
    Status st = spawn_locked();
    const bool ok = st.ok();
    first.set_value(std::move(st));
    if (!ok) return;
  }
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
