// status.progress in Kubernetes mode against the test API server (docs/kubernetes.md "Rollout
// progress in status"): KubeStateStore::write_progress merge-patches the status subresource with
// the same object as the REST API's `progress`, accepted by the CRD's schema, without touching
// the phase or conditions the reconciler wrote; nullopt removes the field.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "core/progress.h"
#include "kube/app_intake.h"
#include "kube/state_store.h"
#include "kube/types.h"
#include "kube_itest.h"

namespace berth::kube {
namespace {

using nlohmann::json;

constexpr const char* kNs = "progress";

// A public image: the intake only asks for its digest.
class DigestOnly final : public core::DigestResolver {
 public:
  Result<std::string> resolve(const std::string&, const core::RegistryLogin*) override {
    return "sha256:" + std::string(64, 'a');
  }
};

core::UnixMillis wall_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Fixture {
  explicit Fixture(itest::Cluster& c) : cluster(c) {
    itest::make_namespace(*cluster.transport, kNs);
    KubeStateStoreOptions so;
    so.now = wall_now;
    store = std::make_unique<KubeStateStore>(*cluster.transport, so);
    IntakeOptions io;
    io.now = wall_now;
    io.new_id = [this] { return "id-" + std::to_string(++ids); };
    io.secret_version = [](const std::string&, const std::string&) { return std::string(); };
    intake = std::make_unique<AppIntake>(*store, *cluster.transport, registry, io);
  }

  // An accepted AppService (status written by the intake): its uid, the store's id.
  std::string accepted(const std::string& name) {
    REQUIRE(apps.raw().create(itest::app(kNs, name)).ok());
    auto got = apps.get(kNs, name);
    REQUIRE(got.ok());
    store->observe(*got);
    auto r = intake->run(got->metadata.uid);
    REQUIRE(r.ok());
    return got->metadata.uid;
  }

  json status(const std::string& name) {
    auto got = apps.raw().get(kNs, name);
    REQUIRE(got.ok());
    return (*got).value("status", json::object());
  }

  itest::Cluster& cluster;
  Typed<AppService> apps{*cluster.transport};
  DigestOnly registry;
  std::unique_ptr<KubeStateStore> store;
  std::unique_ptr<AppIntake> intake;
  int ids = 0;
};

core::RolloutProgress pulling() {
  core::RolloutProgress p;
  p.task_id = "web-1-task";
  p.step = "pull";
  p.layers_done = 3;
  p.layers_total = 5;
  p.bytes_done = 41'200'000;
  p.bytes_total = 80'000'000;
  p.updated_at = 1'700'000'123'000;
  p.entries = {core::DeployLogEntry{"pull", "info", "pulling: 3/5 layers", "", 1, 0}};
  return p;
}

}  // namespace

TEST_CASE("status.progress is written beside the reconciler's status and removed after",
          "[kube][progress][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  Fixture f(cluster);
  const std::string id = f.accepted("web");
  const json before = f.status("web");
  REQUIRE(before.value("phase", "") == "Pending");
  CHECK_FALSE(before.contains("progress"));
  const int patches = itest::count_requests(cluster.server, "patch", "appservices");

  REQUIRE(f.store->write_progress(id, pulling()).ok());
  CHECK(itest::count_requests(cluster.server, "patch", "appservices") == patches + 1);
  const json during = f.status("web");
  INFO(during.dump(2));
  REQUIRE(during.contains("progress"));
  const json& p = during["progress"];
  CHECK(p["step"] == "pull");
  CHECK(p["layersDone"] == 3);
  CHECK(p["layersTotal"] == 5);
  CHECK(p["bytesDone"] == 41'200'000);
  CHECK(p["bytesTotal"] == 80'000'000);
  CHECK(p["updatedAt"] == core::format_rfc3339(1'700'000'123'000));
  CHECK(p.size() == 6);  // the REST API's names only: no task id, no log entries
  // The rest of the status is the reconciler's, untouched.
  CHECK(during["phase"] == before["phase"]);
  CHECK(during["conditions"] == before["conditions"]);
  CHECK(during.value("observedGeneration", 0) == before.value("observedGeneration", 0));

  // A later report replaces the object.
  core::RolloutProgress later = pulling();
  later.layers_done = 5;
  later.bytes_done = 80'000'000;
  later.step = "start";
  REQUIRE(f.store->write_progress(id, later).ok());
  CHECK(f.status("web")["progress"]["step"] == "start");
  CHECK(f.status("web")["progress"]["bytesDone"] == 80'000'000);

  // The rollout ends: the field goes, the rest stays.
  REQUIRE(f.store->write_progress(id, std::nullopt).ok());
  const json after = f.status("web");
  INFO(after.dump(2));
  CHECK_FALSE(after.contains("progress"));
  CHECK(after["phase"] == before["phase"]);
  CHECK(after["conditions"] == before["conditions"]);
}

TEST_CASE("progress of an app the store does not know is not written", "[kube][progress][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  Fixture f(cluster);
  const int patches = itest::count_requests(cluster.server, "patch", "appservices");
  CHECK(f.store->write_progress("no-such-uid", pulling()).ok());
  CHECK(f.store->write_progress("no-such-uid", std::nullopt).ok());
  CHECK(itest::count_requests(cluster.server, "patch", "appservices") == patches);
}

}  // namespace berth::kube
