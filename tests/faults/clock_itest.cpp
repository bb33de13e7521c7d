// Wall-clock jumps on the real stack: the controller runs under libfaketime
// (FAKETIME_TIMESTAMP_FILE, re-read at every call; the monotonic clock is left alone, as an NTP
// step or a resumed VM leaves it), and the test moves its wall clock two hours forward, then two
// hours back. After each jump a rollout and a self-heal redeploy finish in their usual time:
// intervals (backoffs, the resend of unacknowledged tasks, the redeploy backoff, the API's
// credential cache and failure limiter, the agent link's timers) follow the steady clock, and
// only timestamps (created_at, deploy log times) follow the wall clock.
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "e2e/stack.h"
#include "faults/faults.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
namespace faults = berth::faults;
namespace testenv = berth::testenv;
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kLibFaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

void set_offset(const std::string& file, const std::string& offset) {
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp);
    out << offset << "\n";
  }
  fs::rename(tmp, file);  // libfaketime never reads a half-written file
}

std::string ready_of(const json& s) { return faults::condition_of(s, "Ready", "status"); }

// The app's container removed behind berth's back; returns the seconds until it serves again.
double heal_after_removal(e2e::Stack& stack, const std::string& id, const std::string& url,
                          const std::string& tag) {
  const auto cids = stack.containers(id);
  REQUIRE(cids.size() == 1);
  std::string out;
  REQUIRE(testenv::run_command({"podman", "rm", "-f", cids[0]}, &out, stack.podman().env(), 60) ==
          0);
  const auto removed = faults::Clock::now();
  stack.wait_service(
      id, [](const json& s) { return ready_of(s) != "True"; }, "Ready to drop", 90s);
  stack.wait_service(
      id, [](const json& s) { return s.value("status", "") == "Running" && ready_of(s) == "True"; },
      "the app to be redeployed", 90s);
  e2e::Stack::wait_page(url, tag + "\n", 30s);
  return faults::seconds_since(removed);
}

// Every deploy log entry of `revision` has a duration a stopwatch could have measured.
void check_durations(const json& revision) {
  for (const auto& e : revision.value("deploy_logs", json::array())) {
    INFO(e.dump());
    const auto d = e.value("duration_ms", std::int64_t{0});
    CHECK(d >= 0);
    CHECK(d < 600'000);
  }
}

// created_at of two revisions compared, whatever its encoding (RFC 3339 text or epoch ms).
bool created_before(const json& a, const json& b) {
  const json& x = a["created_at"];
  const json& y = b["created_at"];
  if (x.is_string() && y.is_string()) return x.get<std::string>() < y.get<std::string>();
  return x.get<std::int64_t>() < y.get<std::int64_t>();
}

}  // namespace

TEST_CASE(
    "The controller's wall clock jumps back and forward: rollouts and redeploys keep their "
    "usual pace",
    "[faults][clock]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kPodman, testenv::Peer::kRegistry);
  if (!fs::exists(kLibFaketime)) {
    berth::testing::skip_test("libfaketime is missing (apt-get install faketime libfaketime)");
    return;
  }
  e2e::StackOptions o;
  o.separate_agent = true;  // only the controller's clock moves
  o.controller_args = {"--backoff-cap-seconds", "4"};
  e2e::Stack stack(o);
  const std::string offset_file = stack.dir() + "/faketime";
  set_offset(offset_file, "+0");
  stack.options().controller_env = {std::string("LD_PRELOAD=") + kLibFaketime,
                                    "FAKETIME_TIMESTAMP_FILE=" + offset_file, "FAKETIME_NO_CACHE=1",
                                    "FAKETIME_DONT_FAKE_MONOTONIC=1"};
  stack.start();
  const json created = stack.create_service(e2e::unique_name("clock"), "v1");
  const std::string id = created["id"];
  const std::string url = stack.wait_running(id, 1)["url"];
  // A first redeploy arms the redeploy backoff (memory-only) at today's time.
  const double before = heal_after_removal(stack, id, url, "v1");
  faults::report_recovery("redeploy before any jump (reference)", "Ready=False", before);

  struct Jump {
    std::string name;
    std::string offset;
    bool back;
    std::string tag;
    int revision;
  };
  // Forward first, then back to the real time: a clock set behind the registry's certificate
  // (made when the test started) would fail TLS, as it should.
  const Jump jumps[] = {{"wall clock 2 h forward", "+2h", false, "v2", 2},
                        {"wall clock 2 h back", "+0", true, "v1", 3}};
  json previous = stack.deployment(id, 1);
  for (const auto& jump : jumps) {
    INFO(jump.name);
    set_offset(offset_file, jump.offset);
    // The controller reads the file at every call (FAKETIME_NO_CACHE): the next revision
    // carries the new time.
    const auto t0 = faults::Clock::now();
    stack.patch_image(id, jump.tag, stack.registry().password());
    const json done = stack.wait_running(id, jump.revision, 90s);
    const double rollout = faults::seconds_since(t0);
    const json revision = stack.deployment(id, jump.revision);
    check_durations(revision);
    INFO(previous.dump() << "\n" << revision.dump());
    // The new revision's timestamp moved with the clock (else the jump was not in effect).
    CHECK(created_before(revision, previous) == jump.back);
    e2e::Stack::wait_page(url, jump.tag + "\n", 30s);
    faults::report_recovery(jump.name + ", rollout", "none expected", rollout);
    CHECK(done.value("last_error", "") == "");
    previous = revision;

    // Self-heal with the redeploy backoff armed before the jump: a backoff measured on the
    // wall clock would hold this redeploy back by the size of a backward jump.
    const double healed = heal_after_removal(stack, id, url, jump.tag);
    faults::report_recovery(jump.name + ", self-heal redeploy", "Ready=False", healed);
  }
  // The agent link stayed up through both jumps: one connect, no disconnect.
  const std::string log = stack.controller_log();
  CHECK(log.find("\"agent disconnected\"") == std::string::npos);
}
