// The informer against the test API server: it follows changes made by another client, resumes
// a dropped watch without a relist, relists after compaction and after a 410 in the stream
// (reporting what was deleted meanwhile), retries 500/429 with backoff, and follows bookmarks.
#include <initializer_list>
#include <memory>
#include <mutex>

#include <catch2/catch.hpp>

#include "kube/informer.h"
#include "kube/kube_itest.h"
#include "kube/types.h"
#include "support/wait.h"

namespace berth::kube {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using berth::testing::wait_until;
using itest::app;
using itest::make_namespace;

int count_requests(const testenv::KubeApiServer& server, const std::string& verb) {
  return itest::count_requests(server, verb, "appservices");
}

// Handler calls as "add NAME", "update NAME", "delete NAME", readable from the test thread.
class Events {
 public:
  InformerHandlers handlers() {
    auto name = [](const json& o) { return o["metadata"]["name"].get<std::string>(); };
    return {[this, name](const json& o) { push("add " + name(o)); },
            [this, name](const json&, const json& o) { push("update " + name(o)); },
            [this, name](const json& o) { push("delete " + name(o)); }};
  }
  bool contains(const std::string& event) const {
    std::lock_guard lock(mu_);
    return std::find(events_.begin(), events_.end(), event) != events_.end();
  }
  std::vector<std::string> all() const {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  void push(std::string event) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(event));
  }
  mutable std::mutex mu_;
  std::vector<std::string> events_;
};

InformerOptions fast_options(const std::string& ns) {
  InformerOptions options;
  options.namespace_ = ns;
  options.backoff_initial = 20ms;
  options.backoff_max = 200ms;
  options.watch_timeout_seconds = 60;
  return options;
}

// What every test here sets up: its namespaces, `apps` writing as another client would, and an
// informer on its own transport (so the server's request log tells its requests apart) watching
// `watched` ("" = all namespaces) and reporting to `events`. The test starts the informer once it
// has arranged what must come first (objects to list, faults for the first requests).
struct Rig {
  Rig(itest::Cluster& cluster, std::initializer_list<const char*> namespaces,
      const std::string& watched)
      : apps(*cluster.transport, AppService::kType),
        own(itest::transport_for(cluster.server, cluster.server.admin_token())),
        client(*own, AppService::kType),
        informer(client, fast_options(watched), events.handlers()) {
    for (const char* ns : namespaces) make_namespace(*cluster.transport, ns);
  }
  // Starts the informer and waits for its first list to land in the cache.
  void start_synced() {
    informer.start();
    REQUIRE(wait_until([&] { return informer.has_synced(); }, 20s));
  }

  ResourceClient apps;
  std::unique_ptr<Transport> own;
  ResourceClient client;
  Events events;
  Informer informer;
};

TEST_CASE("the informer lists, then follows another client's creates, updates and deletes",
          "[kube][itest][informer]") {
  BERTH_KUBE_CLUSTER(cluster);
  Rig rig(cluster, {"follow", "elsewhere"}, "");
  REQUIRE(rig.apps.create(app("follow", "existing")).ok());
  REQUIRE(rig.apps.create(app("elsewhere", "other")).ok());
  rig.start_synced();
  CHECK(rig.informer.get("follow", "existing").has_value());
  CHECK(rig.informer.list("elsewhere").size() == 1);

  REQUIRE(rig.apps.create(app("follow", "new")).ok());
  REQUIRE(wait_until([&] { return rig.informer.get("follow", "new").has_value(); }, 20s));
  REQUIRE(rig.apps.merge_patch("follow", "new", {{"metadata", {{"labels", {{"v", "2"}}}}}}).ok());
  REQUIRE(wait_until([&] { return rig.events.contains("update new"); }, 20s));
  CHECK((*rig.informer.get("follow", "new"))["metadata"]["labels"]["v"] == "2");
  REQUIRE(rig.apps.remove("follow", "new").ok());
  REQUIRE(wait_until([&] { return rig.events.contains("delete new"); }, 20s));
  CHECK_FALSE(rig.informer.get("follow", "new").has_value());
  CHECK(rig.informer.list("follow").size() == 1);
  rig.informer.stop();
  CHECK(count_requests(cluster.server, "list") == 1);
}

TEST_CASE("a dropped watch is resumed from the last version without a relist or a missed event",
          "[kube][itest][informer]") {
  BERTH_KUBE_CLUSTER(cluster);
  Rig rig(cluster, {"drop"}, "drop");
  rig.start_synced();

  // Closes the open watch, or the next one if the informer has not opened it yet: either way
  // a watch ends under the informer, which must resume it.
  cluster.server.inject_fault(
      {{"verb", "watch"}, {"resource", "appservices"}, {"kind", "drop-watch"}, {"count", 1}});
  REQUIRE(rig.apps.create(app("drop", "during")).ok());
  REQUIRE(wait_until([&] { return rig.informer.get("drop", "during").has_value(); }, 20s));
  REQUIRE(rig.apps.create(app("drop", "after")).ok());
  REQUIRE(wait_until([&] { return rig.informer.get("drop", "after").has_value(); }, 20s));
  rig.informer.stop();
  CHECK(count_requests(cluster.server, "watch") >= 2);
  CHECK(count_requests(cluster.server, "list") == 1);
  CHECK(rig.events.all() == std::vector<std::string>{"add during", "add after"});
}

