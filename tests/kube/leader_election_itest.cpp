// Two LeaderElectors against the test API server, each as its own user with exactly the
// manifests' Lease permissions (get, create, update in berth-system), with small timings.
// The callbacks of both go into one timeline, which must never show two leaders at once.
#include <catch2/catch.hpp>

#include <mutex>
#include <vector>

#include "kube/kube_itest.h"
#include "kube/leader_election.h"
#include "support/wait.h"

namespace berth::kube {
namespace {

using namespace std::chrono_literals;
using berth::testing::wait_until;
using nlohmann::json;

// Every start and stop of leading, in order, and whether two ever overlapped.
struct Timeline {
  std::mutex mu;
  std::vector<std::string> entries;
  int leaders = 0;
  bool overlapped = false;

  void started(const std::string& who) {
    std::lock_guard lock(mu);
    if (++leaders > 1) overlapped = true;
    entries.push_back("started " + who);
  }
  void stopped(const std::string& who) {
    std::lock_guard lock(mu);
    --leaders;
    entries.push_back("stopped " + who);
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mu);
    return entries;
  }
  bool has(const std::string& entry) {
    std::lock_guard lock(mu);
    return std::find(entries.begin(), entries.end(), entry) != entries.end();
  }
};

struct Replica {
  std::string user;
  std::string token;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<LeaderElector> elector;
};

// What manifests/rbac.yaml grants the controller on Leases, for the two test users.
void grant_lease_access(Transport& admin) {
  ResourceClient roles(admin, {"rbac.authorization.k8s.io", "v1", "roles", "Role", true});
  ResourceClient bindings(admin,
                          {"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true});
  REQUIRE(roles
              .create({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                       {"kind", "Role"},
                       {"metadata", {{"name", "election"}, {"namespace", "berth-system"}}},
                       {"rules",
                        {{{"apiGroups", {"coordination.k8s.io"}},
                          {"resources", {"leases"}},
                          {"verbs", {"get", "create", "update"}}}}}})
              .ok());
  REQUIRE(bindings
              .create({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                       {"kind", "RoleBinding"},
                       {"metadata", {{"name", "election"}, {"namespace", "berth-system"}}},
                       {"roleRef",
                        {{"apiGroup", "rbac.authorization.k8s.io"},
                         {"kind", "Role"},
                         {"name", "election"}}},
                       {"subjects",
                        {{{"kind", "User"},
                          {"name", "elector-a"},
                          {"apiGroup", "rbac.authorization.k8s.io"}},
                         {{"kind", "User"},
                          {"name", "elector-b"},
                          {"apiGroup", "rbac.authorization.k8s.io"}}}}})
              .ok());
}

LeaderElectionOptions small_timings(std::chrono::milliseconds lease = 4s) {
  LeaderElectionOptions options;
  options.lease_duration = lease;
  options.renew_deadline = 3s;
  options.retry_period = 500ms;
  return options;
}

Replica replica(itest::Cluster& cluster, Timeline& timeline, const std::string& user,
                LeaderElectionOptions options, std::vector<std::string>* holders = nullptr) {
  Replica r;
  r.user = user;
  r.token = "token-" + user;
  cluster.server.set_token(user, r.token);
  r.transport = itest::transport_for(cluster.server, r.token);
  options.identity = user;
  LeaderCallbacks callbacks;
  callbacks.on_started_leading = [&timeline, user] { timeline.started(user); };
  callbacks.on_stopped_leading = [&timeline, user] { timeline.stopped(user); };
  if (holders != nullptr) {
    callbacks.on_new_leader = [holders](const std::string& h) { holders->push_back(h); };
  }
  auto made = LeaderElector::create(*r.transport, options, callbacks);
  REQUIRE(made.ok());
  r.elector = std::move(made.value());
  return r;
}

Lease read_lease(itest::Cluster& cluster) {
  auto lease = Typed<Lease>(*cluster.transport).get("berth-system", "berth-controller");
  REQUIRE(lease.ok());
  return lease.value();
}

struct Setup {
  Timeline timeline;
  std::vector<std::string> b_holders;  // what b saw, in order (only b's thread writes it)
};

void prepare(itest::Cluster& cluster) {
  itest::make_namespace(*cluster.transport, "berth-system");
  grant_lease_access(*cluster.transport);
}

int lease_reads_by(const testenv::KubeApiServer& server, const std::string& user) {
  int n = 0;
  for (const auto& r : server.requests()) {
    if (r.value("user", "") == user && r.value("resource", "") == "leases" &&
        r.value("verb", "") == "get")
      ++n;
  }
  return n;
}

TEST_CASE("of two electors exactly one leads, and the Lease names it", "[kube][leader][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  prepare(cluster);
  Setup s;
  Replica a = replica(cluster, s.timeline, "elector-a", small_timings());
  a.elector->start();
  REQUIRE(wait_until([&] { return a.elector->is_leader(); }, 20s));
  Replica b = replica(cluster, s.timeline, "elector-b", small_timings());
  b.elector->start();
  // b has looked at the Lease several times and each time left it to a.
  const int before = lease_reads_by(cluster.server, "elector-b");
  REQUIRE(
      wait_until([&] { return lease_reads_by(cluster.server, "elector-b") >= before + 4; }, 20s));
  CHECK(a.elector->is_leader());
  CHECK_FALSE(b.elector->is_leader());
  CHECK(b.elector->holder() == "elector-a");
  const Lease lease = read_lease(cluster);
  CHECK(lease.spec.holder_identity == "elector-a");
  CHECK(lease.spec.lease_duration_seconds == 4);
  CHECK(lease.spec.lease_transitions == 0);
  CHECK_FALSE(lease.spec.renew_time.empty());
  CHECK(s.timeline.snapshot() == std::vector<std::string>{"started elector-a"});
  b.elector->stop();
  a.elector->stop();
  CHECK_FALSE(s.timeline.overlapped);
}

TEST_CASE("a leader stopped cleanly releases the Lease and the standby takes over at once",
          "[kube][leader][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  prepare(cluster);
  Setup s;
  // A lease far longer than the wait below: only a release lets b in within it.
  Replica a = replica(cluster, s.timeline, "elector-a", small_timings(60s));
  a.elector->start();
  REQUIRE(wait_until([&] { return a.elector->is_leader(); }, 20s));
  Replica b = replica(cluster, s.timeline, "elector-b", small_timings(60s), &s.b_holders);
  b.elector->start();
  REQUIRE(wait_until([&] { return b.elector->holder() == "elector-a"; }, 20s));

  a.elector->stop();
  CHECK(s.timeline.has("stopped elector-a"));
  REQUIRE(wait_until([&] { return b.elector->is_leader(); }, 20s));
  b.elector->stop();
  CHECK(s.timeline.snapshot() == std::vector<std::string>{"started elector-a", "stopped elector-a",
                                                          "started elector-b",
                                                          "stopped elector-b"});
  CHECK_FALSE(s.timeline.overlapped);
  // b took over a released Lease, not an expired one.
  CHECK(s.b_holders == std::vector<std::string>{"elector-a", "", "elector-b", ""});
  const Lease lease = read_lease(cluster);
  CHECK(lease.spec.holder_identity.empty());  // b released it too
  CHECK(lease.spec.lease_transitions == 1);
}

void check_step_down_and_takeover(itest::Cluster& cluster, Setup& s, Replica& a, Replica& b) {
  // a stops leading on its own once it cannot renew within the deadline ...
  REQUIRE(wait_until([&] { return s.timeline.has("stopped elector-a"); }, 30s));
  CHECK_FALSE(a.elector->is_leader());
  // ... and b leads once the lease has gone unrenewed for its duration.
  // is_leader() turns true before the started callback has run; wait for the callback itself.
  REQUIRE(wait_until([&] { return s.timeline.has("started elector-b"); }, 30s));
  CHECK(b.elector->is_leader());
  const auto timeline = s.timeline.snapshot();
  REQUIRE(timeline.size() == 3);
  CHECK(timeline[0] == "started elector-a");
  CHECK(timeline[1] == "stopped elector-a");
  CHECK(timeline[2] == "started elector-b");
  CHECK_FALSE(s.timeline.overlapped);
  CHECK(read_lease(cluster).spec.holder_identity == "elector-b");
  CHECK(read_lease(cluster).spec.lease_transitions == 1);
  b.elector->stop();
  a.elector->stop();
}

TEST_CASE(
    "a leader whose credential is revoked steps down, and the standby takes over after "
    "the lease expires",
    "[kube][leader][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  prepare(cluster);
  Setup s;
  Replica a = replica(cluster, s.timeline, "elector-a", small_timings());
  a.elector->start();
  REQUIRE(wait_until([&] { return a.elector->is_leader(); }, 20s));
  Replica b = replica(cluster, s.timeline, "elector-b", small_timings());
  b.elector->start();
  REQUIRE(wait_until([&] { return b.elector->holder() == "elector-a"; }, 20s));
  cluster.server.remove_token(a.token);  // every renewal of a is now a 401
  check_step_down_and_takeover(cluster, s, a, b);
}

TEST_CASE(
    "a leader whose renewal stalls past the renew deadline steps down, and the standby "
    "takes over",
    "[kube][leader][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  prepare(cluster);
  Setup s;
  Replica a = replica(cluster, s.timeline, "elector-a", small_timings());
  a.elector->start();
  REQUIRE(wait_until([&] { return a.elector->is_leader(); }, 20s));
  Replica b = replica(cluster, s.timeline, "elector-b", small_timings());
  b.elector->start();
  REQUIRE(wait_until([&] { return b.elector->holder() == "elector-a"; }, 20s));
  // Only the holder writes the Lease while it is held, so the next update is a's renewal; it
  // hangs longer than the renew deadline.
  cluster.server.inject_fault({{"kind", "stall"},
                               {"verb", "update"},
                               {"resource", "leases"},
                               {"seconds", 5},
                               {"count", 1}});
  check_step_down_and_takeover(cluster, s, a, b);
}

}  // namespace
}  // namespace berth::kube
