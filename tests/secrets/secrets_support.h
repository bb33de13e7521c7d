#pragma once
// What the secrets suite's tests share: a private TMPDIR for every process a test starts (so the
// temp files berth and podman leave are found and scanned), copies of the SQLite files taken
// while the writer runs, a sampler of /proc/PID/{cmdline,environ} for a process tree, and the
// accumulation of findings into one failure list that names where each form was found.
//
// Threading: the test thread, except ProcTreeSampler, which runs its own thread.
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "support/secret_scan.h"
#include "support/testenv.h"

namespace berth::secrets {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A temp dir exported as TMPDIR to this process, hence to every child it starts from now on
// (controller, agent, their podman children, kubectl). Construct it after the shared registry
// started (its own files are not berth's) and before the stack. Restores TMPDIR when destroyed.
class PrivateTmp {
 public:
  PrivateTmp() : dir_(testenv::make_temp_dir("secrets-tmp")) {
    if (const char* old = std::getenv("TMPDIR"); old != nullptr) old_ = old;
    ::setenv("TMPDIR", dir_.c_str(), 1);
  }
  ~PrivateTmp() {
    if (old_.empty()) {
      ::unsetenv("TMPDIR");
    } else {
      ::setenv("TMPDIR", old_.c_str(), 1);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  PrivateTmp(const PrivateTmp&) = delete;
  PrivateTmp& operator=(const PrivateTmp&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string old_;
};

// Every "where: form" a scan found; one CHECK at the end lists them all.
class Findings {
 public:
  explicit Findings(testing::SecretScan scan) : scan_(std::move(scan)) {}
  const testing::SecretScan& scan() const { return scan_; }

  // `text` must hold no form; `where` names it in the report. Counts what was searched.
  void text(const std::string& where, const std::string& text) {
    ++texts_;
    bytes_ += text.size();
    for (const auto& form : scan_.find_in(text)) found_.push_back(where + ": " + form);
  }
  // Every regular file under `root` (recursively), but the exact paths in `except`. Returns how
  // many were searched.
  int files(const std::string& root, const std::vector<std::string>& except = {}) {
    const int before = files_;
    std::error_code ec;
    if (!fs::exists(root, ec)) return 0;
    for (fs::recursive_directory_iterator
             it(root, fs::directory_options::skip_permission_denied, ec),
         end;
         !ec && it != end; it.increment(ec)) {
      if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
      const std::string path = it->path().string();
      bool skip = false;
      for (const auto& e : except) skip = skip || e == path;
      if (skip) continue;
      ++files_;
      text(path, e2e::read_file(path));
      --texts_;
    }
    return files_ - before;
  }
  const std::vector<std::string>& found() const { return found_; }
  int texts() const { return texts_; }
  int file_count() const { return files_; }
  std::size_t bytes() const { return bytes_; }
  std::string summary() const {
    std::ostringstream out;
    out << texts_ << " texts and " << files_ << " files, " << bytes_ << " bytes searched for "
        << scan_.forms().size() << " forms";
    return out.str();
  }

 private:
  testing::SecretScan scan_;
  std::vector<std::string> found_;
  int texts_ = 0;
  int files_ = 0;
  std::size_t bytes_ = 0;
};

// Copies every SQLite file under `root` (*.db and their -wal, -shm, -journal) into `dest` as
// they are now, e.g. while the controller runs and the WAL still holds fresh pages. Returns how
// many files were copied.
inline int copy_databases(const std::string& root, const std::string& dest) {
  int copied = 0;
  std::error_code ec;
  fs::create_directories(dest, ec);
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    const bool sqlite = name.find(".db") != std::string::npos;
    if (!sqlite) continue;
    std::error_code copy_ec;
    fs::copy_file(it->path(), dest + "/" + std::to_string(copied) + "-" + name,
                  fs::copy_options::overwrite_existing, copy_ec);
    if (!copy_ec) ++copied;
  }
  return copied;
}

// `roots` and all their descendants now, pid -> comm. Walks /proc/PID/task/TID/children (a
// few small reads per process of the tree) rather than every process's stat, so a round of
// the sampler below costs milliseconds on a busy machine.
inline std::map<std::string, std::string> process_tree(const std::set<int>& roots) {
  std::map<std::string, std::string> out;
  std::vector<std::string> todo;
  for (int r : roots) todo.push_back(std::to_string(r));
  while (!todo.empty()) {
    const std::string pid = todo.back();
    todo.pop_back();
    if (out.count(pid) != 0) continue;
    std::string comm = e2e::read_file("/proc/" + pid + "/comm");
    if (comm.empty()) continue;  // gone
    out[pid] = comm.substr(0, comm.find('\n'));
    std::error_code ec;
    for (const auto& task : fs::directory_iterator("/proc/" + pid + "/task", ec)) {
      std::istringstream children(e2e::read_file(task.path().string() + "/children"));
      for (std::string child; children >> child;) todo.push_back(child);
    }
  }
  return out;
}

// Samples /proc/PID/cmdline and /proc/PID/environ of the roots (the controller, the agent) and
// every descendant (podman, conmon, ...) as fast as it can (a short pause between rounds), on a
// thread of its own; records every form of the scan it finds. A round "saw a pull" when a
// descendant named podman had "pull" in its argv; its environ was then read too, and the round
// counts as a pull sample only when that environ was readable (non-empty), so a sampler that
// reads nothing cannot count.
class ProcTreeSampler {
 public:
  // `adopted_marker`: conmon, which podman double-forks away from the agent (reparented to
  // init), is sampled too, with its children, when its argv names this string (the podman
  // storage dir of the stack); looked for every 25 rounds.
  ProcTreeSampler(testing::SecretScan scan, std::set<int> roots, std::string adopted_marker = {})
      : scan_(std::move(scan)),
        roots_(std::move(roots)),
        marker_(std::move(adopted_marker)),
        thread_([this] { run(); }) {}
  ~ProcTreeSampler() { stop(); }
  ProcTreeSampler(const ProcTreeSampler&) = delete;
  ProcTreeSampler& operator=(const ProcTreeSampler&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long rounds() const { return rounds_; }
  long pull_samples() const { return pull_samples_; }
  std::vector<std::string> hits() const {
    std::lock_guard lock(mu_);
    return {hits_.begin(), hits_.end()};
  }
  std::set<std::string> comms() const {
    std::lock_guard lock(mu_);
    return comms_;
  }
  // The pull child's pid and argv as last seen (for the report).
  std::string last_pull() const {
    std::lock_guard lock(mu_);
    return last_pull_;
  }

 private:
  void adopt_conmons() {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
      const std::string pid = e.path().filename().string();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (e2e::read_file("/proc/" + pid + "/comm") != "conmon\n") continue;
      if (e2e::read_file("/proc/" + pid + "/cmdline").find(marker_) != std::string::npos)
        roots_.insert(std::stoi(pid));
    }
  }
  void run() {
    while (!stop_) {
      if (!marker_.empty() && rounds_ % 25 == 0) adopt_conmons();
      round();
      ++rounds_;
      std::this_thread::sleep_for(1ms);
    }
  }
  void round() {
    bool pull = false;
    for (const auto& [pid, comm] : process_tree(roots_)) {
      const std::string base = "/proc/" + pid;
      const std::string cmdline = e2e::read_file(base + "/cmdline");
      const std::string environ = e2e::read_file(base + "/environ");
      std::lock_guard lock(mu_);
      comms_.insert(comm);
      for (const auto& form : scan_.find_in(cmdline))
        hits_.insert(form + " in cmdline of " + pid + " " + comm);
      for (const auto& form : scan_.find_in(environ))
        hits_.insert(form + " in environ of " + pid + " " + comm);
      if (comm == "podman" && cmdline.find(std::string("pull\0", 5)) != std::string::npos &&
          !environ.empty()) {
        pull = true;
        last_pull_ = pid + ": " + cmdline;
        for (auto& c : last_pull_) {
          if (c == '\0') c = ' ';
        }
      }
    }
    if (pull) ++pull_samples_;
  }

  const testing::SecretScan scan_;
  std::set<int> roots_;  // the sampler thread's own after construction
  const std::string marker_;
  std::atomic<bool> stop_{false};
  std::atomic<long> rounds_{0};
  std::atomic<long> pull_samples_{0};
  mutable std::mutex mu_;
  std::set<std::string> hits_;
  std::set<std::string> comms_;
  std::string last_pull_;
  std::thread thread_;
};

// Reports each finding as its own failure, then the totals.
inline void require_clean(const Findings& findings) {
  INFO(findings.summary());
  for (const auto& f : findings.found()) {
    INFO(f);
    CHECK(f.empty());
  }
  CHECK(findings.found().empty());
}

}  // namespace berth::secrets
