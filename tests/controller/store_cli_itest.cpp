// The store's administration commands of berth-controller, run as a real process on a temp data
// directory: account add (password on stdin), token create, rotate-master-key.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

struct Run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string read_fd(int fd) {
  std::string s;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    s.append(buf, static_cast<std::size_t>(n));
  return s;
}

// Runs berth-controller with `args`, feeding `input` on stdin (never on the command line).
Run controller(std::vector<std::string> args, const std::string& input = "") {
  const char* bin_dir = std::getenv("BERTH_BIN_DIR");
  REQUIRE(bin_dir != nullptr);
  const std::string bin = std::string(bin_dir) + "/berth-controller";
  int in[2], out[2], err[2];
  REQUIRE(::pipe(in) == 0);
  REQUIRE(::pipe(out) == 0);
  REQUIRE(::pipe(err) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  // Inputs are a line or two: far below the pipe buffer, so writing before reading is safe.
  REQUIRE(::write(in[1], input.data(), input.size()) == static_cast<ssize_t>(input.size()));
  ::close(in[1]);
  Run r;
  r.out = read_fd(out[0]);
  r.err = read_fd(err[0]);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-cli") {}
};

bool any_file_contains(const fs::path& dir, const std::string& needle) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes(std::istreambuf_iterator<char>(in), {});
    if (bytes.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string line_value(const std::string& text, const std::string& prefix) {
  const auto pos = text.find(prefix);
  if (pos == std::string::npos) return "";
  const auto start = pos + prefix.size();
  return text.substr(start, text.find('\n', start) - start);
}

}  // namespace

TEST_CASE("account add, token create and rotate-master-key work on a fresh data directory",
          "[controller][store]") {
  TempDir tmp;
  const std::string dir = (tmp.path / "data").string();
  const std::string password = "cli-canary-Vq83hZ";

  Run add = controller({"account", "add", "alice", "--data-dir", dir}, password + "\n");
  INFO(add.err);
  REQUIRE(add.exit_code == 0);
  CHECK(add.out.size() == 37);  // a UUID and a newline
  CHECK(add.out.find(password) == std::string::npos);
  CHECK(add.err.find(password) == std::string::npos);

  Run again = controller({"account", "add", "alice", "--data-dir", dir}, "other\n");
  CHECK(again.exit_code == 3);
  CHECK(again.err.find("already exists") != std::string::npos);

  Run token = controller({"token", "create", "alice", "--data-dir", dir, "--label", "ci"});
  INFO(token.err);
  REQUIRE(token.exit_code == 0);
  REQUIRE(token.out.rfind("berth_", 0) == 0);
  const std::string full = token.out.substr(0, token.out.find('\n'));
  // berth_<16 hex id>_<secret>; split by position: the base64url secret may contain '_'.
  REQUIRE(full.size() > 23);
  CHECK(full[22] == '_');
  const std::string secret = full.substr(23);
  CHECK(secret.size() >= 32);

  Run second = controller({"token", "create", "alice", "--data-dir", dir});
  REQUIRE(second.exit_code == 0);
  CHECK(second.out != token.out);

  Run rotate = controller({"rotate-master-key", "--data-dir", dir});
  INFO(rotate.err);
  REQUIRE(rotate.exit_code == 0);
  const std::string old_id = line_value(rotate.out, "old key id: ");
  const std::string new_id = line_value(rotate.out, "new key id: ");
  CHECK(old_id.size() == 16);
  CHECK(new_id.size() == 16);
  CHECK(old_id != new_id);
  CHECK_FALSE(fs::exists(tmp.path / "data" / "master.key.next"));

  Run rotate2 = controller({"rotate-master-key", "--data-dir", dir});
  REQUIRE(rotate2.exit_code == 0);
  CHECK(line_value(rotate2.out, "old key id: ") == new_id);

  // Neither the account password nor the token secret is anywhere on disk.
  CHECK_FALSE(any_file_contains(tmp.path, password));
  CHECK_FALSE(any_file_contains(tmp.path, secret));
  // The key bytes never reach the output.
  std::ifstream key_in(tmp.path / "data" / "master.key", std::ios::binary);
  const std::string key(std::istreambuf_iterator<char>(key_in), {});
  REQUIRE_FALSE(key.empty());
  CHECK(rotate2.out.find(key) == std::string::npos);
}

TEST_CASE("account add refuses an empty password from stdin and creates nothing",
          "[controller][store]") {
  TempDir tmp;
  const std::string dir = (tmp.path / "data").string();
  Run empty = controller({"account", "add", "alice", "--data-dir", dir}, "\n");
  CHECK(empty.exit_code == 2);
  CHECK(empty.err.find("empty") != std::string::npos);
  Run none = controller({"account", "add", "alice", "--data-dir", dir}, "");
  CHECK(none.exit_code == 2);
  // The name is still free: nothing was written by the refused attempts.
  Run ok = controller({"account", "add", "alice", "--data-dir", dir}, "pw\n");
  CHECK(ok.exit_code == 0);
}

TEST_CASE("token create for an unknown account fails without printing a token",
          "[controller][store]") {
  TempDir tmp;
  const std::string dir = (tmp.path / "data").string();
  REQUIRE(controller({"account", "add", "alice", "--data-dir", dir}, "pw\n").exit_code == 0);
  Run r = controller({"token", "create", "nobody", "--data-dir", dir});
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK(r.err.find("no account") != std::string::npos);
}
