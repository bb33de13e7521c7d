#pragma once
// Process-level helpers for every berth binary.
//
// harden_process(): applied first thing in main(): no core files (a core file would hold
// registry passwords that were in memory) and not ptrace-attachable by other unprivileged
// processes. RLIMIT_CORE 0 (soft and hard, so nothing in the process can raise it again) and
// PR_SET_DUMPABLE 0, both read back; kFailedPrecondition naming the step when either does not
// take. The binaries refuse to start then: a process that will hold secrets must not run
// dumpable. Children inherit RLIMIT_CORE 0 but execve resets the dumpable flag (see
// docs/security.md, podman).
//
// spawn_child(): starts a helper process (the local agent) that inherits nothing but stdin,
// stdout and stderr from its parent, whatever descriptors the parent's libraries left without
// O_CLOEXEC (listening sockets, the database, the data-directory lock), and that dies with its
// parent.
#include <sys/types.h>

#include <csignal>
#include <string>
#include <vector>

#include "common/result.h"

namespace berth {

Status harden_process();

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is the executable's path; PATH is not searched
  // Sent to the child when the parent dies (PR_SET_PDEATHSIG; 0 = none). Linux ties it to the
  // *thread* that spawned the child: spawn from a thread that lives as long as the child should.
  int parent_death_signal = SIGTERM;
};

// Starts the child with the caller's environment, an empty signal mask and default signal
// dispositions, every descriptor above 2 closed, and the parent-death signal armed (a parent
// that died before it was armed makes the child exit at once). Errors: kInvalidArgument for an
// empty argv, kUnavailable when fork fails or the executable cannot be run (the exec error is
// reported here, not as an exit code).
Result<pid_t> spawn_child(const SpawnOptions& options);

}  // namespace berth
