#include "agent/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace berth::agent {

Result<std::unique_ptr<DataDirLock>> DataDirLock::acquire(const std::string& data_dir) {
  const std::string path = data_dir + "/agent.lock";
  const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return make_error(ErrorCode::kPermissionDenied,
                      "Could not open " + path + ": " + std::strerror(errno) + ".");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    if (err != EWOULDBLOCK)
      return make_error(ErrorCode::kPermissionDenied,
                        "Could not lock " + path + ": " + std::strerror(err) + ".");
    return make_error(ErrorCode::kFailedPrecondition,
                      "The data directory " + data_dir + " is in use by another berth-agent" +
                          (pid.empty() ? "" : " (pid " + pid + ")") +
                          "; stop it first or give this agent its own --data-dir.");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The lock holds without the pid; only a competitor's message loses it.
  }
  return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
}

DataDirLock::~DataDirLock() {
  // Closing releases the flock. The file stays: unlinking it would let a racing start lock a
  // new file while another process still holds the old one.
  ::close(fd_);
}

}  // namespace berth::agent
