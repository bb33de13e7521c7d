#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "agent/agent.h"
#include "agent/auth_file.h"
#include "agent/deployer.h"
#include "agent/podman_driver.h"
#include "common/log.h"
#include "deployer_rig.h"
#include "fakes.h"

namespace fs = std::filesystem;
using namespace berth;
using namespace berth::agent;
using namespace berth::agent::testing;

TEST_CASE(
    "A first deploy pulls by digest, starts green on a fresh port, probes it, then opens the "
    "stable port",
    "[deployer]") {
  Rig rig;
  auto r = rig.deploy(rig.task("t1", 1));
  REQUIRE(r.ok);
  CHECK(r.error.empty());
  const std::string green = "berth-svc1-r1-s0";
  CHECK(rig.driver.calls ==
        std::vector<std::string>{"pull 127.0.0.1:5000/app@sha256:" + std::string(64, '1'),
                                 "run " + green, "probe 30000", "switch 30000"});
  CHECK(r.stable_port == 40000);
  CHECK(rig.proxies.routes["svc1"] == std::make_pair(40000, 30000));
  const auto& spec = rig.driver.specs[green];
  CHECK(spec.host_port == 30000);
  CHECK(spec.container_port == 8080);
  CHECK(spec.labels.at("berth.service") == "svc1");
  CHECK(spec.labels.at("berth.revision") == "rev1");
  CHECK(spec.labels.at("berth.task") == "t1");
  CHECK(steps_of(r) ==
        std::vector<std::string>{"pull:ok", "start:ok", "probe:ok", "switch:ok", "cleanup:ok"});
  CHECK(rig.progress == r.logs);
  for (const auto& e : r.logs) CHECK(e.started_at > 0);
  auto app = rig.state->app("svc1");
  REQUIRE(app.ok());
  REQUIRE(app->has_value());
  CHECK((*app)->revision_id == "rev1");
  CHECK((*app)->container == green);
  CHECK((*app)->pending_container.empty());
  CHECK((*app)->stable_port == 40000);
}

TEST_CASE("A second deploy switches the stable port to green before stopping and removing blue",
          "[deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.driver.calls.clear();
  auto r = rig.deploy(rig.task("t2", 2));
  REQUIRE(r.ok);
  const auto& c = rig.driver.calls;
  const std::string blue = "berth-svc1-r1-s0", green = "berth-svc1-r2-s1";
  CHECK(index_of(c, "run " + green) < index_of(c, "probe 30001"));
  CHECK(index_of(c, "probe 30001") < index_of(c, "switch 30001"));
  CHECK(index_of(c, "switch 30001") < index_of(c, "stop " + blue));
  CHECK(index_of(c, "stop " + blue) < index_of(c, "rm " + blue));
  CHECK(r.stable_port == 40000);  // the stable port does not move
  CHECK(rig.proxies.routes["svc1"] == std::make_pair(40000, 30001));
  CHECK(rig.driver.containers.count(blue) == 0);
  CHECK(rig.driver.containers.count(green) == 1);
  auto obs = rig.deployer->observe();
  REQUIRE(obs.size() == 1);
  CHECK(obs[0].revision_id == "rev2");
  CHECK(obs[0].container == green);
  CHECK(obs[0].stable_port == 40000);
  CHECK(obs[0].healthy);
  CHECK(obs[0].last_task_id == "t2");
  auto app = rig.state->app("svc1");
  CHECK((*app)->previous_revision == "rev1");
}

TEST_CASE("A failed pull starts nothing, keeps blue serving and reports the registry's reason",
          "[deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.driver.calls.clear();
  rig.driver.fail_pull = "unauthorized: authentication required.";
  auto r = rig.deploy(rig.task("t2", 2));
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.error, Catch::Contains("unauthorized"));
  CHECK(rig.driver.calls.size() == 1);  // only the pull
  CHECK(rig.proxies.routes["svc1"] == std::make_pair(40000, 30000));
  CHECK(rig.driver.containers.count("berth-svc1-r1-s0") == 1);
  CHECK(steps_of(r) == std::vector<std::string>{"pull:failed"});
  CHECK((*rig.state->app("svc1"))->revision_id == "rev1");
  CHECK(rig.tmp_is_empty());
}

