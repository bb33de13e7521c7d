#pragma once
// Runs a program without a shell: argv[0] is looked up on PATH, the child gets the agent's own
// environment (so CONTAINERS_CONF / CONTAINERS_STORAGE_CONF are honoured) and stdin from
// /dev/null. Nothing secret may ever be passed in argv: it would be visible in /proc/*/cmdline.
//
// Every call has a deadline: when it passes the child is killed (SIGKILL) and the result says
// timed_out. stdout and stderr are captured up to `max_output` bytes each (the rest is read
// and dropped so the child never blocks on a full pipe). Thread-safe; blocks the caller.
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "common/result.h"

namespace berth::agent {

struct ProcessOutput {
  int exit_code = -1;  // the exit status, or 128+signal when killed by a signal
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Errors: kInvalidArgument (empty argv), kUnavailable (the program could not be started).
Result<ProcessOutput> run_process(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds deadline,
                                  std::size_t max_output = 1 << 20);

}  // namespace berth::agent
