// Task delivery and results: credentials checked at send time, results applied by the worker,
// resends on a timer, removals retried until confirmed, orphans removed.
#include <catch2/catch.hpp>

#include "common/log.h"
#include "harness.h"

using namespace berth;
using berth::testing::Harness;

namespace {

// A PATCH as the API writes it: a new revision r2 for `image_ref` with its task t2, and (when
// `username` is set) a credential for the new registry.
void patch_image(Harness& h, const std::string& image_ref, const std::string& host,
                 const std::string& username, const std::string& password) {
  core::AppService s = h.store.services["svc"];
  core::Revision r2 = h.store.revisions["r1"];
  r2.id = "r2";
  r2.number = 2;
  r2.state = core::RevisionState::kPending;
  r2.config.image_ref = image_ref;
  r2.config.registry_username = username;
  r2.registry_host = host;
  r2.image_digest = std::string("sha256:") + std::string(64, 'b');
  r2.deploy_logs.clear();
  const auto gen = s.generation;
  s.config = r2.config;
  s.registry_host = host;
  s.desired_deployment_id = "r2";
  s.generation += 1;
  core::Change c;
  c.service = s;
  c.revision = r2;
  c.task =
      core::Task{"t2", "svc",     "r2",     core::TaskKind::kDeploy, core::TaskState::kQueued, "",
                 0,    h.now + 1, h.now + 1};
  REQUIRE(h.store.apply_change(c, gen).ok());
  if (!username.empty()) {
    h.store.credentials["svc"] = core::StoredCredential{host, username, h.now, std::nullopt};
    h.store.passwords["svc"] = password;
  }
  h.queue.add("svc");
}

core::TaskOutcome remove_result(const std::string& task_id, bool ok) {
  core::TaskOutcome o;
  o.task_id = task_id;
  o.service_id = "svc";
  o.ok = ok;
  if (!ok) o.error = "podman rm failed: device busy";
  return o;
}

void start_delete(Harness& h) {
  core::AppService s = h.store.services["svc"];
  const auto gen = s.generation;
  s.status = core::ServiceStatus::kDeleting;
  s.generation += 1;
  core::Change c;
  c.service = s;
  c.task = core::Task{"t9", "svc", "",   core::TaskKind::kRemove, core::TaskState::kQueued, "",
                      0,    h.now, h.now};
  REQUIRE(h.store.apply_change(c, gen).ok());
  h.queue.add("svc");
}

}  // namespace

TEST_CASE(
    "A PATCH storing another registry's credential during a dispatch never sends that "
    "password to the first registry",
    "[reconciler][credentials]") {
  Harness h;
  h.add_service("acme-bot");
  h.store.revisions["r1"].image_digest = std::string("sha256:") + std::string(64, 'a');
  // The PATCH lands after the plan checked the credential for 127.0.0.1:5000 and before the
  // dispatcher unseals it.
  h.store.before_unseal = [&h] {
    patch_image(h, "registry-b.example:5000/acme/api:2.0.0", "registry-b.example:5000", "b-bot",
                "canary-B");
  };
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  bool sent_b = false;
  for (const auto& s : h.gateway.sent) {
    if (s.password == "canary-B") {
      CHECK(s.order.auth_keys == std::vector<std::string>{"registry-b.example:5000"});
      CHECK(s.order.revision_id == "r2");
      sent_b = true;
    }
    CHECK(!(s.order.revision_id == "r1" && s.had_password));  // nothing was sent for host A
  }
  CHECK(sent_b);  // the new revision still goes out, with its own credential
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kSuperseded);
  CHECK(h.store.tasks["t1"].state == core::TaskState::kDone);
}

TEST_CASE("A result that arrives before the task is marked sent still completes it",
          "[reconciler][tasks]") {
  Harness h;
  h.add_service();
  // A fast agent: the result comes back while send() has not returned yet.
  h.gateway.on_send = [&h](const berth::testing::FakeGateway::Sent& s) {
    h.reconciler.task_result("vm-1", h.ok_result(s.task_id, "r1"));
  };
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  CHECK(h.store.tasks["t1"].state == core::TaskState::kDone);
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kSucceeded);
  CHECK(h.store.services["svc"].status == core::ServiceStatus::kRunning);
  CHECK(h.gateway.sent.size() == 1);
}

TEST_CASE("A task result is recorded by the service's worker, not on the link's thread",
          "[reconciler][tasks]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  const int writes = h.store.writes;
  h.reconciler.task_result("vm-1", h.ok_result("t1", "r1"));
  CHECK(h.store.writes == writes);  // only memory and the queue so far
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kPending);
  h.settle();
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kSucceeded);
}

