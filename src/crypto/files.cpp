#include "crypto/files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/password.h"

namespace berth::crypto::detail {
namespace fs = std::filesystem;

namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

Error io_error(std::string what, const fs::path& path, int err) {
  const ErrorCode code = (err == ENOSPC || err == EDQUOT) ? ErrorCode::kResourceExhausted
                         : (err == EACCES || err == EPERM || err == EROFS)
                             ? ErrorCode::kPermissionDenied
                             : ErrorCode::kInternal;
  return make_error(code, what + " " + path.string() + ": " + errno_text(err));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes explicitly so a failing close (delayed write error) is reported.
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

Status write_all(int fd, std::string_view bytes, const fs::path& path) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write", path, errno);
    }
    done += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

fs::path parent_of(const fs::path& path) {
  fs::path parent = path.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// Writes `bytes` to a fresh temp file beside `path` and fsyncs it; returns the temp path.
Result<fs::path> write_temp(const fs::path& path, std::string_view bytes, mode_t mode) {
  const fs::path tmp = path.string() + ".tmp-" + random_hex(6);
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd.get() < 0) return io_error("cannot create", tmp, errno);
  Status st = Status::Ok();
  if (::fchmod(fd.get(), mode) != 0) {
    st = io_error("cannot chmod", tmp, errno);
  } else {
    st = write_all(fd.get(), bytes, tmp);
  }
  if (st.ok() && ::fsync(fd.get()) != 0) st = io_error("cannot fsync", tmp, errno);
  if (fd.close() != 0 && st.ok()) st = io_error("cannot close", tmp, errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st.error();
  }
  return tmp;
}

}  // namespace

Status ensure_private_dir(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return Status::Ok();
  const fs::path parent = dir.parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec)
      return make_error(ErrorCode::kInternal,
                        "cannot create directory " + parent.string() + ": " + ec.message());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return io_error("cannot create directory", dir, errno);
  }
  if (!fs::is_directory(dir, ec)) {
    return make_error(ErrorCode::kFailedPrecondition,
                      dir.string() + " exists and is not a directory");
  }
  return Status::Ok();
}

Status fsync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return io_error("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return io_error("cannot fsync directory", dir, errno);
  return Status::Ok();
}

Status write_file_atomic(const fs::path& path, std::string_view bytes, mode_t mode) {
  auto tmp = write_temp(path, bytes, mode);
  if (!tmp.ok()) return tmp.error();
  if (::rename(tmp->c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp->c_str());
    return io_error("cannot rename into place", path, err);
  }
  return fsync_dir(parent_of(path));
}

Status create_file_exclusive(const fs::path& path, std::string_view bytes, mode_t mode) {
  // The temp file is created O_EXCL with the final mode and then hard-linked: link() never
  // replaces an existing file, and a crash cannot leave a half-written file under `path`.
  auto tmp = write_temp(path, bytes, mode);
  if (!tmp.ok()) return tmp.error();
  const int rc = ::link(tmp->c_str(), path.c_str());
  const int err = errno;
  ::unlink(tmp->c_str());
  if (rc != 0) {
    if (err == EEXIST) return make_error(ErrorCode::kConflict, path.string() + " already exists");
    return io_error("cannot create", path, err);
  }
  return fsync_dir(parent_of(path));
}

Result<Secret> read_file(const fs::path& path, std::size_t max_size, bool require_private) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT) return make_error(ErrorCode::kNotFound, path.string() + " does not exist");
    return io_error("cannot open", path, err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return make_error(ErrorCode::kFailedPrecondition, path.string() + " is not a regular file");
  }
  if (require_private && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(ErrorCode::kFailedPrecondition,
                      path.string() + " is accessible by group or others (mode " + mode +
                          "); it must be readable by its owner only (chmod 600)");
  }
  std::string buf(max_size + 1, '\0');
  std::size_t got = 0;
  Status result = Status::Ok();
  while (got < buf.size()) {
    const ssize_t n = ::read(fd.get(), buf.data() + got, buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      result = io_error("cannot read", path, errno);
      break;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (result.ok() && got > max_size) {
    result = make_error(ErrorCode::kDataLoss,
                        path.string() + " is larger than " + std::to_string(max_size) + " bytes");
  }
  Secret out(std::string_view(buf.data(), got));
  secure_wipe(buf.data(), buf.size());
  if (!result.ok()) return result.error();
  return out;
}

}  // namespace berth::crypto::detail
