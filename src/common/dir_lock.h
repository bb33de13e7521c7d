#pragma once
// An exclusive, process-lifetime claim on a data directory that says who holds it.
//
// The claim is an open-file-description lock (F_OFD_SETLK) on the first byte of the directory's
// lock file (berth.lock, the file whose flock(2) the store takes shared and rotate-master-key
// exclusive: the two kinds of lock do not interact on Linux), and the holder writes
// "PID HOLDER" into the file. The kernel drops the lock when the holder dies, even by SIGKILL,
// so a stale file never blocks a restart; a stale pid in the file is only shown when the lock is
// really held. The descriptor is close-on-exec: a child never inherits the claim.
#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace berth {

class DirLock {
 public:
  // Claims `lock_file` (created 0600 when missing). kFailedPrecondition when another process
  // holds it, with a message naming that process ("... in use by berth-controller serve (pid
  // 1234)"); kPermissionDenied when the file cannot be opened.
  static Result<std::unique_ptr<DirLock>> acquire(const std::filesystem::path& lock_file,
                                                  std::string_view holder);
  ~DirLock();  // clears the record and releases the claim
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

// The pid and holder recorded in `lock_file`, when one is recorded.
struct LockHolder {
  pid_t pid = 0;
  std::string holder;
};
std::optional<LockHolder> read_lock_holder(const std::filesystem::path& lock_file);

}  // namespace berth
