// Pull progress: manifest sizes, counting blob files against them, and the report throttle.
#include <catch2/catch.hpp>

#include <filesystem>

#include "agent/pull_progress.h"
#include "deployer_rig.h"

using namespace berth;
using namespace berth::agent;

TEST_CASE("a manifest gives its layer sizes, an index the child for the platform",
          "[agent][progress]") {
  auto m = parse_manifest_layers(
      R"({"schemaVersion":2,"config":{"size":486},"layers":[{"size":10},{"size":2000}]})", "amd64");
  REQUIRE(m.ok());
  CHECK(m->sizes == std::vector<std::int64_t>{10, 2000});
  CHECK(m->child_digest.empty());

  auto idx = parse_manifest_layers(
      R"({"manifests":[{"digest":"sha256:aa","platform":{"os":"linux","architecture":"arm64"}},
                       {"digest":"sha256:bb","platform":{"os":"linux","architecture":"amd64"}}]})",
      "amd64");
  REQUIRE(idx.ok());
  CHECK(idx->child_digest == "sha256:bb");
  CHECK(idx->sizes.empty());

  CHECK_FALSE(parse_manifest_layers(R"({"manifests":[]})", "amd64").ok());
  CHECK_FALSE(parse_manifest_layers("not json", "amd64").ok());
  CHECK_FALSE(parse_manifest_layers(R"({"layers":[{"digest":"x"}]})", "amd64").ok());
}

TEST_CASE("blob files as large as a layer complete it and bytes are their sum", "[agent][progress]") {
  const std::vector<std::int64_t> layers{100, 200, 200, 500};
  auto c = count_pull(layers, {200, 50});
  CHECK(c.layers_total == 4);
  CHECK(c.bytes_total == 1000);
  CHECK(c.layers_done == 1);
  CHECK(c.bytes_done == 250);

  c = count_pull(layers, {200, 200, 100, 500, 486});  // every layer, plus the config blob
  CHECK(c.layers_done == 4);
  CHECK(c.bytes_done == 1000);  // capped at the total

  c = count_pull({}, {300, 40});  // totals unknown
  CHECK(c.layers_total == 0);
  CHECK(c.layers_done == 0);
  CHECK(c.bytes_done == 340);
}

TEST_CASE("the meter never goes back, and a finished pull counts every layer",
          "[agent][progress]") {
  PullMeter meter({100, 200});
  meter.update({100, 150});
  CHECK(meter.counts().layers_done == 1);
  CHECK(meter.counts().bytes_done == 250);
  meter.update({150});  // the finished blob was committed and its file removed
  CHECK(meter.counts().layers_done == 1);
  CHECK(meter.counts().bytes_done == 250);
  auto done = meter.finished();
  CHECK(done.layers_done == 2);
  CHECK(done.bytes_done == 300);

  PullMeter unknown({});
  unknown.update({70});
  CHECK(unknown.finished().bytes_done == 70);
  CHECK(unknown.bytes_written() == 70);
}

