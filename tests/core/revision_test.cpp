#include <catch2/catch.hpp>

#include <algorithm>

#include "core/revision.h"

using berth::ErrorCode;
namespace core = berth::core;
using State = core::RevisionState;
using SS = core::ServiceStatus;

namespace {

core::AppConfig config(std::string image = "ghcr.io/acme/api:1.0.0") {
  core::AppConfig c;
  c.image_ref = std::move(image);
  c.container_port = 8080;
  c.registry_username = "acme-bot";
  return c;
}

core::Revision rev(std::string id, std::int64_t number, State state) {
  core::Revision r;
  r.id = std::move(id);
  r.number = number;
  r.state = state;
  return r;
}

}  // namespace

TEST_CASE("A new revision is pending with its number, config, host and reason", "[revision]") {
  auto r = core::make_revision("rev-1", "svc-1", 1, config(), core::kReasonInitial, 1000);
  REQUIRE(r.ok());
  CHECK(r->id == "rev-1");
  CHECK(r->service_id == "svc-1");
  CHECK(r->number == 1);
  CHECK(r->config == config());
  CHECK(r->registry_host == "ghcr.io");
  CHECK(r->reason == "initial deployment");
  CHECK(r->state == State::kPending);
  CHECK(r->created_at == 1000);
  CHECK(r->finished_at == 0);

  auto hub = core::make_revision("rev-2", "svc-1", 2, config("nginx"), core::kReasonUpdate, 2000);
  REQUIRE(hub.ok());
  CHECK(hub->registry_host == "docker.io");
  CHECK(hub->reason == "configuration update");
}

TEST_CASE("A rollback revision's reason names the target", "[revision]") {
  CHECK(core::rollback_reason("8d7e3c1a") == "rollback to 8d7e3c1a");
  auto r = core::make_revision("rev-3", "svc-1", 3, config(), core::rollback_reason("rev-1"), 0);
  REQUIRE(r.ok());
  CHECK(r->reason == "rollback to rev-1");
}

TEST_CASE("A revision with an unparsable image is refused", "[revision]") {
  auto r =
      core::make_revision("rev-1", "svc-1", 1, config("not a valid ref"), core::kReasonInitial, 0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kValidation);
  CHECK(r.error().field == "app_config.image_ref");
}

TEST_CASE("Only pending revisions move, and only to succeeded or failed", "[revision]") {
  struct Case {
    State from;
    State to;
    bool allowed;
  };
  const std::vector<Case> cases = {
      {State::kPending, State::kSucceeded, true},  {State::kPending, State::kFailed, true},
      {State::kPending, State::kPending, false},   {State::kSucceeded, State::kFailed, false},
      {State::kSucceeded, State::kPending, false}, {State::kFailed, State::kSucceeded, false},
      {State::kFailed, State::kPending, false},
  };
  for (const auto& c : cases) {
    CAPTURE(core::to_string(c.from), core::to_string(c.to));
    CHECK(core::transition_allowed(c.from, c.to) == c.allowed);
  }
}

TEST_CASE("Finishing a revision records the time and terminal states stay", "[revision]") {
  auto r = rev("rev-1", 1, State::kPending);
  REQUIRE(core::finish_revision(r, State::kSucceeded, 5000).ok());
  CHECK(r.state == State::kSucceeded);
  CHECK(r.finished_at == 5000);

  // The same outcome delivered again is accepted and changes nothing.
  REQUIRE(core::finish_revision(r, State::kSucceeded, 9000).ok());
  CHECK(r.finished_at == 5000);

  auto s = core::finish_revision(r, State::kFailed, 9000);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kFailedPrecondition);
  CHECK(r.state == State::kSucceeded);

  auto failed = rev("rev-2", 2, State::kFailed);
  CHECK_FALSE(core::finish_revision(failed, State::kSucceeded, 1).ok());
  CHECK(failed.state == State::kFailed);
  auto pending = rev("rev-3", 3, State::kPending);
  CHECK_FALSE(core::finish_revision(pending, State::kPending, 1).ok());
}

TEST_CASE("Pruning keeps the newest N succeeded revisions and never pending or failed ones",
          "[revision]") {
  std::vector<core::Revision> history;
  for (int i = 1; i <= 25; ++i) {
    history.push_back(rev("s" + std::to_string(i), i, State::kSucceeded));
  }
  history.push_back(rev("f26", 26, State::kFailed));
  history.push_back(rev("p27", 27, State::kPending));

  auto pruned = core::revisions_to_prune(history, core::kDefaultKeepSucceededRevisions);
  std::sort(pruned.begin(), pruned.end());
  CHECK(pruned == std::vector<std::string>{"s1", "s2", "s3", "s4", "s5"});

  struct Case {
    int keep;
    std::size_t expected;
  };
  for (const Case& c :
       {Case{25, 0}, Case{30, 0}, Case{24, 1}, Case{1, 24}, Case{0, 24}, Case{-3, 24}}) {
    CAPTURE(c.keep);
    CHECK(core::revisions_to_prune(history, c.keep).size() == c.expected);
  }
  CHECK(core::revisions_to_prune({}, 20).empty());
}

