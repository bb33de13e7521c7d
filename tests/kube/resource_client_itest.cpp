// The resource client against the test API server (real HTTPS, the server's own semantics):
// pagination, 409 retries with a concurrent writer, the status subresource, apply, delete
// preconditions, watch resume and bookmarks, 410 after compaction and in the stream, faults.
#include <catch2/catch.hpp>

#include "kube/kube_itest.h"
#include "kube/resource_client.h"
#include "kube/status_error.h"
#include "kube/types.h"

namespace berth::kube {
namespace {

using itest::app;
using itest::count_requests;
using itest::make_namespace;
using nlohmann::json;

std::string rv_of(const json& object) { return object["metadata"]["resourceVersion"]; }

TEST_CASE("list_all reads every object across pages of `limit`", "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "pages");
  ResourceClient apps(*cluster.transport, AppService::kType);
  for (int i = 0; i < 7; ++i) REQUIRE(apps.create(app("pages", "app-" + std::to_string(i))).ok());

  ListOptions options;
  options.limit = 3;
  auto first = apps.list("pages", options);
  REQUIRE(first.ok());
  CHECK(first->items.size() == 3);
  CHECK_FALSE(first->continue_token.empty());

  const int lists_before = count_requests(cluster.server, "list", "appservices");
  auto all = apps.list_all("pages", options);
  REQUIRE(all.ok());
  CHECK(all->items.size() == 7);
  CHECK(all->continue_token.empty());
  CHECK_FALSE(all->resource_version.empty());
  CHECK(count_requests(cluster.server, "list", "appservices") - lists_before == 3);
  // All namespaces: the same objects without the namespace in the path.
  auto everywhere = apps.list_all("");
  REQUIRE(everywhere.ok());
  CHECK(everywhere->items.size() == 7);
}

TEST_CASE("update_with_retry re-reads after a concurrent writer's change and keeps both",
          "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "retry");
  ResourceClient apps(*cluster.transport, AppService::kType);
  REQUIRE(apps.create(app("retry", "web")).ok());
  auto other = itest::transport_for(cluster.server, cluster.server.admin_token());
  ResourceClient concurrent(*other, AppService::kType);

  int calls = 0;
  auto result = apps.update_with_retry("retry", "web", [&](json& object) {
    if (++calls == 1) {
      // Another writer gets in between our read and our write.
      REQUIRE(concurrent.merge_patch("retry", "web", {{"metadata", {{"labels", {{"other", "1"}}}}}})
                  .ok());
    }
    object["metadata"]["labels"]["mine"] = "1";
    return true;
  });
  REQUIRE(result.ok());
  CHECK(calls == 2);
  CHECK((*result)["metadata"]["labels"]["other"] == "1");
  CHECK((*result)["metadata"]["labels"]["mine"] == "1");

  // A stale update on its own is a kConflict with the server's message.
  json stale = (*result);
  stale["metadata"]["resourceVersion"] = "1";
  auto conflict = apps.update(stale);
  REQUIRE_FALSE(conflict.ok());
  CHECK(conflict.error().code == ErrorCode::kConflict);
  CHECK(conflict.error().message.find("the object has been modified") != std::string::npos);
}

TEST_CASE("the status subresource changes status only, and generation follows spec changes only",
          "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "status");
  Typed<AppService> apps(*cluster.transport);
  AppService a;
  a.metadata.name = "web";
  a.metadata.namespace_ = "status";
  a.spec.image_ref = "nginx:1.25";
  a.spec.container_port = 8080;
  auto created = apps.create(a);
  REQUIRE(created.ok());
  const auto generation = created->metadata.generation;
  CHECK(generation >= 1);

  AppService with_status = *created;
  with_status.status.phase = "Running";
  with_status.status.observed_generation = generation;
  with_status.spec.image_ref = "nginx:1.26";  // ignored by /status
  auto written = apps.update_status(with_status);
  REQUIRE(written.ok());
  CHECK(written->status.phase == "Running");
  CHECK(written->spec.image_ref == "nginx:1.25");
  CHECK(written->metadata.generation == generation);

  PatchOptions status_patch;
  status_patch.subresource = "status";
  auto patched = apps.merge_patch("status", "web", {{"status", {{"agent", "vm-1"}}}}, status_patch);
  REQUIRE(patched.ok());
  CHECK(patched->status.agent == "vm-1");
  CHECK(patched->status.phase == "Running");

  auto spec_patched = apps.merge_patch("status", "web", {{"spec", {{"imageRef", "nginx:1.27"}}}});
  REQUIRE(spec_patched.ok());
  CHECK(spec_patched->metadata.generation == generation + 1);
  CHECK(spec_patched->status.phase == "Running");
}

TEST_CASE("server errors arrive decoded: not found, already exists, invalid", "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "errors");
  ResourceClient apps(*cluster.transport, AppService::kType);
  auto missing = apps.get("errors", "nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK(missing.error().message.find("\"nope\" not found") != std::string::npos);