TEST_CASE("pull reports read as a person would say them", "[agent][progress]") {
  agentlink::PullCounts c{3, 5, 41'200'000, 80'000'000};
  CHECK(describe_pull(c) == "pulling: 3/5 layers, 41.2 MB of 80.0 MB");
  CHECK(describe_pull(agentlink::PullCounts{5, 5, 80'000'000, 80'000'000}, true) ==
        "pulled: 5/5 layers, 80.0 MB of 80.0 MB");
  CHECK(describe_pull(agentlink::PullCounts{0, 0, 1'234, 0}) == "pulling: 1.2 kB");
  CHECK(format_bytes(999) == "999 B");
  CHECK(format_bytes(1'300'000'000) == "1.3 GB");
}

TEST_CASE("the throttle allows one report per second and per 10 % step", "[agent][progress]") {
  PullThrottle t(1000, 10);
  const std::int64_t total = 1000;
  auto at = [&](std::int64_t bytes, int layers = 0) {
    return agentlink::PullCounts{layers, 4, bytes, total};
  };
  CHECK_FALSE(t.due(at(0), 0));       // nothing written yet
  CHECK(t.due(at(10), 100));          // the first report
  CHECK_FALSE(t.due(at(500), 600));   // within the second
  CHECK(t.due(at(500), 1100));        // a second later, steps further
  CHECK_FALSE(t.due(at(550), 2200));  // same 10 % step, no layer done
  CHECK(t.due(at(560, 1), 2300));     // a layer completed
  CHECK(t.due(at(1000, 4), 3300));

  // A large image at one sample per 250 ms over 100 s: about one report per step.
  PullThrottle big(1000, 10);
  int reports = 0;
  for (std::int64_t ms = 0; ms <= 100'000; ms += 250) {
    const std::int64_t bytes = total * ms / 100'000;
    if (big.due(agentlink::PullCounts{0, 4, bytes, total}, ms)) ++reports;
  }
  CHECK(reports <= 11);
  CHECK(reports >= 10);

  // Totals unknown: at most one per second, and only when bytes moved.
  PullThrottle blind(1000, 10);
  CHECK(blind.due(agentlink::PullCounts{0, 0, 5, 0}, 0));
  CHECK_FALSE(blind.due(agentlink::PullCounts{0, 0, 9, 0}, 500));
  CHECK_FALSE(blind.due(agentlink::PullCounts{0, 0, 5, 0}, 1500));
  CHECK(blind.due(agentlink::PullCounts{0, 0, 9, 0}, 1600));
}

TEST_CASE("a deploy reports its pull throttled, in its log and with counts", "[agent][progress]") {
  using namespace berth::agent::testing;
  Rig rig;
  std::string image_asked;
  rig.layer_sizes =
      [&](const std::string& image,
          const std::optional<agentlink::RegistryAuth>&) -> Result<std::vector<std::int64_t>> {
    image_asked = image;
    return std::vector<std::int64_t>{100, 200};
  };
  rig.make_deployer();
  rig.driver.blob_samples = {{50}, {100, 150}, {100, 200}};
  std::vector<std::pair<core::DeployLogEntry, agentlink::PullCounts>> reports;
  auto t = rig.task("t1", 1);
  auto result = rig.deployer->deploy(
      t, [&](const core::DeployLogEntry& e) { rig.progress.push_back(e); },
      [&](const core::DeployLogEntry& e, const agentlink::PullCounts& c) {
        reports.emplace_back(e, c);
      });
  REQUIRE(result.ok);
  CHECK(image_asked == "127.0.0.1:5000/app@" + t.image_digest);
  // The rig's clock moves 5 ms a call: within the throttle's second only the first sample is
  // reported, then the final one.
  REQUIRE(reports.size() == 2);
  CHECK(reports[0].first.step == "pull");
  CHECK(reports[0].first.status == "info");
  CHECK(reports[0].first.message == "pulling: 0/2 layers, 50 B of 300 B");
  CHECK(reports[1].first.message == "pulled: 2/2 layers, 300 B of 300 B");
  CHECK(reports[1].second == agentlink::PullCounts{2, 2, 300, 300});
  // The same lines are in the deploy log the result carries; the pull went to a TMPDIR of its
  // own that is gone afterwards.
  int in_log = 0;
  for (const auto& e : result.logs)
    if (e.step == "pull" && e.status == "info") ++in_log;
  CHECK(in_log == 2);
  CHECK_FALSE(rig.driver.pull_tmp_dir.empty());
  CHECK_FALSE(std::filesystem::exists(rig.driver.pull_tmp_dir));
  CHECK(rig.pulled_bytes == 300);
}

TEST_CASE("a manifest that cannot be read costs the totals, not the deploy", "[agent][progress]") {
  using namespace berth::agent::testing;
  Rig rig;
  rig.layer_sizes =
      [](const std::string&,
         const std::optional<agentlink::RegistryAuth>&) -> Result<std::vector<std::int64_t>> {
    return make_error(ErrorCode::kUnavailable, "registry down");
  };
  rig.make_deployer();
  rig.driver.blob_samples = {{4000}};
  auto result = rig.deploy(rig.task("t1", 1));
  REQUIRE(result.ok);
  std::vector<std::string> lines;
  for (const auto& e : rig.progress)
    if (e.step == "pull" && e.status == "info") lines.push_back(e.message);
  CHECK(lines == std::vector<std::string>{"pulling: 4.0 kB", "pulled: 4.0 kB"});
}
