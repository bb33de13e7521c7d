// `berth-controller image-ref parse REF`, run as a real process: JSON on stdout and exit 0 for a
// valid reference; exit 2, one line on stderr and nothing on stdout for an invalid one.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/testenv.h"

extern char** environ;

namespace {

struct Outcome {
  int exit_code = -1;  // -1: could not run, killed, or timed out
  std::string out;
  std::string err;
};

std::string controller_binary() { return berth::testenv::berth_binary("berth-controller"); }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the controller with `args` (no shell, so any byte string reaches argv unchanged),
// stdout and stderr captured separately through files in a private temp dir.
Outcome run_controller(const std::vector<std::string>& args) {
  std::string tmpl = "/tmp/berth-imageref-cli-XXXXXX";
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  const std::string out_path = tmpl + "/stdout";
  const std::string err_path = tmpl + "/stderr";

  std::vector<std::string> argv_s = {controller_binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);

  Outcome o;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (true) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      status = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (status != -1 && WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  o.out = slurp(out_path);
  o.err = slurp(err_path);
  std::filesystem::remove_all(tmpl);
  return o;
}

nlohmann::json parse_json(const std::string& text) {
  INFO("stdout: " << text);
  REQUIRE(nlohmann::json::accept(text));
  return nlohmann::json::parse(text);
}

const std::string kDigest =
    "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

}  // namespace

TEST_CASE("image-ref parse prints a Docker Hub official image as one JSON object",
          "[image_ref][cli]") {
  const Outcome o = run_controller({"image-ref", "parse", "nginx"});
  INFO("stderr: " << o.err);
  REQUIRE(o.exit_code == 0);
  CHECK(o.err.empty());
  // Exactly one line: one JSON object.
  REQUIRE(!o.out.empty());
  CHECK(o.out.back() == '\n');
  CHECK(o.out.find('\n') == o.out.size() - 1);
  const auto j = parse_json(o.out);
  CHECK(j == nlohmann::json{{"registry_host", "docker.io"},
                            {"repository", "library/nginx"},
                            {"tag", ""},
                            {"digest", ""},
                            {"normalized", "docker.io/library/nginx"},
                            {"auth_keys", {"docker.io", "https://index.docker.io/v1/"}},
                            {"ecr", false}});
}

TEST_CASE("image-ref parse reports host, tag and digest of a private registry reference",
          "[image_ref][cli]") {
  const Outcome o =
      run_controller({"image-ref", "parse", "127.0.0.1:5000/team/app:v1.2@" + kDigest});
  INFO("stderr: " << o.err);
  REQUIRE(o.exit_code == 0);
  const auto j = parse_json(o.out);
  CHECK(j.at("registry_host") == "127.0.0.1:5000");
  CHECK(j.at("repository") == "team/app");
  CHECK(j.at("tag") == "v1.2");
  CHECK(j.at("digest") == kDigest);
  CHECK(j.at("normalized") == "127.0.0.1:5000/team/app:v1.2@" + kDigest);
  CHECK(j.at("auth_keys") == nlohmann::json::array({"127.0.0.1:5000"}));
  CHECK(j.at("ecr") == false);
}

TEST_CASE("image-ref parse flags an ECR host and normalizes index.docker.io", "[image_ref][cli]") {
  const Outcome ecr =
      run_controller({"image-ref", "parse", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"});
  REQUIRE(ecr.exit_code == 0);
  const auto j = parse_json(ecr.out);
  CHECK(j.at("ecr") == true);
  CHECK(j.at("auth_keys") ==
        nlohmann::json::array({"123456789012.dkr.ecr.eu-west-1.amazonaws.com"}));

  const Outcome hub = run_controller({"image-ref", "parse", "index.docker.io/org/app:1"});
  REQUIRE(hub.exit_code == 0);
  const auto h = parse_json(hub.out);
  CHECK(h.at("registry_host") == "docker.io");
  CHECK(h.at("normalized") == "docker.io/org/app:1");
}

TEST_CASE("image-ref parse exits 2 with the reason on stderr and nothing on stdout",
          "[image_ref][cli]") {
  struct Case {
    std::string ref;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"docker/Docker",
       "image_ref: repository path must be lowercase (uppercase letter at position 8)"},
      {"nginx:" + std::string(129, 'x'), "is longer than 128 characters"},
      {"nginx@sha256:abc", "digest algorithm sha256 requires 64 hex characters"},
      {"my_registry.example.com/app", "registry host at positions 1-23"},
      // a newline in the input is reported by position, on one stderr line
      {"ghcr.io/o/r\nx", "contains a control character at position 12"},
      {"", "image_ref: is empty"},
  };
  for (const auto& c : cases) {
    INFO("ref: " << c.ref);
    const Outcome o = run_controller({"image-ref", "parse", c.ref});
    CHECK(o.exit_code == 2);
    CHECK(o.out.empty());
    CHECK_THAT(o.err, Catch::Matchers::Contains(c.reason));
    REQUIRE(!o.err.empty());
    CHECK(o.err.back() == '\n');
    CHECK(o.err.find('\n') == o.err.size() - 1);
  }
}

TEST_CASE("image-ref parse accepts a reference that starts with a dash after --",
          "[image_ref][cli]") {
  // "-docker" would otherwise be read as an option; after "--" it reaches the parser and is
  // rejected by the grammar, not by the command line.
  const Outcome o = run_controller({"image-ref", "parse", "--", "-docker"});
  CHECK(o.exit_code == 2);
  CHECK(o.out.empty());
  CHECK_THAT(o.err, Catch::Matchers::Contains("repository path component at positions 1-7"));
}
