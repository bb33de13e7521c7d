// kubectl-berth as users run it: the real kubectl (1.32) finds the plugin on PATH and runs it
// against the test API server, where the test has created an AppService and its revisions as
// the controller does (kube/revision_format.h). The tests check what the plugin prints and what
// the AppService's spec is afterwards.
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "kube/kube_itest.h"
#include "kube/resource_client.h"
#include "kube/revision_format.h"
#include "kube/types.h"
#include "support/skip.h"
#include "support/testenv.h"
#include "support/wait.h"

namespace berth::kube {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kNamespace = "shop";
constexpr const char* kDigest1 =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
constexpr const char* kDigest2 =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";

struct Run {
  int code = -1;
  std::string output;
};

// `kubectl berth ARGS...` with the plugin's directory first on PATH (kubectl's plugin discovery
// finds kubectl-berth there), a throwaway HOME and the test server's kubeconfig in KUBECONFIG
// unless `env` says otherwise.
Run kubectl_berth(const testenv::KubeApiServer& server, std::vector<std::string> args,
                  std::vector<std::string> env = {}) {
  static const std::string home = testenv::make_temp_dir("plugin-home");
  const std::string plugin_dir =
      std::filesystem::path(testenv::berth_binary("kubectl-berth")).parent_path().string();
  const char* path = std::getenv("PATH");
  std::vector<std::string> full_env = {"PATH=" + plugin_dir + ":" + (path ? path : "/usr/bin:/bin"),
                                       "HOME=" + home, "KUBECONFIG=" + server.kubeconfig_file()};
  full_env.insert(full_env.end(), env.begin(), env.end());
  std::vector<std::string> argv = {"kubectl", "berth"};
  argv.insert(argv.end(), args.begin(), args.end());
  Run run;
  run.code = testenv::run_command(argv, &run.output, full_env, 60);
  return run;
}

#define BERTH_REQUIRE_KUBECTL()                                           \
  if (!testenv::on_path("kubectl")) {                                     \
    testing::skip_test(                                                   \
        "kubectl is not installed (it comes with the machine image; see " \
        "docs/kubernetes.md)");                                           \
    return;                                                               \
  }

// The app "web" in namespace shop, and its history as the controller would record it:
// revision 1 (v1, no env, no custom domain) and revision 2 (v2 with env and a domain), current.
struct Story {
  itest::Cluster& cluster;
  json rev1_spec;
  json rev2_spec;

  explicit Story(itest::Cluster& c) : cluster(c) {
    itest::make_namespace(*c.transport, kNamespace);
    json app = itest::app(kNamespace, "web");
    app["spec"]["imageRef"] = "registry.example:5000/shop/web:v1";
    auto created = apps().create(app);
    REQUIRE(created.ok());
    rev1_spec = created.value()["spec"];  // as the user wrote it, after the server's defaults
    record(1, created.value(), kDigest1, RevisionState::kSuperseded);

    auto changed = apps().merge_patch(kNamespace, "web",
                                      {{"spec",
                                        {{"imageRef", "registry.example:5000/shop/web:v2"},
                                         {"env", {{"LOG_LEVEL", "debug"}}},
                                         {"customDomains", {"web.example.com"}}}}});
    REQUIRE(changed.ok());
    rev2_spec = changed.value()["spec"];
    record(2, changed.value(), kDigest2, RevisionState::kSucceeded);
    set_current(2);
  }

  ResourceClient apps() { return ResourceClient(*cluster.transport, AppService::kType); }

  void record(std::int64_t number, const json& app, const std::string& digest, RevisionState state,
              const json& spec_override = json()) {
    RevisionRecord r;
    r.app_name = app["metadata"]["name"];
    r.namespace_ = app["metadata"]["namespace"];
    r.app_uid = app["metadata"]["uid"];
    r.number = number;
    r.spec = spec_override.is_null() ? app["spec"] : spec_override;
    r.image_digest = digest;
    r.registry_host = "registry.example:5000";
    r.state = state;
    auto object = build_revision(r);
    REQUIRE(object.ok());
    auto created = ResourceClient(*cluster.transport, ControllerRevision::kType).create(*object);
    INFO((created.ok() ? std::string() : created.error().message));
    REQUIRE(created.ok());
  }

