#include "agent/auth_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/base64.h"

namespace berth::agent {
namespace {

// JSON string escaping for keys (hosts): they never hold secrets, but must not break the file.
std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

Secret base64_secret(std::string_view in) {
  std::string out;
  base64::encode_to(in, out);  // reserves the exact size: no reallocated copies
  Secret s(out);
  secure_wipe(out.data(), out.capacity());
  return s;
}

Result<std::unique_ptr<AuthFile>> AuthFile::create(const std::string& parent_dir,
                                                   const std::vector<std::string>& keys,
                                                   const std::string& username,
                                                   const Secret& password) {
  if (keys.empty())
    return make_error(ErrorCode::kInvalidArgument, "The task names no auth-file key.");
  if (username.find(':') != std::string::npos)
    return make_error(ErrorCode::kInvalidArgument, "A registry username cannot contain ':'.");

  std::string templ = parent_dir + "/auth-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr)  // mkdtemp creates the directory 0700
    return make_error(
        errno == ENOSPC ? ErrorCode::kResourceExhausted : ErrorCode::kPermissionDenied,
        "Could not create a private directory for the auth file: " +
            std::string(std::strerror(errno)) + ".");
  const std::string path = templ + "/auth.json";

  Secret user_pass;
  {
    std::string plain;
    plain.reserve(username.size() + 1 + password.size());
    plain.append(username).append(":").append(password.reveal());
    user_pass = base64_secret(plain);
    secure_wipe(plain.data(), plain.capacity());
  }
  std::string body = "{\"auths\":{";
  body.reserve(64 + keys.size() * (48 + user_pass.size()));
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) body += ',';
    body += '"';
    body += json_escape(keys[i]);
    body += "\":{\"auth\":\"";
    body.append(user_pass.reveal());
    body += "\"}";
  }
  body += "}}\n";

  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int e = errno;
    secure_wipe(body.data(), body.capacity());
    ::rmdir(templ.c_str());
    return make_error(e == ENOSPC ? ErrorCode::kResourceExhausted : ErrorCode::kPermissionDenied,
                      "Could not create the auth file: " + std::string(std::strerror(e)) + ".");
  }
  ::fchmod(fd, 0600);  // the umask cannot widen it, but be explicit about the mode
  const bool ok = write_all(fd, body.data(), body.size());
  const std::size_t size = body.size();
  secure_wipe(body.data(), body.capacity());
  ::close(fd);
  std::unique_ptr<AuthFile> file(new AuthFile(templ, path, size));
  if (!ok) {
    file->remove();
    return make_error(ErrorCode::kResourceExhausted, "Could not write the auth file.");
  }
  return file;
}

void AuthFile::remove() noexcept {
  if (removed_) return;
  removed_ = true;
  // Overwrite before unlinking, so the plaintext-equivalent bytes do not linger in free blocks
  // of the file system any longer than the page cache keeps them.
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    std::string zeros(size_, '\0');
    write_all(fd, zeros.data(), zeros.size());
    ::fsync(fd);
    ::close(fd);
  }
  ::unlink(path_.c_str());
  ::rmdir(dir_.c_str());
}

AuthFile::~AuthFile() { remove(); }

Result<std::unique_ptr<EnvFile>> EnvFile::create(const std::string& parent_dir,
                                                 const std::map<std::string, std::string>& env) {
  std::string body;
  for (const auto& [k, v] : env) {
    if (k.empty() || k.find_first_of("=\n\r") != std::string::npos ||
        v.find_first_of("\n\r") != std::string::npos || v.find('\0') != std::string::npos)
      return make_error(ErrorCode::kInvalidArgument,
                        "The environment variable " + k + " cannot be passed in an env file.",
                        "env");
    body.append(k).append("=").append(v).append("\n");
  }
  std::string templ = parent_dir + "/env-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr)
    return make_error(ErrorCode::kPermissionDenied,
                      "Could not create a private directory for the env file: " +
                          std::string(std::strerror(errno)) + ".");
  const std::string path = templ + "/env";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int e = errno;
    ::rmdir(templ.c_str());
    return make_error(ErrorCode::kPermissionDenied,
                      "Could not create the env file: " + std::string(std::strerror(e)) + ".");
  }
  const bool ok = write_all(fd, body.data(), body.size());
  ::close(fd);
  std::unique_ptr<EnvFile> file(new EnvFile(templ, path));
  if (!ok) return make_error(ErrorCode::kResourceExhausted, "Could not write the env file.");
  return file;
}

EnvFile::~EnvFile() {
  ::unlink(path_.c_str());
  ::rmdir(dir_.c_str());
}

}  // namespace berth::agent
