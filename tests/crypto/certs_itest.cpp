#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <sys/stat.h>
#include <sys/wait.h>

#include "crypto/certs.h"
#include "support/temp_dir.h"

using berth::ErrorCode;
using namespace berth::crypto;

// A scratch directory named after this suite.
struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-crypto") {}
};
namespace fs = std::filesystem;

namespace {

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

struct Run {
  int exit_code;
  std::string output;
};

// Runs a fixed command line (paths come from mkdtemp, no user input) and captures its output.
Run run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

PemPair issue(const PemPair& ca, bool server, std::int64_t nb = -300, std::int64_t na = 3600) {
  CertRequest req;
  req.common_name = server ? "berth-controller" : "agent-1";
  req.zone = server ? "" : "zone-a";
  req.dns_names = {"localhost"};
  req.ip_addresses = {"127.0.0.1"};
  req.server = server;
  req.client = !server;
  req.not_before_offset_s = nb;
  req.not_after_offset_s = na;
  auto r = issue_certificate(ca, req);
  REQUIRE(r.ok());
  return std::move(r).value();
}

}  // namespace

TEST_CASE("PEM files are written with a 0600 key in a new 0700 directory and read back",
          "[certs]") {
  TempDir tmp;
  auto ca = create_ca("berth CA", 3600);
  REQUIRE(ca.ok());
  const fs::path dir = tmp.path / "pki";
  REQUIRE(write_pem_files(dir, "ca", *ca).ok());
  CHECK(mode_of(dir) == 0700);
  CHECK(mode_of(dir / "ca.key") == 0600);
  CHECK(mode_of(dir / "ca.crt") == 0644);
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 2);

  auto back = read_pem_files(dir, "ca");
  REQUIRE(back.ok());
  CHECK(back->cert_pem == ca->cert_pem);
  CHECK(back->key_pem.equals(ca->key_pem));

  // Overwriting is atomic and keeps the modes.
  auto ca2 = create_ca("berth CA 2", 3600);
  REQUIRE(ca2.ok());
  REQUIRE(write_pem_files(dir, "ca", *ca2).ok());
  auto back2 = read_pem_files(dir, "ca");
  REQUIRE(back2.ok());
  CHECK(back2->cert_pem == ca2->cert_pem);
  CHECK(mode_of(dir / "ca.key") == 0600);
}

TEST_CASE("read_pem_files refuses a group-readable key, a missing file and a mismatched pair",
          "[certs]") {
  TempDir tmp;
  auto ca = create_ca("berth CA", 3600);
  REQUIRE(ca.ok());
  REQUIRE(write_pem_files(tmp.path, "ca", *ca).ok());

  SECTION("group-readable key") {
    fs::permissions(tmp.path / "ca.key", fs::perms::group_read, fs::perm_options::add);
    auto r = read_pem_files(tmp.path, "ca");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kFailedPrecondition);
  }
  SECTION("missing") {
    auto r = read_pem_files(tmp.path, "server");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kNotFound);
  }
  SECTION("key of another certificate") {
    auto other = create_ca("other", 3600);
    REQUIRE(other.ok());
    REQUIRE(write_pem_files(tmp.path, "other", *other).ok());
    fs::copy_file(tmp.path / "other.key", tmp.path / "ca.key",
                  fs::copy_options::overwrite_existing);
    auto r = read_pem_files(tmp.path, "ca");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kDataLoss);
  }
  SECTION("a name that escapes the directory") {
    CHECK_FALSE(write_pem_files(tmp.path, "../ca", *ca).ok());
    CHECK_FALSE(read_pem_files(tmp.path, "../ca").ok());
  }
}

TEST_CASE("The openssl CLI verifies written certificates against the written CA",
          "[certs][openssl-cli]") {
  TempDir tmp;
  auto ca = create_ca("berth CA", 3600);
  REQUIRE(ca.ok());
  const fs::path dir = tmp.path;
  REQUIRE(write_pem_files(dir, "ca", *ca).ok());
  REQUIRE(write_pem_files(dir, "server", issue(*ca, true)).ok());
  REQUIRE(write_pem_files(dir, "agent", issue(*ca, false)).ok());
  REQUIRE(write_pem_files(dir, "expired", issue(*ca, false, -7200, -3600)).ok());
  const std::string cafile = (dir / "ca.crt").string();

  Run server = run("openssl verify -CAfile " + cafile +
                   " -purpose sslserver -verify_ip 127.0.0.1 " + (dir / "server.crt").string());
  INFO(server.output);
  CHECK(server.exit_code == 0);
  CHECK(server.output.find(": OK") != std::string::npos);

  Run agent = run("openssl verify -CAfile " + cafile + " -purpose sslclient " +
                  (dir / "agent.crt").string());
  INFO(agent.output);
  CHECK(agent.exit_code == 0);

  Run expired = run("openssl verify -CAfile " + cafile + " " + (dir / "expired.crt").string());
  INFO(expired.output);
  CHECK(expired.exit_code != 0);
  CHECK(expired.output.find("expired") != std::string::npos);

  // The written key file is a key the CLI can read and that belongs to the certificate.
  Run pub_from_key = run("openssl pkey -pubout -in " + (dir / "agent.key").string());
  Run pub_from_crt = run("openssl x509 -noout -pubkey -in " + (dir / "agent.crt").string());
  CHECK(pub_from_key.exit_code == 0);
  CHECK(pub_from_key.output == pub_from_crt.output);
}