TEST_CASE("A green that never becomes healthy is removed and blue keeps serving", "[deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.driver.calls.clear();
  rig.prober.healthy = false;
  auto r = rig.deploy(rig.task("t2", 2));
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.error, Catch::Contains("did not become healthy") && Catch::Contains("404"));
  const std::string blue = "berth-svc1-r1-s0", green = "berth-svc1-r2-s1";
  CHECK(std::count(rig.driver.calls.begin(), rig.driver.calls.end(), "rm " + green) == 1);
  CHECK(std::count(rig.driver.calls.begin(), rig.driver.calls.end(), "stop " + blue) == 0);
  CHECK(rig.driver.containers.count(green) == 0);
  CHECK(rig.driver.containers.at(blue).running());
  CHECK(rig.proxies.routes["svc1"] == std::make_pair(40000, 30000));
  CHECK(steps_of(r).back() == "probe:failed");
  CHECK(r.logs.back().detail == "log of " + green);
  auto app = rig.state->app("svc1");
  CHECK((*app)->revision_id == "rev1");
  CHECK((*app)->container == blue);
  CHECK((*app)->pending_container.empty());
}

TEST_CASE("A green that fails to start is removed and blue keeps serving", "[deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.driver.fail_run = "port is already allocated.";
  auto r = rig.deploy(rig.task("t2", 2));
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.error, Catch::Contains("already allocated"));
  CHECK(rig.driver.containers.count("berth-svc1-r2-s1") == 0);
  CHECK(rig.driver.containers.count("berth-svc1-r1-s0") == 1);
  CHECK(rig.proxies.routes["svc1"].second == 30000);
}

TEST_CASE("A stable port that cannot be opened fails the first deploy and removes green",
          "[deployer]") {
  Rig rig;
  rig.proxies.fail = true;
  auto r = rig.deploy(rig.task("t1", 1));
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.error, Catch::Contains("Could not listen"));
  CHECK(rig.driver.containers.empty());
  CHECK((*rig.state->app("svc1"))->container.empty());
}

TEST_CASE("A repeated task id returns the recorded result without redoing the task", "[deployer]") {
  Rig rig;
  auto first = rig.deploy(rig.task("t1", 1));
  REQUIRE(first.ok);
  const auto calls = rig.driver.calls;
  auto again = rig.deploy(rig.task("t1", 1));
  CHECK(rig.driver.calls == calls);
  CHECK(again.ok);
  CHECK(again.stable_port == first.stable_port);
  CHECK(again.logs == first.logs);

  rig.driver.fail_pull = "unauthorized.";
  auto failed = rig.deploy(rig.task("t2", 2));
  REQUIRE_FALSE(failed.ok);
  rig.driver.fail_pull.clear();
  const auto calls2 = rig.driver.calls;
  auto failed_again = rig.deploy(rig.task("t2", 2));
  CHECK_FALSE(failed_again.ok);
  CHECK(failed_again.error == failed.error);
  CHECK(rig.driver.calls == calls2);
}

TEST_CASE("The auth file exists only during the pull, 0600 in a 0700 directory, on every path",
          "[deployer][auth]") {
  auto run = [](const std::string& which) {
    Rig rig;
    if (which == "pull") rig.driver.fail_pull = "unauthorized.";
    if (which == "run") rig.driver.fail_run = "boom.";
    if (which == "probe") rig.prober.healthy = false;
    auto t = rig.task("t1", 1);
    t.auth->auth_keys = {"docker.io", "https://index.docker.io/v1/"};
    auto r = rig.deploy(t);
    CHECK(r.ok == (which == "none"));
    REQUIRE_FALSE(rig.driver.authfile_seen.empty());
    CHECK(rig.driver.authfile_mode == 0600);
    CHECK(rig.driver.authfile_dir_mode == 0700);
    const std::string b64 = std::string(base64_secret(std::string("berth:") + kCanary).reveal());
    CHECK(rig.driver.authfile_content == "{\"auths\":{\"docker.io\":{\"auth\":\"" + b64 +
                                             "\"},\"https://index.docker.io/v1/\":{\"auth\":\"" +
                                             b64 + "\"}}}\n");
    CHECK_FALSE(fs::exists(rig.driver.authfile_seen));
    CHECK_FALSE(fs::exists(fs::path(rig.driver.authfile_seen).parent_path()));
    CHECK(rig.tmp_is_empty());
  };
  SECTION("success") { run("none"); }
  SECTION("pull fails") { run("pull"); }
  SECTION("start fails") { run("run"); }
  SECTION("probe fails") { run("probe"); }
}