  REQUIRE(apps.create(app("errors", "web")).ok());
  auto again = apps.create(app("errors", "web"));
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kConflict);
  CHECK(again.error().message.find("already exists") != std::string::npos);

  // A ControllerRevision's data is immutable: the server answers 422 with the field.
  Typed<ControllerRevision> revisions(*cluster.transport);
  ControllerRevision revision;
  revision.metadata.name = "web-1";
  revision.metadata.namespace_ = "errors";
  revision.revision = 1;
  revision.data = {{"imageRef", "nginx:1.25"}};
  auto created = revisions.create(revision);
  REQUIRE(created.ok());
  created->data = {{"imageRef", "nginx:1.26"}};
  auto invalid = revisions.update(*created);
  REQUIRE_FALSE(invalid.ok());
  CHECK(invalid.error().code == ErrorCode::kValidation);
  CHECK(invalid.error().field == "data");
  CHECK(invalid.error().message.find("field is immutable") != std::string::npos);
}

TEST_CASE("server-side apply creates, then merges with berth-controller as field manager",
          "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "apply");
  ResourceClient apps(*cluster.transport, AppService::kType);
  PatchOptions force;
  force.force = true;
  auto created = apps.apply(app("apply", "web"), force);
  REQUIRE(created.ok());
  json change = app("apply", "web");
  change["metadata"]["labels"] = {{"applied", "yes"}};
  auto merged = apps.apply(change, force);
  REQUIRE(merged.ok());
  CHECK((*merged)["metadata"]["labels"]["applied"] == "yes");
  bool managed = false;
  for (const auto& entry : (*merged)["metadata"].value("managedFields", json::array())) {
    if (entry.value("manager", "") == "berth-controller") managed = true;
  }
  CHECK(managed);
}

TEST_CASE("delete with a uid precondition removes only the object that was read", "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "delete");
  ResourceClient apps(*cluster.transport, AppService::kType);
  auto created = apps.create(app("delete", "web"));
  REQUIRE(created.ok());
  Status wrong = apps.remove("delete", "web", "00000000-0000-0000-0000-000000000000");
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code == ErrorCode::kConflict);
  REQUIRE(apps.remove("delete", "web", (*created)["metadata"]["uid"]).ok());
  CHECK(apps.get("delete", "web").error().code == ErrorCode::kNotFound);
  CHECK(apps.remove("delete", "web").error().code == ErrorCode::kNotFound);
}

