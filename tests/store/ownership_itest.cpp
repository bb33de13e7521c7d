// Who writes which fields of an app service, against a real database file: a user write
// (apply_change) built from a record read before a runtime write must not put the runtime's
// fields back, and a runtime write (record_outcome, update_observed) built from a record read
// before a user write must not undo it. Each race is replayed in its losing order: read, the
// other write commits, then the stale write.
#include <string>

#include <catch2/catch.hpp>

#include "core/ports.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "store/store_testing.h"

using namespace berth;
using namespace berth::store_testing;

namespace {

// What the runtime writes when the agent reports that `revision` serves.
struct DeployResult {
  core::Revision revision;
  core::AppService service;
};

DeployResult succeeded(const core::AppService& read, const core::Revision& pending,
                       const std::string& agent) {
  DeployResult r{pending, read};
  r.revision.state = core::RevisionState::kSucceeded;
  r.revision.image_digest = "sha256:" + std::string(64, 'c');
  r.revision.deploy_logs = {{"switch", "ok", "live", "", 3000, 4}};
  r.revision.finished_at = 3000;
  r.service.status = core::ServiceStatus::kRunning;
  r.service.current_deployment_id = pending.id;
  r.service.agent = agent;
  r.service.url = "http://127.0.0.1:30001";
  r.service.conditions = {{"Ready", "True", "Healthy", "the app answers its probe", 3000}};
  r.service.last_error = "";
  r.service.updated_at = 3000;
  return r;
}

// The PATCH the API builds from `read`: a new image, revision `number`, a deploy task.
core::Change patch_from(const core::AppService& read, std::int64_t number,
                        const std::string& image) {
  core::Change c;
  c.service = read;
  c.service.config.image_ref = image;
  c.service.status = core::ServiceStatus::kPendingModification;
  c.service.generation = read.generation + 1;
  c.service.updated_at = 4000;
  core::Revision r;
  r.id = crypto::random_uuid();
  r.service_id = read.id;
  r.number = number;
  r.config = c.service.config;
  r.registry_host = read.registry_host;
  r.reason = "configuration update";
  r.created_at = 4000;
  c.service.desired_deployment_id = r.id;
  c.revision = r;
  core::Task t;
  t.id = crypto::random_uuid();
  t.service_id = read.id;
  t.revision_id = r.id;
  t.created_at = t.updated_at = 4000;
  c.task = t;
  return c;
}

// The DELETE the API builds from `read` for a placed service: Deleting, and a remove task.
core::Change delete_from(const core::AppService& read) {
  core::Change c;
  c.service = read;
  c.service.status = core::ServiceStatus::kDeleting;
  c.service.generation = read.generation + 1;
  c.service.updated_at = 5000;
  core::Task t;
  t.id = crypto::random_uuid();
  t.service_id = read.id;
  t.kind = core::TaskKind::kRemove;
  t.created_at = t.updated_at = 5000;
  c.task = t;
  return c;
}

bool has_remove_task(SqliteStore& s, const std::string& sid) {
  auto tasks = s.pending_tasks(sid);
  REQUIRE(tasks.ok());
  for (const auto& t : *tasks) {
    if (t.kind == core::TaskKind::kRemove) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("A PATCH read before a deploy result keeps the result, and the result keeps the PATCH",
          "[store][ownership]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  core::Change create = new_service(add_account(*s, "alice"), "api");
  REQUIRE(s->create_service(create).ok());
  const std::string sid = create.service.id;

  // The API reads the record for a PATCH while revision 1 is still deploying.
  const core::AppService read_by_patch = *s->load_service(sid);
  // The deploy result lands first.
  const DeployResult result = succeeded(*s->load_service(sid), *create.revision, "vm-1");
  REQUIRE(s->record_outcome(result.revision, result.service, 20).ok());
  // Then the PATCH commits, built from its (now stale) read: the generation still matches,
  // because a runtime write does not move it.
  const core::Change patch = patch_from(read_by_patch, 2, "ghcr.io/acme/api:2");
  REQUIRE(s->apply_change(patch, read_by_patch.generation).ok());

  auto after = s->load_service(sid);
  REQUIRE(after.ok());
  // The PATCH survives...
  CHECK(after->config.image_ref == "ghcr.io/acme/api:2");
  CHECK(after->desired_deployment_id == patch.revision->id);
  CHECK(after->generation == 2);
  CHECK(after->status == core::ServiceStatus::kPendingModification);
  // ...and so does the deploy result it never saw.
  CHECK(after->current_deployment_id == create.revision->id);
  CHECK(after->agent == "vm-1");
  CHECK(after->url == "http://127.0.0.1:30001");
  CHECK(after->conditions == result.service.conditions);
  CHECK(s->get_revision(sid, create.revision->id)->state == core::RevisionState::kSucceeded);
  CHECK(s->get_revision(sid, patch.revision->id)->state == core::RevisionState::kPending);
}

TEST_CASE("A deploy result read before a PATCH keeps the PATCH's configuration and generation",
          "[store][ownership]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  core::Change create = new_service(add_account(*s, "alice"), "api");
  REQUIRE(s->create_service(create).ok());
  const std::string sid = create.service.id;

  const core::AppService read_by_runtime = *s->load_service(sid);
  const core::Change patch = patch_from(*s->load_service(sid), 2, "ghcr.io/acme/api:2");
  REQUIRE(s->apply_change(patch, 1).ok());
  // The result of revision 1, built from the record read before the PATCH, carries the old
  // configuration, desired revision and generation: none of them may come back.
  const DeployResult result = succeeded(read_by_runtime, *create.revision, "vm-1");
  REQUIRE(s->record_outcome(result.revision, result.service, 20).ok());

  auto after = s->load_service(sid);
  REQUIRE(after.ok());
  CHECK(after->config.image_ref == "ghcr.io/acme/api:2");
  CHECK(after->desired_deployment_id == patch.revision->id);
  CHECK(after->generation == 2);
  CHECK(after->current_deployment_id == create.revision->id);
  CHECK(after->agent == "vm-1");
  // The next PATCH is checked against the PATCH's generation, not the stale one.
  CHECK(s->apply_change(patch_from(*after, 3, "ghcr.io/acme/api:3"), 2).ok());
}

TEST_CASE("A placement read before a DELETE leaves the service Deleting with its remove task",
          "[store][ownership]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  core::Change create = new_service(add_account(*s, "alice"), "api");
  REQUIRE(s->create_service(create).ok());
  const std::string sid = create.service.id;
  // Placed once already, so the DELETE has an agent to tear down on.
  core::AppService placed = *s->load_service(sid);
  placed.agent = "vm-1";
  REQUIRE(s->update_observed(placed).ok());

  // The runtime reads the record to place it (again)...
  core::AppService read_by_runtime = *s->load_service(sid);
  // ...the user deletes it...
  REQUIRE(s->apply_change(delete_from(*s->load_service(sid)), placed.generation).ok());
  // ...and the placement, from the record read before the DELETE, lands.
  read_by_runtime.agent = "vm-2";
  read_by_runtime.status = core::ServiceStatus::kPending;
  read_by_runtime.conditions = {{"Scheduled", "True", "Placed", "placed on vm-2", 6000}};
  read_by_runtime.updated_at = 6000;
  REQUIRE(s->update_observed(read_by_runtime).ok());

  auto after = s->load_service(sid);
  REQUIRE(after.ok());
  CHECK(after->status == core::ServiceStatus::kDeleting);
  CHECK(after->generation == placed.generation + 1);
  CHECK(has_remove_task(*s, sid));
  // The runtime's own fields are its to write: the removal goes where the runtime placed it.
  CHECK(after->agent == "vm-2");
  CHECK(after->conditions == read_by_runtime.conditions);
}

TEST_CASE("A deploy result that arrives after a DELETE records the revision and stays Deleting",
          "[store][ownership]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  core::Change create = new_service(add_account(*s, "alice"), "api");
  REQUIRE(s->create_service(create).ok());
  const std::string sid = create.service.id;
  core::AppService placed = *s->load_service(sid);
  placed.agent = "vm-1";
  REQUIRE(s->update_observed(placed).ok());

  const core::AppService read_by_runtime = *s->load_service(sid);
  REQUIRE(s->apply_change(delete_from(*s->load_service(sid)), placed.generation).ok());
  const DeployResult result = succeeded(read_by_runtime, *create.revision, "vm-1");
  REQUIRE(s->record_outcome(result.revision, result.service, 20).ok());

  auto after = s->load_service(sid);
  REQUIRE(after.ok());
  CHECK(after->status == core::ServiceStatus::kDeleting);
  CHECK(has_remove_task(*s, sid));
  // What runs is still recorded, so the removal knows what to tear down.
  CHECK(after->current_deployment_id == create.revision->id);
  CHECK(s->get_revision(sid, create.revision->id)->state == core::RevisionState::kSucceeded);
}