TEST_CASE("A public image is pulled without an auth file", "[deployer][auth]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1, /*with_auth=*/false)).ok);
  CHECK(rig.driver.authfile_seen.empty());
}

TEST_CASE("The password appears in no log line, progress entry or recorded result",
          "[deployer][auth]") {
  std::vector<std::string> lines;
  auto previous = log::set_sink([&](std::string_view l) { lines.emplace_back(l); });
  auto prev_level = log::level();
  log::set_level(log::Level::kDebug);
  {
    Rig rig;
    rig.driver.fail_pull = "unauthorized: authentication required.";
    auto r = rig.deploy(rig.task("t1", 1));
    rig.driver.fail_pull.clear();
    auto ok = rig.deploy(rig.task("t2", 1));
    for (const auto& res : {r, ok}) {
      CHECK(res.error.find(kCanary) == std::string::npos);
      for (const auto& e : res.logs) {
        CHECK(e.message.find(kCanary) == std::string::npos);
        CHECK(e.detail.find(kCanary) == std::string::npos);
      }
    }
    for (const auto& e : rig.progress) CHECK(e.message.find(kCanary) == std::string::npos);
  }
  log::set_sink(previous);
  log::set_level(prev_level);
  REQUIRE_FALSE(lines.empty());
  const std::string b64 = std::string(base64_secret(std::string("berth:") + kCanary).reveal());
  for (const auto& l : lines) {
    CHECK(l.find(kCanary) == std::string::npos);
    CHECK(l.find(b64) == std::string::npos);
  }
}

TEST_CASE("The container environment goes through a private env file that is gone after the start",
          "[deployer]") {
  Rig rig;
  auto t = rig.task("t1", 1);
  t.env = {{"GREETING", "hello world"}, {"MODE", "a=b"}};
  REQUIRE(rig.deploy(t).ok);
  CHECK(rig.driver.env_file_content == "GREETING=hello world\nMODE=a=b\n");
  const auto& spec = rig.driver.specs["berth-svc1-r1-s0"];
  CHECK_FALSE(spec.env_file.empty());
  CHECK_FALSE(fs::exists(spec.env_file));
  CHECK(rig.tmp_is_empty());
}

TEST_CASE("An env value with a newline fails the deploy before anything starts", "[deployer]") {
  Rig rig;
  auto t = rig.task("t1", 1);
  t.env = {{"BAD", "two\nlines"}};
  auto r = rig.deploy(t);
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.error, Catch::Contains("BAD"));
  CHECK(rig.driver.containers.empty());
}

TEST_CASE("Restart restarts the serving container and probes its port", "[deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  rig.driver.calls.clear();
  auto r = rig.deployer->restart({"t9", "svc1"}, nullptr);
  REQUIRE(r.ok);
  CHECK(rig.driver.calls == std::vector<std::string>{"restart berth-svc1-r1-s0", "probe 30000"});
  CHECK(r.stable_port == 40000);
  CHECK(r.revision_id == "rev1");
  auto missing = rig.deployer->restart({"t10", "nope"}, nullptr);
  CHECK_FALSE(missing.ok);
  CHECK_THAT(missing.error, Catch::Contains("no running container"));
}