TEST_CASE("A failed record_outcome is retried and the result is not lost", "[reconciler][tasks]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  h.store.fail_record_outcome = 1;
  h.reconciler.task_result("vm-1", h.ok_result("t1", "r1"));
  h.settle();
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kPending);
  CHECK(h.store.tasks["t1"].state == core::TaskState::kSent);
  h.advance(std::chrono::seconds(1));  // the key's backoff
  h.settle();
  CHECK(h.store.revisions["r1"].state == core::RevisionState::kSucceeded);
  CHECK(h.store.tasks["t1"].state == core::TaskState::kDone);
  CHECK(h.store.services["svc"].status == core::ServiceStatus::kRunning);
}

TEST_CASE("A sent task without an ack is sent again with the same id on a timer",
          "[reconciler][tasks]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  REQUIRE(h.gateway.sent.size() == 1);
  h.advance(std::chrono::seconds(10));
  h.settle();
  CHECK(h.gateway.sent.size() == 1);  // not yet due
  h.advance(std::chrono::seconds(6));
  h.settle();
  REQUIRE(h.gateway.sent.size() == 2);
  CHECK(h.gateway.sent[1].task_id == "t1");
  CHECK(h.store.tasks["t1"].attempts == 2);
}

TEST_CASE("An acknowledged task is not sent again while the agent works on it",
          "[reconciler][tasks]") {
  Harness h;
  h.add_service();
  h.reconciler.agent_connected("vm-1", "local", {});
  h.settle();
  h.reconciler.task_acked("vm-1", "t1");
  h.advance(std::chrono::seconds(61));
  h.settle();
  CHECK(h.gateway.sent.size() == 1);
}

TEST_CASE("A failed removal is sent again until the agent confirms it, and only then forgotten",
          "[reconciler][tasks]") {
  Harness h;
  h.run_first_revision();
  start_delete(h);
  h.settle();
  REQUIRE(h.gateway.sent.back().kind == "remove");
  const auto sends = h.gateway.sent.size();
  h.reconciler.task_result("vm-1", remove_result("t9", false));
  h.settle();
  CHECK(h.store.services.count("svc") == 1);  // still running on the agent: not forgotten
  CHECK(h.store.services["svc"].last_error.find("remove: ") == 0);
  CHECK(h.store.tasks["t9"].state == core::TaskState::kQueued);
  h.advance(std::chrono::seconds(2));  // the removal backoff
  h.settle();
  REQUIRE(h.gateway.sent.size() == sends + 1);
  CHECK(h.gateway.sent.back().kind == "remove");
  CHECK(h.gateway.sent.back().task_id == "t9");
  h.reconciler.task_result("vm-1", remove_result("t9", true));
  h.settle();
  CHECK(h.store.services.count("svc") == 0);
}

TEST_CASE("A deleting service whose agent still runs the app gets a removal, not forgotten",
          "[reconciler][tasks]") {
  Harness h;
  h.run_first_revision();
  core::AppService s = h.store.services["svc"];
  s.status = core::ServiceStatus::kDeleting;  // deleting, but its remove task is gone
  h.store.services["svc"] = s;
  h.queue.add("svc");
  h.settle();
  CHECK(h.store.services.count("svc") == 1);
  REQUIRE(!h.gateway.sent.empty());
  CHECK(h.gateway.sent.back().kind == "remove");
}

TEST_CASE("An app an agent runs for no known service is removed after the grace period",
          "[reconciler][tasks]") {
  Harness h;
  h.reconciler.agent_connected("vm-1", "local",
                               {{"ghost", core::ObservedApp{"rX", "sha256:aa", 20009, true, ""}}});
  h.settle();
  CHECK(h.gateway.sent.empty());  // grace period first
  h.advance(std::chrono::seconds(61));
  h.settle();
  REQUIRE(h.gateway.sent.size() == 1);
  CHECK(h.gateway.sent[0].kind == "remove");
  const std::string task = h.gateway.sent[0].task_id;
  core::TaskOutcome done;
  done.task_id = task;
  done.service_id = "ghost";
  done.ok = true;
  h.reconciler.task_result("vm-1", done);
  h.settle();
  h.advance(std::chrono::seconds(61));
  h.settle();
  CHECK(h.gateway.sent.size() == 1);  // confirmed: not sent again
}

TEST_CASE("Operator log lines name the app by name and id and carry no empty error",
          "[reconciler][logs]") {
  std::vector<std::string> lines;
  berth::log::set_sink([&lines](std::string_view line) { lines.emplace_back(line); });
  {
    Harness h;
    h.run_first_revision();
  }
  berth::log::set_sink({});
  int named = 0;
  for (const auto& line : lines) {
    CHECK(line.find("\"error\":\"\"") == std::string::npos);
    // The app by id under `app` (the key the API and the agent log it under too), its name
    // under `app_name`.
    if (line.find("\"app\":\"svc\"") != std::string::npos) {
      CHECK(line.find("\"app_name\":\"my-api\"") != std::string::npos);
      ++named;
    }
  }
  CHECK(named >= 2);  // placed, dispatched, succeeded
  int succeeded = 0;
  for (const auto& line : lines) {
    if (line.find("deploy succeeded") != std::string::npos) ++succeeded;
  }
  CHECK(succeeded == 1);  // one event, one line
}
