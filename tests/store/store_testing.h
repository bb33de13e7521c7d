#pragma once
// Shared by the store's integration suites: a temp data directory, an opened store, and the
// records a typical create writes (service, revision 1, sealed credential, deploy task).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/ports.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "support/temp_dir.h"

namespace berth::store_testing {

namespace fs = std::filesystem;
using store::SqliteStore;
using store::StoreOptions;

// Unseals with the host and username the stored credential records (what a caller that checked
// the credential passes).
inline berth::Result<berth::Secret> unseal(berth::core::StateStore& store, const std::string& id) {
  auto cred = store.get_credential(id);
  if (!cred.ok()) return cred.error();
  if (!cred->has_value()) return store.unseal_password(id, "", "");
  return store.unseal_password(id, (*cred)->registry_host, (*cred)->username);
}

inline constexpr const char* kCanary = "CANARY-pw-7f3a9c1e5d";

struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-store") {}
  fs::path data() const { return path / "data"; }
};

inline StoreOptions fixed_clock(core::UnixMillis* now) {
  StoreOptions o;
  o.clock = [now] { return *now; };
  return o;
}

inline std::unique_ptr<SqliteStore> open_ok(const fs::path& dir, StoreOptions o = {}) {
  auto s = SqliteStore::open(dir, std::move(o));
  if (!s.ok()) FAIL("open failed: " << s.error().message);
  return std::move(s).value();
}

inline std::string add_account(SqliteStore& s, const std::string& name) {
  auto id = s.add_account(name, Secret("account-password-" + name));
  REQUIRE(id.ok());
  return *id;
}

// A create-service change with revision 1, a credential sealed from `password` and a deploy task.
inline core::Change new_service(const std::string& account_id, const std::string& name,
                                const std::string& password = kCanary) {
  core::Change c;
  c.service.id = crypto::random_uuid();
  c.service.account_id = account_id;
  c.service.name = name;
  c.service.plan_name = "tier-2";
  c.service.zone = "zone-a";
  c.service.config.image_ref = "ghcr.io/acme/" + name + ":1";
  c.service.config.container_port = 8080;
  c.service.config.env = {{"MODE", "prod"}};
  c.service.config.custom_domains = {name + ".example.com"};
  c.service.config.registry_username = password.empty() ? "" : "bot";
  c.service.config.health = core::HealthCheck{"/healthz", 5, 3, 2};
  c.service.registry_host = "ghcr.io";
  c.service.conditions = {{"Ready", "False", "Pending", "waiting for an agent", 1000}};
  c.service.created_at = 1000;
  c.service.updated_at = 1000;
  core::Revision r;
  r.id = crypto::random_uuid();
  r.service_id = c.service.id;
  r.number = 1;
  r.config = c.service.config;
  r.registry_host = "ghcr.io";
  r.reason = "initial deployment";
  r.created_at = 1000;
  c.service.desired_deployment_id = r.id;
  c.revision = r;
  if (!password.empty()) {
    c.credential.action = core::CredentialWrite::Action::kReplace;
    c.credential.registry_host = "ghcr.io";
    c.credential.username = "bot";
    c.credential.password = Secret(password);
    c.credential.set_at = 1000;
  }
  core::Task t;
  t.id = crypto::random_uuid();
  t.service_id = c.service.id;
  t.revision_id = r.id;
  t.created_at = 1000;
  t.updated_at = 1000;
  c.task = t;
  return c;
}

// A writer process killed with SIGKILL right after acknowledgements. `writer(ack)` runs in a
// forked child and writes until it is killed, calling ack(line) (thread-safe) once a write has
// returned ok; the parent reads the lines and, as soon as `enough(lines so far)` holds (or the
// child stops acknowledging), kills it. Returns every acknowledged line, those still in the pipe
// after the kill included. REQUIREs that the child died of the signal.
using Ack = std::function<void(const std::string&)>;
inline std::vector<std::string> acks_until_killed(
    const std::function<void(const Ack&)>& writer,
    const std::function<bool(const std::vector<std::string>&)>& enough) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    std::mutex pipe_mu;
    writer([&](const std::string& line) {
      const std::string out = line + "\n";
      std::lock_guard lock(pipe_mu);
      if (::write(fds[1], out.data(), out.size()) != static_cast<ssize_t>(out.size())) ::_exit(6);
    });
    ::_exit(0);
  }
  ::close(fds[1]);
  std::vector<std::string> acked;
  std::string buf;
  char chunk[512];
  auto take_lines = [&] {
    for (auto pos = buf.find('\n'); pos != std::string::npos; pos = buf.find('\n')) {
      acked.push_back(buf.substr(0, pos));
      buf.erase(0, pos + 1);
    }
  };
  while (!enough(acked)) {
    const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n <= 0) break;  // the child died on its own: the wait below fails the test
    buf.append(chunk, static_cast<std::size_t>(n));
    take_lines();
  }
  REQUIRE(::kill(child, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  // Acknowledgements still in the pipe were also committed.
  for (ssize_t n; (n = ::read(fds[0], chunk, sizeof chunk)) > 0;)
    buf.append(chunk, static_cast<std::size_t>(n));
  take_lines();
  ::close(fds[0]);
  return acked;
}

}  // namespace berth::store_testing
