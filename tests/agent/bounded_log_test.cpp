// Results and deploy logs fit the link's 1 MiB frame whatever the runtime prints.
#include <catch2/catch.hpp>

#include "agent/bounded_log.h"
#include "agentlink/messages.h"
#include "deployer_rig.h"

using namespace berth;
using namespace berth::agent;
using namespace berth::agent::testing;

namespace {

constexpr std::size_t kFrameLimit = 1024 * 1024;

// The frame goes through the real encoder and decoder, as on the link.
void check_fits(const agentlink::Message& m) {
  std::string frame;
  REQUIRE_NOTHROW(frame = agentlink::encode(m));
  CHECK(frame.size() < kFrameLimit);
  CHECK(agentlink::decode(frame).ok());
}

// Megabytes of output with everything a terminal can print: control bytes, quotes, invalid UTF-8.
std::string huge_output(std::size_t bytes) {
  std::string s;
  const std::string line = "Error: \x1b[31mlayer \"x\"\\ failed\xff\xfe\tretrying\n";
  while (s.size() < bytes) s += line;
  return s;
}

}  // namespace

TEST_CASE("A huge podman error is cut with a marker and the result fits a frame",
          "[deployer][bounded]") {
  Rig rig;
  rig.driver.fail_pull = huge_output(5 * 1024 * 1024);
  auto r = rig.deploy(rig.task("t1", 1));
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.error, Catch::Contains("Pulling 127.0.0.1:5000/app@sha256:"));
  CHECK_THAT(r.error, Catch::Contains("[truncated: "));
  CHECK(r.error.size() < 8 * 1024);
  check_fits(r);
  for (const auto& e : rig.progress) check_fits(agentlink::Progress{"t1", e});
  // What is recorded (and answered to a re-delivered task) is the bounded result.
  auto again = rig.deploy(rig.task("t1", 1));
  CHECK(again.error == r.error);
}

TEST_CASE("A huge container log on a failed probe is cut and the result fits a frame",
          "[deployer][bounded]") {
  Rig rig;
  rig.prober.healthy = false;
  rig.driver.logs = huge_output(3 * 1024 * 1024);
  auto r = rig.deploy(rig.task("t1", 1));
  CHECK_FALSE(r.ok);
  const auto& probe = r.logs.at(2);
  CHECK(probe.step == "probe");
  CHECK(probe.detail.size() <= kMaxDetailBytes + 64);
  CHECK_THAT(probe.detail, Catch::Contains("[truncated: "));
  check_fits(r);
}

TEST_CASE("Too many log entries are cut after the budget with a final marker entry", "[bounded]") {
  std::vector<core::DeployLogEntry> logs(100);
  for (auto& e : logs) {
    e.step = "cleanup";
    e.status = "info";
    e.message = "m";
    e.detail = std::string(60 * 1024, 'x');
    e.started_at = 1000;
    e.duration_ms = 1;
  }
  const auto bounded = bounded_logs(logs);
  REQUIRE(bounded.size() > 1);
  REQUIRE(bounded.size() < logs.size());
  const auto& marker = bounded.back();
  CHECK(marker.step == "truncated");
  CHECK(marker.status == "info");
  CHECK_THAT(marker.message,
             Catch::StartsWith("truncated: " + std::to_string(logs.size() - bounded.size() + 1) +
                               " entries / "));
  CHECK_THAT(marker.message, Catch::EndsWith(" bytes omitted"));
  agentlink::TaskResult r;
  r.logs = bounded;
  check_fits(r);
}

TEST_CASE("Bounded text is valid UTF-8 and never cuts a character in half", "[bounded]") {
  CHECK(bounded_text("short", 100) == "short");
  CHECK(bounded_text("h\xc3\xa9llo", 2) == "h [truncated: 5 bytes omitted]");
  CHECK(bounded_text("a\xff"
                     "b",
                     100) ==
        "a\xef\xbf\xbd"
        "b");
  // A control byte counts as its escaped form (6 bytes).
  CHECK(bounded_text(std::string("\x01\x01"), 6) == "\x01 [truncated: 1 bytes omitted]");
}
