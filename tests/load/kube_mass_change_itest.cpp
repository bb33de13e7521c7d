// Load: many AppServices changed at once in Kubernetes mode (issue 12, "Load").
//
// A real `berth-controller serve --kubernetes` on the test API server with simulated agents
// speaking the real agent link (bench/kube_sim.h, no podman). N apps (BERTH_LOAD_KUBE_APPS,
// default below) are created and become Ready at revision 1; then every one's spec.imageRef is
// changed at once. Every app must converge Running and Ready on revision 2 with the new
// generation observed, and have exactly two ControllerRevisions: no change lost, none applied
// twice. The time from the first change to the last Ready is printed (docs/testing.md).
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "e2e/stack.h"
#include "kube/resource_client.h"
#include "kube/types.h"
#include "kube_sim.h"
#include "support/kube_testenv.h"
#include "support/skip.h"
#include "support/testenv.h"

namespace berth {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The test API server (one Python process) serves about 65 requests/s here and berth makes ~16
// per app to Ready: 1,000 apps take minutes, so CI runs 100 and BERTH_LOAD_KUBE_APPS=1000 runs
// the size (docs/testing.md).
constexpr int kDefaultApps = 100;

int load_apps() {
  const char* v = std::getenv("BERTH_LOAD_KUBE_APPS");
  if (v == nullptr || *v == '\0') return kDefaultApps;
  return std::max(1, std::atoi(v));
}

}  // namespace

TEST_CASE(
    "load: AppServices changed at once in Kubernetes mode all converge Ready on the new "
    "revision",
    "[load][kube]") {
  auto started = testenv::KubeApiServer::start();
  if (!started) {
    testing::skip_test("test API server: " + started.error().message);
    return;
  }
  testenv::KubeApiServer& server = *started;
  const int n = load_apps();
  // Bounded, and generous: ~0.25 s of the test server per app here, under load.
  const auto limit = std::chrono::seconds(120 + n * 3 / 5);
  const std::string dir = testenv::make_temp_dir("berth-load-kube");

  bench::sim::KubeSimOptions so;
  so.server = server.server();
  so.ca_file = server.ca_file();
  so.kubeconfig = server.kubeconfig_file();
  so.client_cert_file = server.client_cert_file();
  so.client_key_file = server.client_key_file();
  so.controller = e2e::bin_dir() + "/berth-controller";
  so.dir = dir;
  so.agents = 10;
  so.workers = 4;
  // The controller's defaults (20 QPS, burst 40) would make this a test of the rate limiter.
  bench::sim::KubeSim sim(so);
  const Status st = sim.start();
  INFO((st.ok() ? std::string() : st.error().message));
  REQUIRE(st.ok());

  const std::string ns = "load";
  REQUIRE(sim.create_apps(ns, 0, "v1").ok());
  bench::sim::AppWatch watch(sim.client(), ns);
  const auto t_create = std::chrono::steady_clock::now();
  REQUIRE(sim.create_apps(ns, n, "v1").ok());
  {
    INFO("ready at revision 1: " << watch.ready_at(1) << " of " << n);
    REQUIRE(watch.wait_ready(n, 1, limit));
  }
  const double created_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_create).count();

  // Every app's image changes at once.
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(sim.patch_apps(ns, n, {{"spec", {{"imageRef", sim.image("v2")}}}}).ok());
  const double patched_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    INFO("ready at revision 2: " << watch.ready_at(2) << " of " << n);
    REQUIRE(watch.wait_ready(n, 2, limit));
  }
  const double converged_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "load/kube mass change: %d AppServices Ready at revision 1 in %.1f s; all changed in "
      "%.1f s; all Ready at revision 2 %.1f s after the first change (%d deploy tasks)\n",
      n, created_s, patched_s, converged_s, static_cast<int>(sim.deploys()));

  // No change lost or applied twice: two ControllerRevisions per app, every app on its second,
  // each deployed at least twice (a resent task reuses its id).
  kube::ResourceClient revisions(sim.client(), kube::ControllerRevision::kType);
  auto listed = revisions.list_all(ns);
  REQUIRE(listed.ok());
  std::map<std::string, int> per_app;
  for (const auto& item : listed->items) {
    const json labels = item["metadata"].value("labels", json::object());
    ++per_app[labels.value("berth.dev/appservice", "")];
  }
  CHECK(per_app.size() == static_cast<std::size_t>(n));
  int wrong = 0;
  for (const auto& [app, count] : per_app)
    if (count != 2) ++wrong;
  CHECK(wrong == 0);
  CHECK(watch.ready_at(2) == n);
  CHECK(sim.deploys() >= static_cast<std::uint64_t>(2 * n));

  sim.stop();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace berth
