#pragma once
// What both crash tests share: the kill points and the seeded plan over them, the pause file that
// holds a process at a point (src/common/pause_point.h), a sampler of the app's containers, and
// the checks made after every kill (SQLite integrity, auth files left behind).
//
// A kill point is a moment of a rollout (where the product calls pause_point()) and a victim
// (the process SIGKILLed while one of them is held there). The victim is not always the process
// that is held: killing the controller while the agent is held at `pull` is a crash of the
// controller during the pull.
//
// Threading: the test thread, except ContainerSampler, which runs its own thread.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "support/skip.h"
#include "support/testenv.h"
#include "support/wait.h"

namespace berth::crash {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// In rollout order. The first three are the controller's, the rest the agent's.
inline const std::vector<std::string>& points() {
  static const std::vector<std::string> all = {"accept",       "resolve", "dispatch", "pull",
                                               "health-check", "cutover", "teardown"};
  return all;
}

enum class Victim { kController, kAgent };

inline const char* name_of(Victim v) { return v == Victim::kController ? "controller" : "agent"; }

// The process whose code holds `point` (and whose log says it reached it).
inline Victim held_by(const std::string& point) {
  return point == "accept" || point == "resolve" || point == "dispatch" ? Victim::kController
                                                                        : Victim::kAgent;
}

struct Kill {
  std::string point;
  Victim victim = Victim::kController;
};

// BERTH_CRASH_SEED (decimal) to replay a run; a fresh random seed otherwise.
inline std::uint64_t seed() {
  if (const char* s = std::getenv("BERTH_CRASH_SEED"); s != nullptr && *s != '\0') {
    return std::stoull(s);
  }
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

// BERTH_CRASH_ROLLOUTS overrides the number of rollouts of every mode (docs/testing.md).
inline int rollouts(int default_count) {
  if (const char* s = std::getenv("BERTH_CRASH_ROLLOUTS"); s != nullptr && *s != '\0') {
    return std::max(1, std::stoi(s));
  }
  return default_count;
}

// `count` kills: rounds of every (point, victim) pair, each round in an order drawn from `seed`,
// so any 14 consecutive rollouts cover every pair. The shuffle is written out (Fisher-Yates on
// the engine's raw output) because std::shuffle's order differs between standard libraries, and
// a seed must replay the same run anywhere.
inline std::vector<Kill> plan(std::uint64_t seed, int count) {
  std::mt19937_64 rng(seed);
  std::vector<Kill> pairs;
  for (const auto& p : points()) {
    pairs.push_back({p, Victim::kController});
    pairs.push_back({p, Victim::kAgent});
  }
  std::vector<Kill> out;
  while (static_cast<int>(out.size()) < count) {
    auto round = pairs;
    for (std::size_t i = round.size() - 1; i > 0; --i) {
      std::swap(round[i], round[static_cast<std::size_t>(rng() % (i + 1))]);
    }
    for (auto& k : round) {
      if (static_cast<int>(out.size()) < count) out.push_back(std::move(k));
    }
  }
  return out;
}

// The table the suite prints at the end: point, process, count (every pair, zeros included).
class Coverage {
 public:
  void add(const Kill& k) { ++counts_[{k.point, name_of(k.victim)}]; }
  std::string table(const std::string& title) const {
    std::ostringstream out;
    out << title << "\n"
        << std::left << std::setw(14) << "point" << std::setw(12) << "process"
        << "count\n";
    int total = 0;
    for (const auto& p : points()) {
      for (const char* v : {"controller", "agent"}) {
        auto it = counts_.find({p, v});
        const int n = it == counts_.end() ? 0 : it->second;
        total += n;
        out << std::setw(14) << p << std::setw(12) << v << n << "\n";
      }
    }
    out << "total " << total << " kills\n";
    return out.str();
  }

 private:
  std::map<std::pair<std::string, std::string>, int> counts_;
};

// The file pause_point() reads, named to every process the test starts through
// BERTH_TEST_PAUSE_FILE. Construct it before the stack (children copy this process's
// environment when they start) and let it outlive the stack.
class PauseFile {
 public:
  PauseFile() : dir_(testenv::make_temp_dir("crash-pause")), path_(dir_ + "/point") {
    write("");
    ::setenv("BERTH_TEST_PAUSE_FILE", path_.c_str(), 1);
  }
  ~PauseFile() {
    ::unsetenv("BERTH_TEST_PAUSE_FILE");
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  PauseFile(const PauseFile&) = delete;
  PauseFile& operator=(const PauseFile&) = delete;

  void arm(const std::string& point) { write(point + "\n"); }
  void release() { write(""); }

 private:
  // Whole or not at all: a process never reads half a point name.
  void write(const std::string& text) {
    const std::string tmp = path_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << text;
    }
    fs::rename(tmp, path_);
  }
  std::string dir_;
  std::string path_;
};

// What pause_point() logs when it holds a process.
inline constexpr const char* kPauseLine = "\"test pause point reached\"";

inline int count_in(const std::string& text, const std::string& needle) {
  int found = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++found;
  }
  return found;
}

// Samples `podman ps -a` for containers with `label` on a thread of its own, every 250 ms, and
// records every sample with no running container taken while a healthy one is expected
// (expect_serving(true): the app was serving before). A SIGKILLed agent leaves its containers
// running (they are conmon's children, not the agent's), so none of the kill points may ever
// leave the app with no container.
class ContainerSampler {
 public:
  ContainerSampler(std::vector<std::string> env, std::string label)
      : env_(std::move(env)), label_(std::move(label)), thread_([this] { loop(); }) {}
  ~ContainerSampler() { stop(); }
  ContainerSampler(const ContainerSampler&) = delete;
  ContainerSampler& operator=(const ContainerSampler&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void expect_serving(bool on) { expect_ = on; }
  // Which rollout the samples belong to (for the violation messages).
  void set_rollout(int n) { rollout_ = n; }
  int samples() const { return samples_; }
  std::vector<std::string> violations() {
    std::lock_guard lock(mu_);
    return violations_;
  }

 private:
  void loop() {
    while (!stop_) {
      std::string out;
      const int rc = testenv::run_command({"podman", "ps", "--filter", "label=" + label_,
                                           "--filter", "status=running", "--format", "{{.Names}}"},
                                          &out, env_, 30);
      if (rc == 0) {
        ++samples_;
        if (expect_ && running_names(out) == 0) {
          std::lock_guard lock(mu_);
          violations_.push_back("rollout " + std::to_string(rollout_.load()) +
                                ": no running container; podman ps: [" + out + "]");
        }
      }
      for (int i = 0; i < 5 && !stop_; ++i) std::this_thread::sleep_for(50ms);
    }
  }
  // Lines naming a berth container (a podman warning on stderr is not a container).
  static int running_names(const std::string& out) {
    int n = 0;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("berth-", 0) == 0) ++n;
    }
    return n;
  }
  std::vector<std::string> env_;
  std::string label_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> expect_{false};
  std::atomic<int> rollout_{0};
  std::atomic<int> samples_{0};
  std::mutex mu_;
  std::vector<std::string> violations_;
  std::thread thread_;
};

