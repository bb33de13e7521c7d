// Kubernetes mode, high availability: replicas of `serve --kubernetes --leader-elect` share one
// Lease (berth-system/berth-controller, the default 15 s lease, 10 s renew deadline, 2 s retry)
// and one --agent-listen port that only the leader binds; a separate berth-agent dials it.
// SIGKILL of the leader mid-rollout hands the rollout to the standby; a leader that cannot renew
// past the renew deadline stops working until it holds the Lease again.
#include <signal.h>

#include <catch2/catch.hpp>

#include "e2e/kube_stack.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
using e2e::KubeStack;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string holder(KubeStack& stack) {
  const json lease = stack.lease();
  if (lease.is_null()) return {};
  return lease.value("spec", json::object()).value("holderIdentity", "");
}

std::string wait_holder(KubeStack& stack, const std::function<bool(const std::string&)>& pred,
                        const std::string& what, e2e::Seconds limit) {
  std::string h;
  if (berth::testing::wait_until([&] { return pred(h = holder(stack)); }, limit, 300ms)) return h;
  FAIL("the Lease holder never became " << what << "; last: '" << h
                                        << "' lease: " << stack.lease().dump(2) << "\n"
                                        << stack.all_logs());
  return {};
}

std::string annotation(const json& object, const std::string& key) {
  return object["metadata"].value("annotations", json::object()).value(key, "");
}

// A slow probe (5 healthy answers a second apart) so a rollout lasts long enough to be
// interrupted while green is being probed beside blue.
const json kSlowProbe = {
    {"healthCheck",
     {{"path", "/"}, {"intervalSeconds", 1}, {"timeoutSeconds", 1}, {"healthyThreshold", 5}}}};

}  // namespace

TEST_CASE(
    "Kubernetes mode HA: of two replicas one leads, and SIGKILL of the leader mid-rollout hands "
    "over "
    "to the other, which completes the rollout",
    "[e2e][kube][ha]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  KubeStack stack({.replicas = 2, .separate_agent = true});
  // The first replica leads (it is alone); the second waits as a standby.
  stack.start_replica(0);
  wait_holder(
      stack, [&](const std::string& h) { return h == stack.identity(0); }, "replica-0", 60s);
  stack.start_replica(1);
  stack.start_agent();
  // Both are ready (caches synced); only one leads.
  for (int i = 0; i < 2; ++i) {
    berth::testing::HttpResult r;
    const bool ready = berth::testing::wait_until(
        [&] { return (r = stack.health(i, "/readyz")).status == 200; }, 60s, 200ms);
    INFO("replica " << i << " /readyz: " << r.status << " " << r.body << "\n" << stack.all_logs());
    CHECK(ready);
  }
  CHECK(holder(stack) == stack.identity(0));
  // The health port's /metrics says which replica leads (1 once the leader started its work).
  CHECK(berth::testing::wait_until(
      [&] {
        return stack.health(0, "/metrics").body.find("\nberth_leader 1\n") != std::string::npos;
      },
      60s, 200ms));
  CHECK_THAT(stack.health(1, "/metrics").body, Catch::Contains("\nberth_leader 0\n"));

  auto& registry = stack.registry();
  const std::string name = "ha";
  stack.apply_password_secret("creds", registry.password());
  stack.apply(stack.app_yaml(name, "v1", "creds", kSlowProbe));
  json app = stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1", 180s);
  const std::string url = app["status"]["endpoint"];
  REQUIRE(KubeStack::page(url) == "v1\n");

  // Mid-rollout: revision 2 recorded and green running beside blue, then the leader dies.
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v2")}}}});
  json revs;
  const bool mid = berth::testing::wait_until(
      [&] {
        revs = stack.revisions(name);
        return revs.size() == 2 && stack.containers().size() == 2;
      },
      60s, 100ms);
  INFO(revs.dump(2) << "\n" << stack.all_logs());
  REQUIRE(mid);
  CHECK(annotation(revs[1], "berth.dev/state") != "succeeded");
  stack.kill_replica(0);

  // The standby takes the Lease once it expires and finishes what the leader started.
  wait_holder(
      stack, [&](const std::string& h) { return h == stack.identity(1); }, "replica-1", 60s);
  app =
      stack.wait_for(name, KubeStack::running_at(2), "Running at revision 2 under replica-1", 120s);
  KubeStack::wait_page(url, "v2\n", 30s);
  CHECK(app["status"]["imageDigest"] == registry.digest("v2"));
  revs = stack.revisions(name);
  REQUIRE(revs.size() == 2);
  CHECK(annotation(revs[1], "berth.dev/state") == "succeeded");
  CHECK(stack.containers(/*all=*/true).size() == 1);
  CHECK(stack.replica(1).running());
  const json lease = stack.lease();
  CHECK(lease["spec"].value("leaseTransitions", 0) >= 1);

  // The new leader keeps working: another change is deployed.
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v1")}}}});
  stack.wait_for(name, KubeStack::running_at(3), "Running at revision 3 under replica-1", 120s);
  KubeStack::wait_page(url, "v1\n", 30s);

  const auto scan = stack.registry_secret_scan();
  CHECK(scan.lines_in(stack.replica_log(0)).empty());
  CHECK(scan.lines_in(stack.replica_log(1)).empty());
  CHECK(scan.lines_in(stack.agent_log()).empty());
}

