#pragma once
// Real peers for integration tests: a private OCI registry (Docker Distribution with htpasswd or
// bearer-token auth, TLS with a throwaway CA) and a sandbox-friendly podman configuration.
// Both wrap the scripts in hack/testenv/ (found through BERTH_SOURCE_DIR, which ctest sets), so
// tests, e2e runs and developers at a shell share one recipe. See docs/testing.md.
//
// Threading: create and use these from the test thread. Failures to start are values
// (Result); helpers that tests call inline throw std::runtime_error, which Catch reports as a
// failed test with the message.
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/secret.h"

namespace berth::testenv {

enum class Mode {
  kHtpasswd,  // the registry answers 401 with `WWW-Authenticate: Basic`
  kToken,     // `WWW-Authenticate: Bearer realm=...` backed by hack/testenv/token_issuer.py
  Htpasswd = kHtpasswd,
  Token = kToken,
};

// A registry running on 127.0.0.1:<free port> in its own temp dir, stopped and removed when the
// object is destroyed. Move-only. The user is "berth"; the password is a random canary
// ("berth-canary-<16 hex>\"\\<16 hex>": a quote and a backslash, which JSON escapes) so a test
// can scan logs, files and responses for it in every encoding (support/secret_scan.h).
class Registry {
 public:
  // Starts a fresh registry (about 1 s). kUnavailable when the registry or issuer won't start
  // (also when a program it needs is missing: declare Peer::kRegistry to skip instead).
  static Result<Registry> start(Mode mode = Mode::kHtpasswd);
  // One registry per mode for the whole test process, samples already pushed. Throws when it
  // cannot start (declare Peer::kRegistry / kTokenRegistry first to skip when it is missing).
  // Tests that share it must not delete or overwrite the samples.
  static Registry& shared(Mode mode = Mode::kHtpasswd);

  Registry(Registry&& other) noexcept;
  Registry& operator=(Registry&& other) noexcept;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  Mode mode() const { return mode_; }
  const std::string& host() const { return host_; }  // "127.0.0.1:PORT"
  const std::string& username() const { return username_; }
  const std::string& password() const { return password_; }
  Secret password_secret() const { return Secret(password_); }
  std::string ca_file() const;  // PEM of the CA that signed the registry's (and issuer's) cert
  std::string ca_dir() const;   // containers-style cert dir (only ca.crt), for --cert-dir
  const std::string& dir() const { return dir_; }
  const std::string& token_realm() const { return token_realm_; }  // empty in htpasswd mode

  static constexpr const char* kRepository = "berth/sample";
  // "HOST/berth/sample:TAG" (or HOST/REPOSITORY:TAG)
  std::string image(const std::string& tag, const std::string& repository = kRepository) const;

  // Pushes tags v1, v2 and broken to `repository` (see hack/testenv/sample-image.sh). About
  // 0.5-2 s; the OCI layouts are cached under /tmp. Throws on failure. In token mode, a
  // repository under "public/" is pullable without credentials.
  void push_samples(const std::string& repository = kRepository);
  // Digest of a pushed sample tag as skopeo reported it while pushing; throws if not pushed.
  // The same tag has the same digest in every repository and registry (deterministic layout).
  std::string digest(const std::string& tag) const;
  // What `skopeo inspect` reports for HOST/REPO:TAG, using this registry's credentials.
  Result<std::string> skopeo_digest(const std::string& tag,
                                    const std::string& repository = kRepository) const;
  // Writes an OCI auth file (mode 0600) with this registry's credentials to `path`.
  void write_authfile(const std::string& path) const;

 private:
  Registry() = default;
  void stop() noexcept;

  Mode mode_ = Mode::kHtpasswd;
  std::string dir_;
  std::string host_;
  std::string username_;
  std::string password_;
  std::string token_realm_;
  std::map<std::string, std::string> digests_;
};

// A podman configuration in a temp dir (runc, cgroupfs, no default ulimits, vfs storage inside
// the dir) exported to this process through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, so every
// podman child the code under test starts uses it. On destruction it removes every container in
// its storage (they can only have been created through it), restores the previous environment
// and deletes the dir. One at a time per process. Throws std::runtime_error when it cannot
// write the files.
class PodmanEnv {
 public:
  PodmanEnv();
  PodmanEnv(const PodmanEnv&) = delete;
  PodmanEnv& operator=(const PodmanEnv&) = delete;
  ~PodmanEnv();

  const std::string& path() const { return dir_; }
  std::string containers_conf() const { return dir_ + "/containers.conf"; }
  std::string storage_conf() const { return dir_ + "/storage.conf"; }
  // "CONTAINERS_CONF=..." and "CONTAINERS_STORAGE_CONF=..." for an explicit child environment.
  std::vector<std::string> env() const;

 private:
  std::string dir_;
  std::map<std::string, std::string> saved_;  // variable -> previous value ("\x01" if unset)
};

// Whether podman can run a container on this machine (checked once per process, about 1 s,
// in its own throwaway configuration). Tests do not call this themselves: they declare
// BERTH_REQUIRE_PEERS(testenv::Peer::kPodman) (support/skip.h), which skips them honestly.
bool podman_usable();
std::string podman_unusable_reason();

// The real programs an integration test can need. A test declares its peers with
// BERTH_REQUIRE_PEERS (support/skip.h): when one is missing the test is reported SKIPPED to
// ctest (or fails under CI=true), never passed.
enum class Peer {
  kPodman,         // podman runs a container here (podman_usable(): podman, runc, /bin/busybox)
  kRegistry,       // Registry::start/shared in htpasswd mode with samples pushed: docker-registry,
                   // htpasswd, openssl, curl, python3, skopeo, /bin/busybox
  kTokenRegistry,  // kRegistry plus the token issuer (python3-cryptography)
};
// "" when every peer is there; else one "name: what is missing (how to get it)" per missing
// peer, joined with "; ". Each peer is checked once per process (podman about 1 s).
std::string missing_peers(std::initializer_list<Peer> peers);
// Whether an executable `name` is on PATH (or, when `name` holds a '/', is executable).
bool on_path(const std::string& name);

// Directory of the source tree (BERTH_SOURCE_DIR, else the tree it was built from).
std::string source_dir();
// Path of a berth executable (`berth-controller`, `berth-agent`, a test helper): in $BERTH_BIN_DIR,
// else next to this test executable (CMake puts every binary in one bin/ directory, so a test run
// by hand still finds it). Throws when it is not there.
std::string berth_binary(const std::string& name);
// Runs argv (no shell) with extra environment entries, capturing stdout+stderr into `output`,
// killing it after `timeout_seconds`. Returns the exit status, or -1 if it could not run or was
// killed.
int run_command(const std::vector<std::string>& argv, std::string* output,
                const std::vector<std::string>& extra_env = {}, int timeout_seconds = 120);
// A fresh 0700 directory under /tmp named berth-<prefix>-XXXXXX. Throws on failure.
std::string make_temp_dir(const std::string& prefix);

}  // namespace berth::testenv