// Every SQLite database (*.db) under `dir`, for the integrity check.
inline std::vector<std::string> databases(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().extension() == ".db") {
      out.push_back(it->path().string());
    }
  }
  return out;
}

// `PRAGMA integrity_check` on a copy of `db` with its -wal and -shm files, taken while the
// process that writes it is dead: the copy replays the WAL as the next start would, and the
// original stays exactly as the crash left it. "ok" when sound, else sqlite3's report.
inline std::string integrity(const std::string& db) {
  const std::string dir = testenv::make_temp_dir("crash-db");
  const std::string copy = dir + "/" + fs::path(db).filename().string();
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (fs::exists(db + suffix, ec)) fs::copy_file(db + suffix, copy + suffix, ec);
  }
  std::string out;
  const int rc = testenv::run_command({"sqlite3", copy, "PRAGMA integrity_check;"}, &out, {}, 60);
  fs::remove_all(dir, ec);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (rc != 0) return "sqlite3 exited " + std::to_string(rc) + ": " + out;
  return out;
}

// Checks every database under `dir` (the data dir of a process that is dead now); returns how
// many there were.
inline int check_databases(const std::string& dir, const std::string& what) {
  const auto dbs = databases(dir);
  for (const auto& db : dbs) {
    INFO(what << ": " << db);
    CHECK(integrity(db) == "ok");
  }
  return static_cast<int>(dbs.size());
}

// Auth files (and the private directories the agent writes them in, auth-XXXXXX) under `dir`.
inline std::vector<std::string> auth_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("auth-", 0) == 0 || name == "auth.json") out.push_back(it->path().string());
  }
  return out;
}

// sqlite3 runs the integrity check: declared like the other peers (skip, or fail under CI).
#define BERTH_REQUIRE_SQLITE3()                                                      \
  do {                                                                               \
    if (!::berth::testenv::on_path("sqlite3")) {                                     \
      ::berth::testing::skip_test("sqlite3: not on PATH (apt-get install sqlite3)"); \
      return;                                                                        \
    }                                                                                \
  } while (false)

// Printed at the start (stdout, so ctest's log has it even when the test fails later).
// Removes every image no container uses from the stack's podman storage, so that the next
// rollout really pulls: the agent skips the pull (and writes no auth file) when local storage
// already holds the pinned digest (src/agent/deployer.cpp), and the suite alternates two tags,
// so without this the `pull` point would be reached only by the first two rollouts. The
// serving container's image is in use and stays.
inline void forget_unused_images(const testenv::PodmanEnv& podman) {
  std::string out;
  const int rc = testenv::run_command({"podman", "image", "prune", "--all", "--force"}, &out,
                                      podman.env(), 60);
  INFO("podman image prune: exit status " << rc << "\n" << out);
  REQUIRE(rc == 0);
}

inline void announce(const std::string& mode, std::uint64_t s, const std::vector<Kill>& kills) {
  std::cout << "crash suite (" << mode << "): seed " << s << " (replay: BERTH_CRASH_SEED=" << s
            << "), " << kills.size() << " rollouts:";
  for (const auto& k : kills) std::cout << " " << k.point << "/" << name_of(k.victim);
  std::cout << std::endl;
}

}  // namespace berth::crash