TEST_CASE(
    "Remove stops and removes the app's containers, closes the stable port and forgets the app",
    "[deployer]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  auto r = rig.deployer->remove({"t5", "svc1"}, nullptr);
  REQUIRE(r.ok);
  CHECK(rig.driver.containers.empty());
  CHECK(rig.proxies.routes.empty());
  CHECK_FALSE(rig.state->app("svc1")->has_value());
  CHECK(rig.deployer->observe().empty());
  // Removing an app the agent does not know is a success (delivery is at-least-once).
  CHECK(rig.deployer->remove({"t6", "svc1"}, nullptr).ok);
}

TEST_CASE(
    "Reconcile after a crash mid-deploy removes the green and reopens the stable port on blue",
    "[deployer][reconcile]") {
  Rig rig;
  REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
  // A crash after green started: green exists and is recorded as pending; the proxy died.
  auto app = **rig.state->app("svc1");
  app.pending_container = "berth-svc1-r2-zz";
  REQUIRE(rig.state->put_app(app).ok());
  rig.driver.containers["berth-svc1-r2-zz"] =
      ContainerInfo{"id", "berth-svc1-r2-zz", "img", "running", {{"berth.service", "svc1"}}};
  rig.driver.containers["berth-svc1-r1-s0"].state = "exited";
  rig.proxies.routes.clear();
  rig.driver.calls.clear();

  // ...and an auth file from a pull that never finished.
  fs::create_directories(fs::path(rig.dir) / "tmp" / "auth-left");
  { std::ofstream(fs::path(rig.dir) / "tmp" / "auth-left" / "auth.json") << "{}"; }

  REQUIRE(rig.deployer->reconcile().ok());
  CHECK(rig.tmp_is_empty());
  CHECK(rig.driver.containers.count("berth-svc1-r2-zz") == 0);
  CHECK(rig.driver.containers.at("berth-svc1-r1-s0").running());
  CHECK(rig.proxies.routes["svc1"] == std::make_pair(40000, 30000));
  CHECK((*rig.state->app("svc1"))->pending_container.empty());
}

TEST_CASE("The image to pull is parsed by the core and pinned to the task's digest", "[deployer]") {
  const std::string d1 = "sha256:" + std::string(64, 'a');
  const std::string d0 = "sha256:" + std::string(64, '0');
  agentlink::DeployTask t;
  t.image_ref = "ghcr.io/acme/app:v1";
  CHECK(*pull_image(t) == "ghcr.io/acme/app:v1");
  t.image_digest = d1;
  CHECK(*pull_image(t) == "ghcr.io/acme/app@" + d1);
  t.pull_ref = "127.0.0.1:5000/app:v1@" + d0;
  CHECK(*pull_image(t) == "127.0.0.1:5000/app@" + d1);
  t.pull_ref = "127.0.0.1:5000/app";
  CHECK(*pull_image(t) == "127.0.0.1:5000/app@" + d1);
  t.pull_ref = "nginx";
  CHECK(*pull_image(t) == "docker.io/library/nginx@" + d1);
  t.pull_ref = "Bad Image";
  CHECK(pull_image(t).error().code == ErrorCode::kValidation);
}

TEST_CASE("The registry CA is chosen by the host the core's parser finds", "[deployer]") {
  Rig rig;
  const std::string ca = rig.dir + "/ca.pem";
  { std::ofstream(ca) << "PEM"; }
  DeployerOptions o;
  o.data_dir = rig.dir;
  o.registry_ca = {{"localhost:5000", ca}};
  DeployerDeps d{&rig.driver, &rig.prober, &rig.proxies, rig.state.get()};
  d.allocate_port = []() -> Result<int> { return 30000; };
  Deployer deployer(o, d);
  auto t = rig.task("t1", 1, false);
  t.image_ref = t.pull_ref = "localhost:5000/team/app:v1";
  REQUIRE(deployer.deploy(t, nullptr).ok);
  CHECK(fs::exists(rig.dir + "/certs/localhost_5000/ca.crt"));
}

TEST_CASE("A podman failure becomes one sentence from its last stderr line", "[podman-driver]") {
  CHECK(podman_reason("Trying to pull...\nError: initializing source docker://x: unauthorized: "
                      "authentication required\n",
                      "podman pull failed") ==
        "initializing source docker://x: unauthorized: authentication required.");
  CHECK(podman_reason("", "podman pull failed") == "podman pull failed.");
}