TEST_CASE("Pruning orders by revision number, not by list order", "[revision]") {
  std::vector<core::Revision> history = {rev("s3", 3, State::kSucceeded),
                                         rev("s1", 1, State::kSucceeded),
                                         rev("s2", 2, State::kSucceeded)};
  CHECK(core::revisions_to_prune(history, 2) == std::vector<std::string>{"s1"});
}

TEST_CASE("Pruning never chooses the revision that serves", "[revision]") {
  std::vector<core::Revision> history = {rev("s1", 1, State::kSucceeded),
                                         rev("s2", 2, State::kSucceeded),
                                         rev("s3", 3, State::kSucceeded)};
  CHECK(core::revisions_to_prune(history, 1, "s1") == std::vector<std::string>{"s2"});
}

TEST_CASE("The service status follows the rollout outcome", "[revision]") {
  struct Case {
    SS current;
    bool had_serving;
    State outcome;
    SS expected;
  };
  const std::vector<Case> cases = {
      {SS::kPending, false, State::kSucceeded, SS::kRunning},
      {SS::kPendingModification, true, State::kSucceeded, SS::kRunning},
      {SS::kPending, false, State::kFailed, SS::kFailed},
      {SS::kPendingModification, true, State::kFailed, SS::kRunning},
      {SS::kPendingModification, false, State::kFailed, SS::kFailed},
      {SS::kFailed, false, State::kSucceeded, SS::kRunning},
      {SS::kDeleting, true, State::kSucceeded, SS::kDeleting},
      {SS::kDeleting, false, State::kFailed, SS::kDeleting},
      {SS::kPendingModification, true, State::kPending, SS::kPendingModification},
  };
  for (const auto& c : cases) {
    CAPTURE(core::to_string(c.current), c.had_serving, core::to_string(c.outcome));
    CHECK(core::status_after_outcome(c.current, c.had_serving, c.outcome) == c.expected);
  }
}

TEST_CASE("A first deploy that fails leaves the service Failed with the failed step as error",
          "[revision]") {
  core::AppService svc;
  svc.status = SS::kPending;
  svc.desired_deployment_id = "rev-1";
  auto r = rev("rev-1", 1, State::kFailed);
  r.deploy_logs = {{"pull", "ok", "resolved", "", 0, 1},
                   {"start", "failed", "container exited with status 1", "", 1, 2}};
  core::apply_outcome(svc, r, 7000);
  CHECK(svc.status == SS::kFailed);
  CHECK(svc.current_deployment_id.empty());
  CHECK(svc.last_error == "start: container exited with status 1");
  CHECK(svc.updated_at == 7000);
}

TEST_CASE("A later deploy that fails keeps the service Running on the old revision", "[revision]") {
  core::AppService svc;
  svc.status = SS::kPendingModification;
  svc.current_deployment_id = "rev-1";
  svc.desired_deployment_id = "rev-2";
  core::apply_outcome(svc, rev("rev-2", 2, State::kFailed), 7000);
  CHECK(svc.status == SS::kRunning);
  CHECK(svc.current_deployment_id == "rev-1");
  CHECK(svc.last_error == "deployment failed");

  // The next success serves the new revision and clears the error.
  svc.status = SS::kPendingModification;
  svc.desired_deployment_id = "rev-3";
  core::apply_outcome(svc, rev("rev-3", 3, State::kSucceeded), 8000);
  CHECK(svc.status == SS::kRunning);
  CHECK(svc.current_deployment_id == "rev-3");
  CHECK(svc.last_error.empty());
}

TEST_CASE("An outcome of a superseded rollout does not overwrite the newer rollout's status",
          "[revision]") {
  core::AppService svc;
  svc.status = SS::kPendingModification;
  svc.current_deployment_id = "rev-1";
  svc.desired_deployment_id = "rev-3";
  core::apply_outcome(svc, rev("rev-2", 2, State::kFailed), 7000);
  CHECK(svc.status == SS::kPendingModification);
  CHECK(svc.last_error.empty());

  core::apply_outcome(svc, rev("rev-2", 2, State::kSucceeded), 7000);
  CHECK(svc.status == SS::kPendingModification);
  CHECK(svc.current_deployment_id == "rev-2");
}
