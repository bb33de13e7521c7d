#include "common/dir_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace berth {

namespace {

// Byte 0 only: the record written into the file does not need to be covered by the lock.
struct flock first_byte(short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 1;
  return fl;
}

std::optional<LockHolder> parse_holder(std::string_view text) {
  LockHolder out;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out.pid);
  if (ec != std::errc() || out.pid <= 0) return std::nullopt;
  std::string_view rest(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.remove_suffix(1);
  out.holder = std::string(rest);
  return out;
}

std::optional<LockHolder> read_holder_fd(int fd) {
  char buf[256];
  const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  if (n <= 0) return std::nullopt;
  return parse_holder(std::string_view(buf, static_cast<std::size_t>(n)));
}

}  // namespace

Result<std::unique_ptr<DirLock>> DirLock::acquire(const std::filesystem::path& lock_file,
                                                  std::string_view holder) {
  const int fd = ::open(lock_file.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return make_error(
        ErrorCode::kPermissionDenied,
        "cannot open the lock file " + lock_file.string() + ": " + std::strerror(errno));
  struct flock fl = first_byte(F_WRLCK);
  if (::fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    const int err = errno;
    std::string who = "another process";
    if (auto h = read_holder_fd(fd)) {
      who = (h->holder.empty() ? "process" : h->holder) + " (pid " + std::to_string(h->pid) + ")";
    }
    ::close(fd);
    if (err == EAGAIN || err == EACCES)
      return make_error(
          ErrorCode::kFailedPrecondition,
          "the data directory " + lock_file.parent_path().string() + " is in use by " + who);
    return make_error(ErrorCode::kPermissionDenied,
                      "cannot lock " + lock_file.string() + ": " + std::strerror(err));
  }
  const std::string record = std::to_string(::getpid()) + " " + std::string(holder) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, record.data(), record.size(), 0) != static_cast<ssize_t>(record.size())) {
    ::close(fd);
    return make_error(ErrorCode::kResourceExhausted,
                      "cannot record the holder in " + lock_file.string());
  }
  return std::unique_ptr<DirLock>(new DirLock(fd));
}

DirLock::~DirLock() {
  // The record goes first: once the lock is released another holder may already write its own.
  [[maybe_unused]] int rc = ::ftruncate(fd_, 0);
  ::close(fd_);
}

std::optional<LockHolder> read_lock_holder(const std::filesystem::path& lock_file) {
  const int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  auto out = read_holder_fd(fd);
  ::close(fd);
  return out;
}

}  // namespace berth
