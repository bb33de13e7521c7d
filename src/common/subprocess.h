#pragma once
// Runs a program without a shell: argv[0] is looked up on PATH, the child gets the caller's own
// environment (so the agent's CONTAINERS_CONF / CONTAINERS_STORAGE_CONF are honoured) plus the
// variables of RunOptions::env, and stdin from /dev/null. Nothing secret may ever be passed in
// argv: it would be visible in /proc/*/cmdline. RunOptions::env reaches this child only (the
// parent's environment is never changed, so other children do not inherit it).
// Used by the agent (podman) and the Kubernetes client (exec credential plugins).
//
// Every call has a deadline: when it passes the child is killed (SIGKILL) and the result says
// timed_out. stdout and stderr are captured up to `max_output` bytes each (the rest is read
// and dropped so the child never blocks on a full pipe). Thread-safe; blocks the caller.
#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace berth {

struct ProcessOutput {
  int exit_code = -1;  // the exit status, or 128+signal when killed by a signal
  bool timed_out = false;
  std::string out;
  std::string err;
};

struct RunOptions {
  std::chrono::milliseconds deadline{std::chrono::seconds(30)};
  std::size_t max_output = 1 << 20;
  // Added to (or replacing same-named variables of) the child's environment.
  std::vector<std::pair<std::string, std::string>> env;
};

// Errors: kInvalidArgument (empty argv), kUnavailable (the program could not be started).
Result<ProcessOutput> run_process(const std::vector<std::string>& argv, const RunOptions& options);

inline Result<ProcessOutput> run_process(const std::vector<std::string>& argv,
                                         std::chrono::milliseconds deadline,
                                         std::size_t max_output = 1 << 20) {
  return run_process(argv, RunOptions{deadline, max_output, {}});
}

}  // namespace berth