TEST_CASE("a watch from a version sees exactly the later changes, and bookmarks when asked",
          "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "watch");
  ResourceClient apps(*cluster.transport, AppService::kType);
  auto before = apps.create(app("watch", "before"));
  REQUIRE(before.ok());
  const std::string from = rv_of(*before);
  REQUIRE(apps.create(app("watch", "after")).ok());
  REQUIRE(apps.merge_patch("watch", "before", {{"metadata", {{"labels", {{"x", "1"}}}}}}).ok());
  REQUIRE(apps.remove("watch", "after").ok());

  WatchOptions options;
  options.resource_version = from;
  options.timeout_seconds = 30;
  std::vector<std::string> seen;
  std::string bookmark;
  Status st = apps.watch(
      "watch", options,
      [&](const WatchEvent& e) {
        if (e.type == "BOOKMARK") {
          bookmark = rv_of(e.object);
          return seen.size() < 3;
        }
        seen.push_back(e.type + " " + e.object["metadata"]["name"].get<std::string>());
        return !(seen.size() == 3 && !bookmark.empty());
      },
      std::stop_token{});
  REQUIRE(st.ok());
  CHECK(seen == std::vector<std::string>{"ADDED after", "MODIFIED before", "DELETED after"});

  // Bookmarks carry only a version; wait for one on a quiet watch.
  options.resource_version = "";
  bookmark.clear();
  REQUIRE(apps.watch(
                  "watch", options,
                  [&](const WatchEvent& e) {
                    if (e.type != "BOOKMARK") return true;
                    bookmark = rv_of(e.object);
                    return false;
                  },
                  std::stop_token{})
              .ok());
  CHECK_FALSE(bookmark.empty());
}

TEST_CASE("a watch from a compacted version, answered by an in-stream 410, is reported as expired",
          "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "gone");
  ResourceClient apps(*cluster.transport, AppService::kType);
  auto first = apps.create(app("gone", "one"));
  REQUIRE(first.ok());
  REQUIRE(apps.create(app("gone", "two")).ok());
  cluster.server.compact();
  WatchOptions options;
  options.resource_version = rv_of(*first);
  bool gone = false;
  Status st = apps.watch(
      "gone", options, [](const WatchEvent&) { return true; }, std::stop_token{}, &gone);
  REQUIRE_FALSE(st.ok());
  CHECK(gone);
  CHECK(is_expired(st.error()));
}

TEST_CASE(
    "a continue token from before compaction, answered by an HTTP 410, is reported as expired",
    "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "oldpage");
  ResourceClient apps(*cluster.transport, AppService::kType);
  REQUIRE(apps.create(app("oldpage", "one")).ok());
  REQUIRE(apps.create(app("oldpage", "two")).ok());
  ListOptions options;
  options.limit = 1;
  auto first = apps.list("oldpage", options);
  REQUIRE(first.ok());
  REQUIRE_FALSE(first.value().continue_token.empty());
  cluster.server.compact();
  options.continue_token = first.value().continue_token;
  auto rest = apps.list("oldpage", options);
  REQUIRE_FALSE(rest.ok());
  CHECK(is_expired(rest.error()));
}

TEST_CASE("an ERROR event with code 410 in the stream is reported as expired", "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "instream");
  ResourceClient apps(*cluster.transport, AppService::kType);
  REQUIRE(apps.create(app("instream", "one")).ok());
  cluster.server.inject_fault(
      {{"verb", "watch"}, {"resource", "appservices"}, {"kind", "gone-in-stream"}, {"count", 1}});
  bool gone = false;
  WatchOptions options;
  options.timeout_seconds = 30;
  Status st = apps.watch(
      "instream", options, [](const WatchEvent&) { return true; }, std::stop_token{}, &gone);
  REQUIRE_FALSE(st.ok());
  CHECK(gone);
  CHECK(is_expired(st.error()));
}

TEST_CASE("injected 500 and 429 answers are retryable errors", "[kube][itest]") {
  BERTH_KUBE_CLUSTER(cluster);
  make_namespace(*cluster.transport, "faults");
  ResourceClient apps(*cluster.transport, AppService::kType);
  REQUIRE(apps.create(app("faults", "web")).ok());
  cluster.server.inject_fault({{"verb", "get"},
                               {"resource", "appservices"},
                               {"kind", "status"},
                               {"code", 500},
                               {"count", 1}});
  cluster.server.inject_fault({{"verb", "get"},
                               {"resource", "appservices"},
                               {"kind", "status"},
                               {"code", 429},
                               {"count", 1}});
  auto first = apps.get("faults", "web");
  REQUIRE_FALSE(first.ok());
  CHECK(first.error().retryable());
  auto second = apps.get("faults", "web");
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().retryable());
  CHECK(apps.get("faults", "web").ok());
}

}  // namespace
}  // namespace berth::kube