TEST_CASE(
    "Kubernetes mode HA: a leader whose Lease renewals fail past the renew deadline stops work, "
    "then regains the Lease and resumes",
    "[e2e][kube][ha]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  // One replica with leader election and a separate agent (as in a cluster, where agents run
  // apart from the controller's pods).
  KubeStack stack({.replicas = 1, .leader_elect = true, .separate_agent = true});
  stack.start();
  wait_holder(
      stack, [&](const std::string& h) { return h == stack.identity(0); }, "replica-0", 60s);

  auto& registry = stack.registry();
  const std::string name = "lonely";
  stack.apply_password_secret("creds", registry.password());
  stack.apply(stack.app_yaml(name, "v1", "creds"));
  json app = stack.wait_for(name, KubeStack::running_at(1), "Running at revision 1");
  const std::string url = app["status"]["endpoint"];
  REQUIRE(KubeStack::page(url) == "v1\n");

  // Every Lease write fails with 500 until cleared: renewals stop succeeding, and after the
  // renew deadline (10 s) the leader stops all work.
  stack.server().inject_fault({{"kind", "status"},
                               {"verb", "update"},
                               {"resource", "leases"},
                               {"code", 500},
                               {"count", 100000}});
  stack.wait_log(0, "leader election: lost the lease; stopping all work", 1, 60s);
  // Stopping all work may mean ending the process (controller-runtime's manager exits and
  // the Deployment restarts the container). Then do what the kubelet does: start it again,
  // same identity (the pod's), as a candidate that cannot renew either while the fault lasts.
  if (stack.replica(0).wait(5000ms) != -1) {
    INFO(stack.all_logs());
    CHECK(stack.replica(0).wait(0ms) == 1);  // a failure exit, not a crash
    stack.start_replica(0);
  }

  // Not leading: a spec change made now is not acted on.
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v2")}}}});
  const int generation = stack.app(name)["metadata"]["generation"];
  const bool acted = berth::testing::wait_until(
      [&] {
        const json a = stack.app(name);
        return a["status"].value("observedGeneration", 0) == generation ||
               stack.revisions(name).size() > 1;
      },
      6s, 300ms);
  INFO(stack.all_logs());
  CHECK_FALSE(acted);
  CHECK(KubeStack::page(url) == "v1\n");

  // Lease writes work again: replica-0 leads again and deploys the change.
  stack.server().clear_faults();
  // (The log file is appended to across a restart: the second "started leading" is the regain.)
  wait_holder(
      stack,
      [&](const std::string& h) {
        return h == stack.identity(0) &&
               KubeStack::count_in(stack.replica_log(0), "leader election: started leading") >= 2;
      },
      "replica-0, leading again", 60s);
  REQUIRE(stack.replica(0).running());
  app = stack.wait_for(name, KubeStack::running_at(2), "Running at revision 2 after regaining");
  KubeStack::wait_page(url, "v2\n", 30s);
  CHECK(app["status"]["imageDigest"] == registry.digest("v2"));
  CHECK(stack.containers(/*all=*/true).size() == 1);
}
