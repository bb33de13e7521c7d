#pragma once
// DataDirLock: one berth-agent per data directory. Two agents on one directory would each
// remove the other's containers as leftovers and fight over the stable ports, so the second
// refuses to start and names the process that holds the directory.
//
// The lock is flock(LOCK_EX) on DATA_DIR/agent.lock, which records the holder's pid. The kernel
// drops the lock when the holder dies (even by SIGKILL), so a stale file never blocks a start;
// the pid in it is only for the message. The descriptor is close-on-exec: podman and other
// children do not inherit (and so do not prolong) the lock.
//
// (The controller's store takes a shared flock on its own berth.lock for rotate-master-key;
// that lock has different semantics and records no pid, so it is not reused here.)
#include <memory>
#include <string>

#include "common/result.h"

namespace berth::agent {

class DataDirLock {
 public:
  // Errors: kFailedPrecondition "... is in use by another berth-agent (pid N) ..." when held;
  // kPermissionDenied when the lock file cannot be created.
  static Result<std::unique_ptr<DataDirLock>> acquire(const std::string& data_dir);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace berth::agent
