#pragma once
// AuthFile: a short-lived OCI auth file for one pull,
//   {"auths": {KEY: {"auth": base64(user:pass)}}}  for every key of the task,
// written mode 0600 inside a fresh 0700 directory (mkdtemp) under the agent's data dir. The
// destructor overwrites the file with zeros, unlinks it and removes the directory, so the file
// is gone on every path (errors, early returns, exceptions). Every buffer that held the
// password or its encoding is wiped. Not thread-safe (one owner).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/secret.h"

namespace berth::agent {

class AuthFile {
 public:
  // Errors: kInvalidArgument (no keys, or a ':' in the username), kResourceExhausted /
  // kPermissionDenied when the file cannot be written.
  static Result<std::unique_ptr<AuthFile>> create(const std::string& parent_dir,
                                                  const std::vector<std::string>& keys,
                                                  const std::string& username,
                                                  const Secret& password);
  ~AuthFile();
  AuthFile(const AuthFile&) = delete;
  AuthFile& operator=(const AuthFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }
  // Removes now; idempotent (the destructor calls it too).
  void remove() noexcept;

 private:
  AuthFile(std::string dir, std::string path, std::size_t size)
      : dir_(std::move(dir)), path_(std::move(path)), size_(size) {}
  std::string dir_;
  std::string path_;
  std::size_t size_ = 0;
  bool removed_ = false;
};

// EnvFile: the container's environment as a podman --env-file (NAME=VALUE lines), written 0600
// in a fresh 0700 directory and removed by the destructor. Env values are not secrets, but a
// file keeps them out of the podman command line. Errors: kInvalidArgument for a value with a
// newline (an env file cannot carry it), file-system errors as for AuthFile.
class EnvFile {
 public:
  static Result<std::unique_ptr<EnvFile>> create(const std::string& parent_dir,
                                                 const std::map<std::string, std::string>& env);
  ~EnvFile();
  EnvFile(const EnvFile&) = delete;
  EnvFile& operator=(const EnvFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  EnvFile(std::string dir, std::string path) : dir_(std::move(dir)), path_(std::move(path)) {}
  std::string dir_;
  std::string path_;
};

// Standard base64 (with padding), into a Secret because its input is one. Exposed for tests.
Secret base64_secret(std::string_view bytes);

}  // namespace berth::agent