  void set_current(std::int64_t number) {
    PatchOptions status;
    status.subresource = "status";
    auto patched =
        apps().merge_patch(kNamespace, "web", {{"status", {{"currentRevision", number}}}}, status);
    REQUIRE(patched.ok());
  }

  json spec() {
    auto app = apps().get(kNamespace, "web");
    REQUIRE(app.ok());
    return app.value()["spec"];
  }
};

TEST_CASE("kubectl berth history lists an app's revisions oldest first and marks the current one",
          "[plugin]") {
  BERTH_REQUIRE_KUBECTL();
  BERTH_KUBE_CLUSTER(cluster);
  Story story(cluster);

  Run run = kubectl_berth(cluster.server, {"history", "web", "-n", kNamespace});
  INFO(run.output);
  REQUIRE(run.code == 0);
  const auto header = run.output.find("\nREVISION ");
  const auto first = run.output.find("\n1  ");
  const auto second = run.output.find("\n2 (current)   registry.example:5000/shop/web:v2");
  CHECK(run.output.rfind("appservice.berth.dev/web\n", 0) == 0);
  REQUIRE(header != std::string::npos);
  const auto line_end = run.output.find('\n', header + 1);
  const std::string header_line = run.output.substr(header + 1, line_end - header - 1);
  CHECK(header_line.find(" IMAGE ") < header_line.find(" DIGEST "));
  CHECK(header_line.find(" DIGEST ") < header_line.find(" STATE "));
  CHECK(header_line.find(" STATE ") < header_line.find(" AGE"));
  CHECK(header_line.find(" AGE") + 4 == header_line.size());
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  CHECK(header < first);
  CHECK(first < second);
  CHECK(run.output.find("registry.example:5000/shop/web:v1   sha256:111111111111   superseded") !=
        std::string::npos);
  CHECK(run.output.find("sha256:222222222222   succeeded") != std::string::npos);
  CHECK(run.output.find("1 (current)") == std::string::npos);
}

TEST_CASE("kubectl berth history of an app that does not exist says so as kubectl does",
          "[plugin]") {
  BERTH_REQUIRE_KUBECTL();
  BERTH_KUBE_CLUSTER(cluster);
  itest::make_namespace(*cluster.transport, kNamespace);

  Run run = kubectl_berth(cluster.server, {"history", "nope", "-n", kNamespace});
  INFO(run.output);
  CHECK(run.code == 1);
  CHECK(run.output.find("Error from server (NotFound): ") != std::string::npos);
  CHECK(run.output.find("\"nope\" not found") != std::string::npos);
}

TEST_CASE(
    "kubectl berth rollback copies the previous revision's spec, removing the fields it "
    "did not have",
    "[plugin]") {
  BERTH_REQUIRE_KUBECTL();
  BERTH_KUBE_CLUSTER(cluster);
  Story story(cluster);
  REQUIRE(story.spec().contains("env"));

  Run run = kubectl_berth(cluster.server, {"rollback", "web", "-n", kNamespace});
  INFO(run.output);
  REQUIRE(run.code == 0);
  CHECK(run.output == "appservice.berth.dev/web rolled back to revision 1\n");
  const json spec = story.spec();
  CHECK(spec == story.rev1_spec);
  CHECK_FALSE(spec.contains("env"));
  CHECK_FALSE(spec.contains("customDomains"));
}

TEST_CASE(
    "kubectl berth rollback --to-revision restores that revision, and refuses the one the "
    "spec already matches",
    "[plugin]") {
  BERTH_REQUIRE_KUBECTL();
  BERTH_KUBE_CLUSTER(cluster);
  Story story(cluster);

  Run same = kubectl_berth(cluster.server,
                           {"rollback", "appservice/web", "--to-revision=2", "-n", kNamespace});
  INFO(same.output);
  CHECK(same.code == 1);
  CHECK(same.output ==
        "error: appservice.berth.dev/web is already at revision 2 (its spec "
        "matches that revision)\n");
  CHECK(story.spec() == story.rev2_spec);

  // After a move back to 1, going forward again by number works too.
  REQUIRE(kubectl_berth(cluster.server, {"rollback", "web", "--to-revision", "1", "-n", kNamespace})
              .code == 0);
  CHECK(story.spec() == story.rev1_spec);
  Run forward =
      kubectl_berth(cluster.server, {"rollback", "web", "--to-revision", "2", "-n", kNamespace});
  INFO(forward.output);
  CHECK(forward.code == 0);
  CHECK(forward.output == "appservice.berth.dev/web rolled back to revision 2\n");
  CHECK(story.spec() == story.rev2_spec);
}

TEST_CASE(
    "kubectl berth rollback refuses an unknown revision and one with another containerPort, "
    "leaving the spec alone",
    "[plugin]") {
  BERTH_REQUIRE_KUBECTL();
  BERTH_KUBE_CLUSTER(cluster);
  Story story(cluster);
  // A revision of an earlier incarnation that listened elsewhere (the port is immutable).
  json other_port = story.rev1_spec;
  other_port["containerPort"] = 9090;
  auto app = story.apps().get(kNamespace, "web");
  REQUIRE(app.ok());
  story.record(3, app.value(), kDigest1, RevisionState::kFailed, other_port);

  Run unknown =
      kubectl_berth(cluster.server, {"rollback", "web", "--to-revision=7", "-n", kNamespace});
  INFO(unknown.output);
  CHECK(unknown.code == 1);
  CHECK(unknown.output ==
        "error: unable to find revision 7 in the history of appservice.berth.dev/web\n");

  Run port =
      kubectl_berth(cluster.server, {"rollback", "web", "--to-revision=3", "-n", kNamespace});
  INFO(port.output);
  CHECK(port.code == 1);
  CHECK(port.output.find("error: revision 3 has containerPort 9090 but appservice.berth.dev/web "
                         "has 8080; containerPort is immutable") == 0);
  CHECK(story.spec() == story.rev2_spec);
}

TEST_CASE("kubectl berth says so when there is no history or nothing before the current revision",
          "[plugin]") {
  BERTH_REQUIRE_KUBECTL();
  BERTH_KUBE_CLUSTER(cluster);
  itest::make_namespace(*cluster.transport, kNamespace);
  ResourceClient apps(*cluster.transport, AppService::kType);
  auto created = apps.create(itest::app(kNamespace, "solo"));
  REQUIRE(created.ok());

  Run empty = kubectl_berth(cluster.server, {"history", "solo", "-n", kNamespace});
  INFO(empty.output);
  CHECK(empty.code == 0);
  CHECK(empty.output == "appservice.berth.dev/solo\nNo revisions recorded yet.\n");

  Run no_current = kubectl_berth(cluster.server, {"rollback", "solo", "-n", kNamespace});
  INFO(no_current.output);
  CHECK(no_current.code == 1);
  CHECK(no_current.output.find("error: appservice.berth.dev/solo has no current revision yet") ==
        0);

  Story story(cluster);  // "web", currently at revision 2
  story.set_current(1);
  Run first = kubectl_berth(cluster.server, {"rollback", "web", "-n", kNamespace});
  INFO(first.output);
  CHECK(first.code == 1);
  CHECK(first.output ==
        "error: no revision before revision 1 in the history of appservice.berth.dev/web\n");
  CHECK(story.spec() == story.rev2_spec);
}

TEST_CASE("kubectl berth rollback does not overwrite a change made after it read the app",
          "[plugin]") {
  BERTH_REQUIRE_KUBECTL();
  BERTH_KUBE_CLUSTER(cluster);
  Story story(cluster);

  // The plugin reads the app, then lists its revisions; that list is held long enough for
  // someone else (an Argo CD sync) to change the spec in between.
  const int gets_before = itest::count_requests(cluster.server, "get", "appservices");
  cluster.server.inject_fault(
      {{"verb", "list"}, {"resource", "controllerrevisions"}, {"kind", "stall"}, {"seconds", 5}});
  auto rollback = std::async(std::launch::async, [&] {
    return kubectl_berth(cluster.server, {"rollback", "web", "-n", kNamespace});
  });
  REQUIRE(testing::wait_until(
      [&] { return itest::count_requests(cluster.server, "get", "appservices") > gets_before; },
      30s));
  auto synced =
      story.apps().merge_patch(kNamespace, "web", {{"spec", {{"env", {{"LOG_LEVEL", "warn"}}}}}});
  REQUIRE(synced.ok());
  Run run = rollback.get();
  INFO(run.output);
  CHECK(run.code == 1);
  CHECK(run.output.find("Error from server (Conflict): appservice.berth.dev/web was changed "
                        "while rolling back") == 0);
  CHECK(run.output.find("try again") != std::string::npos);
  CHECK(story.spec()["env"] == json{{"LOG_LEVEL", "warn"}});
  CHECK(story.spec()["imageRef"] == "registry.example:5000/shop/web:v2");
}

TEST_CASE("kubectl berth reads --kubeconfig and --context, and the context's namespace without -n",
          "[plugin]") {
  BERTH_REQUIRE_KUBECTL();
  BERTH_KUBE_CLUSTER(cluster);
  Story story(cluster);

  // A second kubeconfig whose current context is broken, and whose "shop" context points at
  // the test server with namespace shop.
  const std::string path = cluster.server.dir() + "/kubeconfig-plugin";
  {
    std::ofstream out(path);
    out << "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"
        << "clusters:\n- name: test\n  cluster:\n    server: " << cluster.server.server()
        << "\n    certificate-authority: " << cluster.server.ca_file() << "\n"
        << "users:\n- name: admin\n  user:\n    token: " << cluster.server.admin_token() << "\n"
        << "contexts:\n- name: shop\n  context:\n    cluster: test\n    user: admin\n"
        << "    namespace: shop\n";
  }
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  Run run =
      kubectl_berth(cluster.server, {"history", "web", "--kubeconfig", path, "--context", "shop"},
                    {"KUBECONFIG=/nonexistent/kubeconfig"});
  INFO(run.output);
  CHECK(run.code == 0);
  CHECK(run.output.find("2 (current)") != std::string::npos);

  // Without --context the broken current context is used: the plugin says so and fails.
  Run broken = kubectl_berth(cluster.server, {"history", "web", "--kubeconfig", path});
  INFO(broken.output);
  CHECK(broken.code == 1);
  CHECK(broken.output.rfind("error: ", 0) == 0);

  // KUBECONFIG alone (the test server's, context namespace "default"): -n picks the namespace.
  CHECK(kubectl_berth(cluster.server, {"history", "web"}).code == 1);
  CHECK(kubectl_berth(cluster.server, {"history", "web", "--namespace", kNamespace}).code == 0);
}

TEST_CASE("kubectl berth version and help read like kubectl's", "[plugin]") {
  BERTH_REQUIRE_KUBECTL();
  BERTH_KUBE_CLUSTER(cluster);

  Run version = kubectl_berth(cluster.server, {"version"});
  INFO(version.output);
  CHECK(version.code == 0);
  CHECK(version.output.rfind("kubectl-berth version: v", 0) == 0);

  Run help = kubectl_berth(cluster.server, {"rollback", "--help"});
  INFO(help.output);
  CHECK(help.code == 0);
  CHECK(help.output.rfind("Roll an AppService back to an earlier revision.\n", 0) == 0);
  CHECK(help.output.find("Examples:\n") != std::string::npos);
  CHECK(help.output.find("    --to-revision=0:\n") != std::string::npos);
  CHECK(help.output.find("Usage:\n  kubectl berth rollback NAME") != std::string::npos);

  Run root = kubectl_berth(cluster.server, {"--help"});
  INFO(root.output);
  CHECK(root.code == 0);
  CHECK(root.output.find("Available Commands:\n  history") != std::string::npos);

  Run bad = kubectl_berth(cluster.server, {"rollback", "web", "--to-revision=-1"});
  INFO(bad.output);
  CHECK(bad.code == 1);
  CHECK(bad.output.find("See 'kubectl berth --help' for usage.") != std::string::npos);
}

}  // namespace
}  // namespace berth::kube
