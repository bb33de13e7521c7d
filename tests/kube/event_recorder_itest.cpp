// The EventRecorder against the test API server, as a user with exactly the manifests' event
// permissions (create, patch on events.k8s.io events): aggregation into a series on the server,
// separate objects for different reasons, and the fields `kubectl get events` shows.
#include <catch2/catch.hpp>

#include "kube/event_recorder.h"
#include "kube/kube_itest.h"
#include "support/testenv.h"

namespace berth::kube {
namespace {

using nlohmann::json;

void grant_event_access(Transport& admin) {
  ResourceClient roles(admin,
                       {"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false});
  ResourceClient bindings(admin, {"rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                                  "ClusterRoleBinding", false});
  REQUIRE(roles
              .create({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                       {"kind", "ClusterRole"},
                       {"metadata", {{"name", "recorder"}}},
                       {"rules",
                        {{{"apiGroups", {"events.k8s.io"}},
                          {"resources", {"events"}},
                          {"verbs", {"create", "patch"}}}}}})
              .ok());
  REQUIRE(bindings
              .create({{"apiVersion", "rbac.authorization.k8s.io/v1"},
                       {"kind", "ClusterRoleBinding"},
                       {"metadata", {{"name", "recorder"}}},
                       {"roleRef",
                        {{"apiGroup", "rbac.authorization.k8s.io"},
                         {"kind", "ClusterRole"},
                         {"name", "recorder"}}},
                       {"subjects",
                        {{{"kind", "User"},
                          {"name", "recorder"},
                          {"apiGroup", "rbac.authorization.k8s.io"}}}}})
              .ok());
}

TEST_CASE("repeated events become one Event with a series, another reason is another Event",
          "[kube][events][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  itest::make_namespace(*cluster.transport, "shop");
  grant_event_access(*cluster.transport);
  auto created = Typed<AppService>(*cluster.transport)
                     .create(AppService::from_json(itest::app("shop", "web")).value());
  REQUIRE(created.ok());
  cluster.server.set_token("recorder", "token-recorder");
  auto transport = itest::transport_for(cluster.server, "token-recorder");

  EventRecorderOptions options;
  options.reporting_instance = "berth-controller-0_1a2b3c4d";
  {
    EventRecorder recorder(*transport, options);
    const ObjectReference ref = regarding(created.value());
    recorder.record(ref, EventType::kWarning, "PullFailed", "ResolveDigest",
                    "the registry refused the credential");
    recorder.record(ref, EventType::kWarning, "PullFailed", "ResolveDigest",
                    "the registry refused the credential");
    recorder.record(ref, EventType::kNormal, "RolloutStarted", "Deploy", "deploying revision 1");
    recorder.flush();
    const auto stats = recorder.stats();
    CHECK(stats.created == 2);
    CHECK(stats.aggregated == 1);
    CHECK(stats.failed == 0);
  }

  auto events = Typed<Event>(*cluster.transport).list("shop");
  REQUIRE(events.ok());
  REQUIRE(events->size() == 2);
  const Event* pulled = nullptr;
  const Event* rollout = nullptr;
  for (const auto& e : *events) {
    if (e.reason == "PullFailed") pulled = &e;
    if (e.reason == "RolloutStarted") rollout = &e;
  }
  REQUIRE(pulled != nullptr);
  REQUIRE(rollout != nullptr);
  REQUIRE(pulled->series.has_value());
  CHECK(pulled->series->count == 2);
  CHECK_FALSE(pulled->series->last_observed_time.empty());
  CHECK_FALSE(rollout->series.has_value());
  // What `kubectl get events` and `kubectl describe` show.
  for (const Event* e : {pulled, rollout}) {
    CHECK(e->reporting_controller == "berth.dev/controller");
    CHECK(e->reporting_instance == "berth-controller-0_1a2b3c4d");
    CHECK(e->regarding.kind == "AppService");
    CHECK(e->regarding.api_version == "berth.dev/v1alpha1");
    CHECK(e->regarding.name == "web");
    CHECK(e->regarding.uid == created->metadata.uid);
    CHECK_FALSE(e->event_time.empty());
  }
  CHECK(pulled->type == "Warning");
  CHECK(pulled->action == "ResolveDigest");
  CHECK(pulled->note == "the registry refused the credential");
  CHECK(rollout->type == "Normal");

  // And kubectl itself reads them (when it is installed; it is on every machine of the project).
  std::string out;
  if (testenv::run_command({"kubectl", "version", "--client"}, &out) != 0) {
    testing::skip_test("kubectl is not installed");
    return;
  }
  REQUIRE(testenv::run_command(
              {"kubectl", "--kubeconfig", cluster.server.kubeconfig_file(), "get",
               "events.v1.events.k8s.io", "-n", "shop", "--sort-by=.reason", "-o",
               "custom-columns=TYPE:.type,REASON:.reason,OBJECT:.regarding.kind,NAME:.regarding."
               "name,COUNT:.series.count,CONTROLLER:.reportingController,NOTE:.note"},
              &out) == 0);
  INFO(out);
  CHECK(out.find("Warning   PullFailed       AppService   web    2") != std::string::npos);
  CHECK(out.find("Normal    RolloutStarted   AppService   web    <none>") != std::string::npos);
  CHECK(out.find("berth.dev/controller") != std::string::npos);
}

}  // namespace
}  // namespace berth::kube
