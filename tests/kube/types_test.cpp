// Typed views: what they read, what they keep on a round trip, and the one Typed<T> client.
#include <catch2/catch.hpp>

#include "kube/fake_transport.h"
#include "kube/types.h"

namespace berth::kube {
namespace {

using nlohmann::json;
using testing::FakeTransport;
using testing::json_response;
using testing::status_body;

json app_json() {
  return json::parse(R"({
    "apiVersion": "berth.dev/v1alpha1", "kind": "AppService",
    "metadata": {"name": "billing", "namespace": "prod", "uid": "u1", "resourceVersion": "7",
                 "generation": 3, "labels": {"team": "pay"}, "finalizers": ["berth.dev/cleanup"],
                 "managedFields": [{"manager": "kubectl"}]},
    "spec": {"imageRef": "ghcr.io/example/billing:2.3.1", "containerPort": 8080,
             "registryUsername": "deploy-bot",
             "registryPasswordSecretRef": {"name": "ghcr-token"},
             "env": {"LOG_LEVEL": "info"}, "customDomains": ["billing.example.com"],
             "healthCheck": {"path": "/healthz", "intervalSeconds": 10},
             "futureField": {"x": 1}},
    "status": {"observedGeneration": 2, "phase": "Running", "currentRevision": 2,
               "conditions": [{"type": "Ready", "status": "True", "reason": "Deployed",
                               "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
  })");
}

TEST_CASE("AppService reads the CRD's fields, with its defaults where the server left them out",
          "[kube][types]") {
  auto app = AppService::from_json(app_json());
  REQUIRE(app.ok());
  CHECK(app->metadata.name == "billing");
  CHECK(app->metadata.namespace_ == "prod");
  CHECK(app->metadata.generation == 3);
  CHECK(app->metadata.finalizers == std::vector<std::string>{"berth.dev/cleanup"});
  CHECK(app->spec.image_ref == "ghcr.io/example/billing:2.3.1");
  CHECK(app->spec.container_port == 8080);
  REQUIRE(app->spec.registry_password_secret_ref.has_value());
  CHECK(app->spec.registry_password_secret_ref->name == "ghcr-token");
  CHECK(app->spec.registry_password_secret_ref->key == "password");
  CHECK(app->spec.plan_name == "tier-1");
  CHECK(app->spec.env.at("LOG_LEVEL") == "info");
  CHECK(app->spec.health_check.interval_seconds == 10);
  CHECK(app->spec.health_check.timeout_seconds == 3);
  CHECK(app->spec.health_check.healthy_threshold == 1);
  CHECK(app->status.phase == "Running");
  REQUIRE(find_condition(app->status.conditions, "Ready") != nullptr);
  CHECK(find_condition(app->status.conditions, "Ready")->reason == "Deployed");
}

TEST_CASE("a typed round trip keeps the fields berth does not model", "[kube][types]") {
  auto app = AppService::from_json(app_json());
  REQUIRE(app.ok());
  app->status.phase = "Progressing";
  app->metadata.labels["extra"] = "1";
  const json out = app->to_json();
  CHECK(out["spec"]["futureField"] == json{{"x", 1}});
  CHECK(out["metadata"]["managedFields"].size() == 1);
  CHECK(out["metadata"]["labels"] == json{{"team", "pay"}, {"extra", "1"}});
  CHECK(out["status"]["phase"] == "Progressing");
  CHECK(out["metadata"]["resourceVersion"] == "7");
  auto again = AppService::from_json(out);
  REQUIRE(again.ok());
  CHECK(again->spec.registry_username == "deploy-bot");
}

TEST_CASE("a field of the wrong type is an error that names the object and the field",
          "[kube][types]") {
  json bad = app_json();
  bad["spec"]["containerPort"] = "8080";
  auto app = AppService::from_json(bad);
  REQUIRE_FALSE(app.ok());
  CHECK(app.error().code == ErrorCode::kInvalidArgument);
  CHECK(app.error().field == "spec.containerPort");
  CHECK(app.error().message == "AppService prod/billing: spec.containerPort: not an integer");
}

TEST_CASE(
    "Secret data is decoded into Secrets, a bad value names only its key, and to_json "
    "encodes it again",
    "[kube][types]") {
  json object = {{"apiVersion", "v1"},
                 {"kind", "Secret"},
                 {"metadata", {{"name", "ghcr-token"}, {"namespace", "prod"}}},
                 {"type", "Opaque"},
                 {"data", {{"password", "aHVudGVyMg=="}}}};
  auto secret = KubeSecret::from_json(object);
  REQUIRE(secret.ok());
  CHECK(secret->data.at("password").reveal() == "hunter2");
  CHECK_FALSE(secret->raw.contains("data"));
  CHECK(secret->to_json()["data"]["password"] == "aHVudGVyMg==");

  object["data"]["password"] = "not base64 s3cr3t!";
  auto bad = KubeSecret::from_json(object);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("data.password") != std::string::npos);
  CHECK(bad.error().message.find("s3cr3t") == std::string::npos);
}

TEST_CASE("ControllerRevision, Lease and Event convert both ways", "[kube][types]") {
  ControllerRevision rev;
  rev.metadata = {"billing-2", "prod"};
  rev.revision = 2;
  rev.data = {{"imageRef", "x"}};
  auto rev2 = ControllerRevision::from_json(rev.to_json());
  REQUIRE(rev2.ok());
  CHECK(rev2->revision == 2);
  CHECK(rev2->data == json{{"imageRef", "x"}});
  CHECK(rev.to_json()["apiVersion"] == "apps/v1");

  Lease lease;
  lease.metadata = {"berth-controller", "berth-system"};
  lease.spec.holder_identity = "pod-a";
  lease.spec.lease_duration_seconds = 15;
  lease.spec.renew_time = "2026-01-01T00:00:00.000000Z";
  auto lease2 = Lease::from_json(lease.to_json());
  REQUIRE(lease2.ok());
  CHECK(lease2->spec.holder_identity == "pod-a");
  CHECK(lease2->spec.lease_duration_seconds == 15);
  CHECK(lease.to_json()["apiVersion"] == "coordination.k8s.io/v1");

  Event event;
  event.metadata = {"billing.1", "prod"};
  event.reason = "Deployed";
  event.type = "Warning";
  event.regarding = {"berth.dev/v1alpha1", "AppService", "prod", "billing", "u1", ""};
  event.series = EventSeries{3, "2026-01-01T00:00:00.000000Z"};
  auto event2 = Event::from_json(event.to_json());
  REQUIRE(event2.ok());
  CHECK(event2->regarding.name == "billing");
  CHECK(event2->series->count == 3);
  CHECK(event.to_json()["apiVersion"] == "events.k8s.io/v1");
}

TEST_CASE("set_condition changes lastTransitionTime only when the status changes",
          "[kube][types]") {
  std::vector<Condition> conditions;
  set_condition(conditions, {"Ready", "False", 1, "", "Pending", ""}, "t1");
  set_condition(conditions, {"Ready", "False", 2, "", "Pulling", ""}, "t2");
  REQUIRE(conditions.size() == 1);
  CHECK(conditions[0].last_transition_time == "t1");
  CHECK(conditions[0].reason == "Pulling");
  set_condition(conditions, {"Ready", "True", 2, "", "Deployed", ""}, "t3");
  CHECK(conditions[0].last_transition_time == "t3");
}

TEST_CASE(
    "Typed<AppService> goes through the generic client: paths, status subresource, typed "
    "read-modify-write",
    "[kube][types]") {
  FakeTransport t;
  t.on_send = [](const Request& r) -> Result<Response> {
    if (r.method == "GET") return json_response(200, app_json());
    return json_response(200, json::parse(r.body));
  };
  Typed<AppService> apps(t);
  auto app = apps.get("prod", "billing");
  REQUIRE(app.ok());
  CHECK(t.requests().at(0).target ==
        "/apis/berth.dev/v1alpha1/namespaces/prod/appservices/billing");
  app->status.phase = "Running";
  REQUIRE(apps.update_status(*app).ok());
  CHECK(t.requests().at(1).method == "PUT");
  CHECK(t.requests().at(1).target ==
        "/apis/berth.dev/v1alpha1/namespaces/prod/appservices/billing/status");
  auto updated = apps.update_with_retry(
      "prod", "billing",
      [](AppService& a) {
        a.status.last_error = "pull: denied";
        return true;
      },
      "status");
  REQUIRE(updated.ok());
  CHECK(updated->status.last_error == "pull: denied");

  Typed<KubeSecret> secrets(t);
  CHECK(secrets.raw().collection_path("prod") == "/api/v1/namespaces/prod/secrets");
  FakeTransport missing;
  missing.push_response(
      json_response(404, status_body(404, "NotFound", "secrets \"x\" not found")));
  auto none = Typed<KubeSecret>(missing).get("prod", "x");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().code == ErrorCode::kNotFound);
}

}  // namespace
}  // namespace berth::kube
