// The test environment itself: if these fail, every suite built on it is suspect.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/skip.h"
#include "support/testenv.h"

namespace testenv = berth::testenv;

TEST_CASE("The test registry serves the sample images with the digests skopeo pushed",
          "[testenv]") {
  for (auto mode : {testenv::Mode::kHtpasswd, testenv::Mode::kToken}) {
    auto reg = testenv::Registry::start(mode);
    REQUIRE(reg.ok());
    reg->push_samples();
    auto v1 = reg->skopeo_digest("v1");
    REQUIRE(v1.ok());
    CHECK(*v1 == reg->digest("v1"));
    CHECK(reg->digest("v1") != reg->digest("v2"));
    CHECK(reg->image("v1") == reg->host() + "/berth/sample:v1");
    CHECK(reg->host().rfind("127.0.0.1:", 0) == 0);
    CHECK(reg->password().rfind("berth-canary-", 0) == 0);
    CHECK(reg->token_realm().empty() == (mode == testenv::Mode::kHtpasswd));
  }
}

TEST_CASE("The test registry refuses a wrong password and stops when destroyed", "[testenv]") {
  std::string dir;
  {
    auto reg = testenv::Registry::start(testenv::Mode::kToken);
    REQUIRE(reg.ok());
    dir = reg->dir();
    const std::string authfile = dir + "/bad.json";
    std::string out;
    // base64("berth:wrong")
    REQUIRE(testenv::run_command(
                {"sh", "-c", "umask 077; printf '%s' \"$0\" > \"$1\"",
                 "{\"auths\":{\"" + reg->host() + "\":{\"auth\":\"YmVydGg6d3Jvbmc=\"}}}", authfile},
                &out) == 0);
    int rc = testenv::run_command({"skopeo", "inspect", "--authfile", authfile, "--cert-dir",
                                   reg->ca_dir(), "docker://" + reg->image("v1")},
                                  &out);
    CHECK(rc != 0);
    CHECK(out.find("unauthorized") != std::string::npos);
    CHECK(out.find(reg->password()) == std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("PodmanEnv points podman at its own config and restores the environment",
          "[testenv][podman]") {
  const char* before = std::getenv("CONTAINERS_CONF");
  std::string path;
  {
    testenv::PodmanEnv env;
    path = env.path();
    CHECK(std::string(std::getenv("CONTAINERS_CONF")) == env.containers_conf());
    CHECK(std::string(std::getenv("CONTAINERS_STORAGE_CONF")) == env.storage_conf());
    CHECK(std::filesystem::exists(env.storage_conf()));
  }
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(std::getenv("CONTAINERS_CONF") == before);
}

TEST_CASE("A sample image pulled from the test registry serves its version over HTTP",
          "[testenv][podman]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  auto& reg = testenv::Registry::shared(testenv::Mode::kHtpasswd);
  testenv::PodmanEnv env;
  const std::string authfile = env.path() + "/auth.json";
  reg.write_authfile(authfile);
  std::string out;
  REQUIRE(testenv::run_command({"podman", "pull", "-q", "--authfile", authfile, "--cert-dir",
                                reg.ca_dir(), reg.image("v2")},
                               &out) == 0);
  REQUIRE(testenv::run_command({"podman", "run", "-d", "--name", "berth-testenv-v2", "-p",
                                "127.0.0.1::8080", reg.image("v2")},
                               &out) == 0);
  REQUIRE(testenv::run_command({"podman", "port", "berth-testenv-v2", "8080"}, &out) == 0);
  const std::string addr = out.substr(0, out.find('\n'));
  std::string body;
  for (int i = 0; i < 50; ++i) {
    if (testenv::run_command({"curl", "-sf", "--max-time", "1", "http://" + addr + "/"}, &body, {},
                             5) == 0) {
      break;
    }
    testenv::run_command({"sleep", "0.1"}, nullptr);
  }
  CHECK(body == "v2\n");
}
