// The registry password (a random canary) during a real deploy: never on a command line or in an
// environment of any process on the machine while berth works, never in a byte of any file berth
// keeps (SQLite db, WAL, agent state, temp dirs, podman storage), never in a log or a response;
// in none of its encoded forms either (base64 of "user:password", JSON-escaped, URL-encoded).
#include <dirent.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "support/skip.h"

namespace e2e = berth::e2e;
namespace testenv = berth::testenv;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Scans /proc/*/cmdline and /proc/*/environ of every process, over and over, on its own thread,
// for every form of the secrets in `scan` and for `sentinel` (raw). Records where it found them:
// "FORM in cmdline of PID COMM", with FORM "sentinel" for the sentinel.
class ProcScanner {
 public:
  ProcScanner(berth::testing::SecretScan scan, std::string sentinel)
      : scan_(std::move(scan)), sentinel_(std::move(sentinel)) {
    thread_ = std::thread([this] { run(); });
  }
  ~ProcScanner() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> hits() const {
    std::lock_guard lock(mu_);
    return {hits_.begin(), hits_.end()};
  }
  long rounds() const { return rounds_; }
  // Distinct command names (comm) whose environ could be read.
  std::set<std::string> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  void run() {
    while (!stop_) {
      scan_once();
      ++rounds_;
    }
  }

  void record(const std::string& where, const std::string& text, const std::string& pid,
              const std::string& comm) {
    std::vector<std::string> found = scan_.find_in(text);
    if (text.find(sentinel_) != std::string::npos) found.push_back("sentinel");
    for (const auto& form : found) hits_.insert(form + " in " + where + " of " + pid + " " + comm);
  }

  void scan_once() {
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return;
    while (dirent* e = ::readdir(proc)) {
      const std::string pid = e->d_name;
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string base = "/proc/" + pid;
      std::string comm = e2e::read_file(base + "/comm");
      comm = comm.substr(0, comm.find('\n'));
      const std::string environ = e2e::read_file(base + "/environ");
      const std::string cmdline = e2e::read_file(base + "/cmdline");
      std::lock_guard lock(mu_);
      if (!environ.empty()) seen_.insert(comm);
      record("cmdline", cmdline, pid, comm);
      record("environ", environ, pid, comm);
    }
    ::closedir(proc);
  }

  const berth::testing::SecretScan scan_;
  const std::string sentinel_;
  std::atomic<bool> stop_{false};
  std::atomic<long> rounds_{0};
  mutable std::mutex mu_;
  std::set<std::string> hits_;
  std::set<std::string> seen_;
  std::thread thread_;
};

}  // namespace

TEST_CASE(
    "The registry password never shows in any process's argv or environment, file, log or response",
    "[e2e][secrets]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  e2e::Stack stack;  // serve --local-agent: the agent is the controller's child
  stack.start();
  const std::string canary = stack.registry().password();
  REQUIRE(canary.rfind("berth-canary-", 0) == 0);
  // Raw, JSON-escaped, URL-encoded, base64 alone and base64("user:password")
  // (support/secret_scan.h).
  const berth::testing::SecretScan scan = stack.registry_secret_scan();

  // The scanner must be able to see what it looks for: a child of ours carries a sentinel in
  // its environment and on its command line.
  const std::string sentinel = e2e::unique_name("sentinel") + "-proc-scan";
  e2e::ChildProcess planted({"/bin/sh", "-c", "sleep 30; true", sentinel},
                            stack.dir() + "/planted.log", {"E2E_SENTINEL=" + sentinel});
  REQUIRE(planted.started());

  ProcScanner scanner(scan, sentinel);
  const json created = stack.create_service(e2e::unique_name("canary"), "v1");
  const std::string id = created["id"];
  const json v1 = stack.wait_running(id, 1);
  // A second pull with the stored (sealed, then unsealed) password.
  stack.patch_image(id, "v2");
  const json v2 = stack.wait_running(id, 2);
  CHECK(e2e::Stack::page(v2["url"]) == "v2\n");
  planted.kill_hard();
  scanner.stop();

  INFO("scan rounds: " << scanner.rounds());
  CHECK(scanner.rounds() > 5);
  bool sentinel_in_cmdline = false, sentinel_in_environ = false;
  for (const auto& hit : scanner.hits()) {
    INFO(hit);
    CHECK(hit.rfind("sentinel ", 0) == 0);  // anything else is a form of the canary
    sentinel_in_cmdline = sentinel_in_cmdline || hit.rfind("sentinel in cmdline", 0) == 0;
    sentinel_in_environ = sentinel_in_environ || hit.rfind("sentinel in environ", 0) == 0;
  }
  CHECK(sentinel_in_cmdline);
  CHECK(sentinel_in_environ);
  const auto seen = scanner.seen();
  CHECK(seen.count("berth-controlle") == 1);  // comm is cut at 15 chars; environ was readable
  CHECK(seen.count("berth-agent") == 1);
  CHECK(seen.count("podman") == 1);  // the agent's podman children (pull, run) were scanned too

  // Files, while the stack runs (the WAL still holds recent pages) and after a clean stop. The
  // agent's auth files hold base64("user:password"): the scan looks for that form too.
  CHECK(scan.files_under(stack.data_dir()).empty());
  CHECK(scan.files_under(stack.podman().path()).empty());
  stack.stop_controller();
  CHECK(scan.files_under(stack.data_dir()).empty());
  // The scan itself works: the account password file is under the stack's dir.
  CHECK_FALSE(berth::testing::SecretScan("e2e-account-").files_under(stack.dir()).empty());

  const std::string log = stack.controller_log();
  CHECK(log.find("\"deploy succeeded\"") != std::string::npos);
  CHECK(scan.lines_in(log).empty());
  for (const auto& body : stack.response_bodies()) CHECK(scan.find_in(body).empty());
}
