// The real reconciler with the real SqliteStore in a temp dir, for the races between agent
// results, dispatch and user changes (the agent side is the recording gateway fake).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

#include "crypto/password.h"
#include "fakes.h"
#include "runtime/controller.h"
#include "runtime/reconciler.h"
#include "store/sqlite_store.h"
#include "support/temp_dir.h"

using namespace berth;
using namespace berth::runtime;
namespace fs = std::filesystem;

namespace {

struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-runtime") {}
};

struct Stack {
  TempDir dir;
  std::unique_ptr<store::SqliteStore> store;
  ManualClock clock;
  WorkQueue queue{clock, BackoffPolicy{std::chrono::milliseconds(5), std::chrono::seconds(1), 0.0}};
  testing::FakeGateway gateway;
  testing::FakeResolver resolver;
  core::UnixMillis now = 1'800'000'000'000;
  std::unique_ptr<Reconciler> reconciler;
  std::unique_ptr<Controller> controller;
  std::string account;
  std::string service_id;

  Stack() {
    auto opened = store::SqliteStore::open(dir.path / "data");
    REQUIRE(opened.ok());
    store = std::move(opened).value();
    auto acct = store->add_account("alice", Secret("alice-password"));
    REQUIRE(acct.ok());
    account = *acct;
    reconciler = std::make_unique<Reconciler>(
        *store, gateway, resolver, queue,
        ReconcilerOptions{20, [this] { return now; }, [] { return crypto::random_uuid(); },
                          "127.0.0.1"});
    controller = std::make_unique<Controller>(
        queue, [this](const std::string& k) { return reconciler->reconcile(k); },
        ControllerOptions{});
  }

  void settle() {
    for (int i = 0; i < 100 && controller->process_one(); ++i) {
    }
  }

  core::Revision revision(int number, const std::string& tag) {
    core::Revision r;
    r.id = crypto::random_uuid();
    r.service_id = service_id;
    r.number = number;
    r.config.image_ref = "127.0.0.1:5000/acme/api:" + tag;
    r.config.container_port = 8080;
    r.registry_host = "127.0.0.1:5000";
    r.reason = "configuration update";
    r.created_at = now;
    return r;
  }

  core::Task deploy_task(const core::Revision& r) {
    core::Task t;
    t.id = crypto::random_uuid();
    t.service_id = service_id;
    t.revision_id = r.id;
    t.created_at = t.updated_at = now++;
    return t;
  }

  // Creates the service with revision 1 (tag 1.0.0) and its queued deploy task.
  core::Revision create() {
    service_id = crypto::random_uuid();
    core::Change c;
    c.service.id = service_id;
    c.service.account_id = account;
    c.service.name = "my-api";
    c.service.plan_name = "tier-2";
    c.service.zone = "local";
    c.service.registry_host = "127.0.0.1:5000";
    c.service.created_at = c.service.updated_at = now;
    core::Revision r = revision(1, "1.0.0");
    r.reason = "initial deployment";
    c.service.config = r.config;
    c.service.desired_deployment_id = r.id;
    c.revision = r;
    c.task = deploy_task(r);
    REQUIRE(store->create_service(c).ok());
    queue.add(service_id);
    return r;
  }

  core::TaskOutcome ok_result(const std::string& task_id, const std::string& revision_id) {
    core::TaskOutcome o;
    o.task_id = task_id;
    o.service_id = service_id;
    o.revision_id = revision_id;
    o.ok = true;
    o.stable_port = 20001;
    o.image_digest = resolver.answer.value();
    return o;
  }
};

}  // namespace

TEST_CASE("With SQLite, a result that arrives before the task is marked sent completes it",
          "[reconciler][tasks]") {
  Stack s;
  const core::Revision r1 = s.create();
  s.gateway.on_send = [&s, &r1](const testing::FakeGateway::Sent& sent) {
    s.reconciler->task_result("vm-1", s.ok_result(sent.task_id, r1.id));
  };
  s.reconciler->agent_connected("vm-1", "local", {});
  s.settle();
  auto tasks = s.store->pending_tasks(s.service_id);
  REQUIRE(tasks.ok());
  CHECK(tasks->empty());
  auto rev = s.store->get_revision(s.service_id, r1.id);
  REQUIRE(rev.ok());
  CHECK(rev->state == core::RevisionState::kSucceeded);
  auto svc = s.store->load_service(s.service_id);
  REQUIRE(svc.ok());
  CHECK(svc->status == core::ServiceStatus::kRunning);
  CHECK(svc->current_deployment_id == r1.id);
  CHECK(svc->url == "http://127.0.0.1:20001");
  CHECK(s.gateway.sent.size() == 1);
}

TEST_CASE("With SQLite, a PATCH between a deploy result and its recording keeps both",
          "[reconciler][tasks]") {
  Stack s;
  const core::Revision r1 = s.create();
  s.reconciler->agent_connected("vm-1", "local", {});
  s.settle();
  REQUIRE(s.gateway.sent.size() == 1);
  // The agent answers; before the worker records it, the user PATCHes a new image.
  s.reconciler->task_result("vm-1", s.ok_result(s.gateway.sent[0].task_id, r1.id));
  auto current = s.store->load_service(s.service_id);
  REQUIRE(current.ok());
  core::Revision r2 = s.revision(2, "2.0.0");
  core::Change patch;
  patch.service = *current;
  patch.service.config = r2.config;
  patch.service.desired_deployment_id = r2.id;
  patch.service.generation += 1;
  patch.revision = r2;
  patch.task = s.deploy_task(r2);
  REQUIRE(s.store->apply_change(patch, current->generation).ok());
  s.queue.add(s.service_id);
  s.settle();

  auto svc = s.store->load_service(s.service_id);
  REQUIRE(svc.ok());
  CHECK(svc->config.image_ref == r2.config.image_ref);  // the user's change stands
  CHECK(svc->desired_deployment_id == r2.id);
  CHECK(svc->current_deployment_id == r1.id);  // and the result was recorded
  auto rev1 = s.store->get_revision(s.service_id, r1.id);
  REQUIRE(rev1.ok());
  CHECK(rev1->state == core::RevisionState::kSucceeded);
  REQUIRE(s.gateway.sent.size() == 2);  // the new revision goes out next
  CHECK(s.gateway.sent[1].order.revision_id == r2.id);
}

TEST_CASE("With SQLite, a revision superseded before it ran is stored as superseded",
          "[reconciler][revisions]") {
  Stack s;
  const core::Revision r1 = s.create();
  auto current = s.store->load_service(s.service_id);
  REQUIRE(current.ok());
  core::Revision r2 = s.revision(2, "2.0.0");
  core::Change patch;
  patch.service = *current;
  patch.service.config = r2.config;
  patch.service.desired_deployment_id = r2.id;
  patch.service.generation += 1;
  patch.revision = r2;
  patch.task = s.deploy_task(r2);
  REQUIRE(s.store->apply_change(patch, current->generation).ok());
  s.reconciler->agent_connected("vm-1", "local", {});
  s.settle();
  auto rev1 = s.store->get_revision(s.service_id, r1.id);
  REQUIRE(rev1.ok());
  CHECK(rev1->state == core::RevisionState::kSuperseded);
  auto all = s.store->list_revisions(s.service_id, /*include_failed=*/true);
  REQUIRE(all.ok());
  CHECK(all->size() == 2);
  REQUIRE(s.gateway.sent.size() == 1);
  CHECK(s.gateway.sent[0].order.revision_id == r2.id);
}
