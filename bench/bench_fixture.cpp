#include "bench_fixture.h"

#include <stdlib.h>

#include "bench_util.h"
#include "core/revision.h"
#include "crypto/password.h"

namespace berth::bench {

std::string fixed_digest() { return "sha256:" + std::string(64, 'a'); }

core::Change make_change(int i, const std::string& account_id, const ChangeOptions& o) {
  const core::UnixMillis now = kEpoch + i;
  const std::string n = std::to_string(100000 + i);
  core::AppService s;
  s.id = crypto::random_uuid();
  s.account_id = account_id;
  s.name = "app-" + n;
  s.plan_name = "tier-1";
  s.zone = o.zone;
  s.status = core::ServiceStatus::kPending;
  s.config.image_ref = o.registry_host + "/acme/app-" + n + ":1.0.0";
  s.config.container_port = 8080;
  s.config.env = {{"MODE", "production"}, {"LOG_LEVEL", "info"}};
  s.config.health.path = "/healthz";
  s.registry_host = o.registry_host;
  s.created_at = s.updated_at = now;
  const bool credential = o.credential_every > 0 && i % o.credential_every == 0;
  if (credential) s.config.registry_username = "deploy";
  auto rev =
      core::make_revision(crypto::random_uuid(), s.id, 1, s.config, core::kReasonInitial, now);
  if (!rev.ok()) die("make_revision", rev.error().message);
  s.desired_deployment_id = rev->id;
  core::Task t;
  t.id = crypto::random_uuid();
  t.service_id = s.id;
  t.revision_id = rev->id;
  t.kind = core::TaskKind::kDeploy;
  t.state = core::TaskState::kQueued;
  t.created_at = t.updated_at = now;
  core::Change c;
  c.service = std::move(s);
  c.revision = std::move(rev).value();
  c.task = std::move(t);
  if (credential) {
    c.credential.action = core::CredentialWrite::Action::kReplace;
    c.credential.registry_host = o.registry_host;
    c.credential.username = "deploy";
    c.credential.password = Secret("bench-registry-password-" + n);
    c.credential.set_at = now;
  }
  return c;
}

std::filesystem::path make_temp_dir(const std::filesystem::path& base, const char* tag) {
  std::string tmpl = (base / (std::string("berth-bench-") + tag + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) die("mkdtemp", tmpl);
  return tmpl;
}

}  // namespace berth::bench