TEST_CASE("base64 of user:pass matches the standard alphabet and padding", "[auth]") {
  CHECK(std::string(base64_secret("berth:pw").reveal()) == "YmVydGg6cHc=");
  CHECK(std::string(base64_secret("ab").reveal()) == "YWI=");
  CHECK(std::string(base64_secret("abc").reveal()) == "YWJj");
  CHECK(std::string(base64_secret("").reveal()).empty());
}

TEST_CASE(
    "A deploy whose pinned image is already in local storage skips the pull and its auth file",
    "[deployer][pull]") {
  Rig rig;
  const std::string pinned = "127.0.0.1:5000/app@sha256:" + std::string(64, '1');
  rig.driver.local_images.insert(pinned);
  auto r = rig.deploy(rig.task("t1", 1));  // with registry credentials
  REQUIRE(r.ok);
  CHECK(rig.driver.local_checks == std::vector<std::string>{pinned});
  for (const auto& c : rig.driver.calls) CHECK(c.rfind("pull ", 0) == std::string::npos);
  CHECK(rig.driver.authfile_seen.empty());  // no pull, so no auth file was ever written
  CHECK(rig.tmp_is_empty());
  REQUIRE(!r.logs.empty());
  CHECK(r.logs[0].step == "pull");
  CHECK(r.logs[0].status == "ok");
  CHECK(r.logs[0].message.find("already present") != std::string::npos);
  CHECK(rig.driver.specs.at("berth-svc1-r1-s0").image == pinned);
}

TEST_CASE("A deploy pulls when the image is absent locally, and a tag without a digest always",
          "[deployer][pull]") {
  Rig rig;
  SECTION("pinned, absent") {
    REQUIRE(rig.deploy(rig.task("t1", 1)).ok);
    CHECK(rig.driver.local_checks.size() == 1);
    CHECK(rig.driver.calls.front() == "pull 127.0.0.1:5000/app@sha256:" + std::string(64, '1'));
    CHECK(!rig.driver.authfile_seen.empty());
  }
  SECTION("not pinned: the local copy of a tag may be stale") {
    auto t = rig.task("t1", 1);
    t.image_digest.clear();
    rig.driver.local_images.insert("127.0.0.1:5000/app:v1");
    REQUIRE(rig.deploy(t).ok);
    CHECK(rig.driver.local_checks.empty());
    CHECK(rig.driver.calls.front() == "pull 127.0.0.1:5000/app:v1");
  }
  CHECK(rig.tmp_is_empty());
}

TEST_CASE("Cleanup lists no containers and retries those an earlier removal left behind",
          "[deployer][cleanup]") {
  Rig rig;
  // Deploy 1 fails at the probe and its green cannot be removed: it is left behind.
  rig.prober.healthy = false;
  rig.driver.fail_remove_of.insert("berth-svc1-r1-s0");
  REQUIRE(!rig.deploy(rig.task("t1", 1)).ok);
  CHECK(rig.driver.containers.count("berth-svc1-r1-s0") == 1);
  // Deploy 2 succeeds; its cleanup removes the leftover now that removal works.
  rig.prober.healthy = true;
  rig.driver.fail_remove_of.clear();
  rig.driver.calls.clear();
  auto r = rig.deploy(rig.task("t2", 2));
  REQUIRE(r.ok);
  CHECK(rig.driver.containers.count("berth-svc1-r1-s0") == 0);
  CHECK(index_of(rig.driver.calls, "switch 30001") <
        index_of(rig.driver.calls, "rm berth-svc1-r1-s0"));
  // Deploy 3 replaces blue (deploy 2's green); nothing else to retry.
  rig.driver.calls.clear();
  REQUIRE(rig.deploy(rig.task("t3", 3)).ok);
  CHECK(std::count(rig.driver.calls.begin(), rig.driver.calls.end(), "rm berth-svc1-r1-s0") == 0);
  CHECK(rig.driver.containers.count("berth-svc1-r2-s1") == 0);
  CHECK(rig.driver.lists == 0);  // no deploy listed containers to find strays
}