TEST_CASE("after compaction the informer relists and reports objects deleted while it was away",
          "[kube][itest][informer]") {
  BERTH_KUBE_CLUSTER(cluster);
  Rig rig(cluster, {"compact"}, "compact");
  REQUIRE(rig.apps.create(app("compact", "stays")).ok());
  REQUIRE(rig.apps.create(app("compact", "goes")).ok());
  rig.start_synced();

  // Keep the informer away: its watches fail until the faults are cleared.
  cluster.server.inject_fault({{"verb", "watch"},
                               {"resource", "appservices"},
                               {"kind", "status"},
                               {"code", 500},
                               {"count", 100000}});
  cluster.server.inject_fault(
      {{"verb", "watch"}, {"resource", "appservices"}, {"kind", "drop-watch"}, {"count", 1}});
  REQUIRE(wait_until(
      [&] {
        for (const auto& r : cluster.server.requests()) {
          if (r.value("verb", "") == "watch" && r.value("code", 0) == 500) return true;
        }
        return false;
      },
      20s));
  REQUIRE(rig.apps.remove("compact", "goes").ok());
  REQUIRE(rig.apps.create(app("compact", "arrives")).ok());
  cluster.server.compact();
  cluster.server.clear_faults();

  REQUIRE(wait_until([&] { return rig.events.contains("delete goes"); }, 20s));
  REQUIRE(wait_until([&] { return rig.events.contains("add arrives"); }, 20s));
  CHECK_FALSE(rig.informer.get("compact", "goes").has_value());
  CHECK(rig.informer.get("compact", "stays").has_value());
  rig.informer.stop();
  CHECK(count_requests(cluster.server, "list") == 2);
}

TEST_CASE("an in-stream 410 makes the informer relist", "[kube][itest][informer]") {
  BERTH_KUBE_CLUSTER(cluster);
  Rig rig(cluster, {"instream"}, "instream");
  cluster.server.inject_fault(
      {{"verb", "watch"}, {"resource", "appservices"}, {"kind", "gone-in-stream"}, {"count", 1}});
  rig.informer.start();
  REQUIRE(wait_until([&] { return count_requests(cluster.server, "list") >= 2; }, 20s));
  REQUIRE(rig.apps.create(app("instream", "later")).ok());
  REQUIRE(wait_until([&] { return rig.informer.get("instream", "later").has_value(); }, 20s));
  rig.informer.stop();
}

TEST_CASE("500 and 429 answers are retried with backoff until the list succeeds",
          "[kube][itest][informer]") {
  BERTH_KUBE_CLUSTER(cluster);
  Rig rig(cluster, {"retry"}, "retry");
  REQUIRE(rig.apps.create(app("retry", "web")).ok());
  cluster.server.inject_fault({{"verb", "list"},
                               {"resource", "appservices"},
                               {"kind", "status"},
                               {"code", 500},
                               {"count", 1}});
  cluster.server.inject_fault({{"verb", "list"},
                               {"resource", "appservices"},
                               {"kind", "status"},
                               {"code", 429},
                               {"count", 1}});
  rig.start_synced();
  CHECK(rig.informer.get("retry", "web").has_value());
  rig.informer.stop();
  std::vector<int> codes;
  for (const auto& r : cluster.server.requests()) {
    if (r.value("verb", "") == "list" && r.value("resource", "") == "appservices") {
      codes.push_back(r.value("code", 0));
    }
  }
  std::sort(codes.begin(), codes.end());
  CHECK(codes == std::vector<int>{200, 429, 500});
}

TEST_CASE("bookmarks advance the informer's version while its own objects do not change",
          "[kube][itest][informer]") {
  BERTH_KUBE_CLUSTER(cluster);
  Rig rig(cluster, {"quiet", "busy"}, "quiet");
  rig.start_synced();
  const std::string synced_at = rig.informer.resource_version();
  // Changes elsewhere move the server's version; only a bookmark can tell this informer.
  auto elsewhere = rig.apps.create(app("busy", "noise"));
  REQUIRE(elsewhere.ok());
  const std::string latest = (*elsewhere)["metadata"]["resourceVersion"];
  REQUIRE(wait_until([&] { return rig.informer.resource_version() != synced_at; }, 90s));
  CHECK(std::stoll(rig.informer.resource_version()) >= std::stoll(latest));
  CHECK(rig.informer.list().empty());
  rig.informer.stop();
}

}  // namespace
}  // namespace berth::kube
