// Pull progress against real podman: a multi-layer image pulled with a TMPDIR of its own is
// measured while it pulls (podman writes each blob there), and the counts add up to the
// manifest's sizes. The image is an OCI layout built here (random, incompressible layers), so
// no registry is needed. Tagged [podman]; skipped (never passed) without podman.
#include <catch2/catch.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/podman_driver.h"
#include "agent/pull_progress.h"
#include "support/oci_layout.h"
#include "support/skip.h"
#include "support/testenv.h"

using namespace berth;
using namespace berth::agent;
namespace fs = std::filesystem;

namespace {

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST_CASE("a pull is measured while podman writes its blobs", "[agent][podman][progress]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman);
  testenv::PodmanEnv podman;
  // podman names an image pulled from an OCI layout after its path, and an image name must be
  // lower case: the temp dir's random part is lower-cased into a fresh sibling.
  const std::string made = testenv::make_temp_dir("pull-progress");
  std::string dir = made;
  for (auto& ch : dir) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  dir += "-lc";
  REQUIRE(fs::create_directory(dir));
  // 4 layers of 8 MiB of random bytes, tag "big".
  testenv::OciLayoutOptions lo;
  lo.tag = "big";
  auto built = testenv::build_oci_layout(dir, lo);
  if (!built.ok()) FAIL(built.error().message);
  const std::string layout = built->path;

  // The totals, from the manifest as the registry would serve it.
  const auto index = nlohmann::json::parse(read(layout + "/index.json"));
  const std::string manifest_digest = index["manifests"][0]["digest"];
  auto layers = parse_manifest_layers(read(layout + "/blobs/sha256/" + manifest_digest.substr(7)),
                                      host_oci_arch());
  REQUIRE(layers.ok());
  REQUIRE(layers->sizes.size() == 4);

  const std::string tmp = dir + "/pull-tmp";
  fs::create_directories(tmp);
  PullMeter meter(layers->sizes);
  std::vector<agentlink::PullCounts> seen;
  PullRequest request;
  request.image = "oci:" + layout + ":big";
  request.tmp_dir = tmp;
  request.on_blobs = [&](const std::vector<std::int64_t>& blobs) {
    const auto before = meter.counts();
    const auto& now = meter.update(blobs);
    CHECK(now.bytes_done >= before.bytes_done);
    CHECK(now.layers_done >= before.layers_done);
    seen.push_back(now);
  };
  PodmanOptions options;
  options.progress_interval = std::chrono::milliseconds(20);
  PodmanDriver driver(options);
  auto pulled = driver.pull(request);
  if (!pulled.ok()) FAIL(pulled.error().message);

  // 32 MiB through podman's storage take far longer than a few samples of 20 ms: bytes were
  // seen while it pulled, and never more than the image's layers.
  bool bytes_seen = false;
  for (const auto& c : seen) {
    CHECK(c.layers_total == 4);
    CHECK(c.bytes_done <= c.bytes_total);
    if (c.bytes_done > 0) bytes_seen = true;
  }
  CHECK(bytes_seen);
  const auto done = meter.finished();
  CHECK(done.layers_done == 4);
  CHECK(done.bytes_done == done.bytes_total);
  CHECK(describe_pull(done, true).rfind("pulled: 4/4 layers, ", 0) == 0);

  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::remove_all(made, ec);
}
