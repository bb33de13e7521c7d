// The controller's operator-log context: every line of one reconcile call carries the same
// reconcile_id, the next call a different one.
#include <mutex>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "runtime/controller.h"
#include "runtime/workqueue.h"

using namespace berth;
using namespace berth::runtime;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

class Lines {
 public:
  Lines() {
    previous_ = log::set_sink([this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.push_back(json::parse(line));
    });
  }
  ~Lines() { log::set_sink(std::move(previous_)); }
  std::vector<json> all() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<json> lines_;
  log::Sink previous_;
};

}  // namespace

TEST_CASE("every line of one reconcile carries the same reconcile_id, the next reconcile another",
          "[controller][log]") {
  Lines lines;
  ManualClock clock;
  WorkQueue queue(clock, BackoffPolicy{5ms, 1s, 0.0});
  // Two lines from the reconciler, then the controller's own "gave up" line for a terminal one.
  Controller controller(
      queue,
      [](const std::string& key) {
        log::info("reconcile step one", {{"key", key}});
        log::info("reconcile step two", {{"key", key}});
        return ReconcileOutcome::terminal("test: stop here");
      },
      ControllerOptions{"test", 0, 0s, {}});
  queue.add("shop/web");
  REQUIRE(controller.process_one());
  queue.add("shop/web");
  REQUIRE(controller.process_one());

  const auto all = lines.all();
  REQUIRE(all.size() == 6);
  const std::regex sixteen_hex("^[0-9a-f]{16}$");
  for (const auto& line : all) {
    CAPTURE(line.dump());
    REQUIRE(line.contains("reconcile_id"));
    CHECK(std::regex_match(line["reconcile_id"].get<std::string>(), sixteen_hex));
  }
  const auto first = all[0]["reconcile_id"];
  CHECK(all[1]["reconcile_id"] == first);
  CHECK(all[2]["msg"] == "reconcile gave up");
  CHECK(all[2]["reconcile_id"] == first);
  const auto second = all[3]["reconcile_id"];
  CHECK(second != first);
  CHECK(all[4]["reconcile_id"] == second);
  CHECK(all[5]["reconcile_id"] == second);
}

TEST_CASE("lines logged outside a reconcile carry no reconcile_id", "[controller][log]") {
  Lines lines;
  ManualClock clock;
  WorkQueue queue(clock, BackoffPolicy{5ms, 1s, 0.0});
  Controller controller(
      queue, [](const std::string&) { return ReconcileOutcome::done(); },
      ControllerOptions{"test", 0, 0s, {}});
  queue.add("shop/web");
  REQUIRE(controller.process_one());
  log::info("between reconciles");
  const auto all = lines.all();
  REQUIRE(all.size() == 1);
  CHECK_FALSE(all[0].contains("reconcile_id"));
}

TEST_CASE("the controller is running from start() until stop() begins (readiness reads it)",
          "[controller][readiness]") {
  ManualClock clock;
  WorkQueue queue(clock, BackoffPolicy{5ms, 1s, 0.0});
  Controller controller(
      queue, [](const std::string&) { return ReconcileOutcome::done(); },
      ControllerOptions{"test", 1, 0s, {}});
  CHECK_FALSE(controller.running());
  controller.start();
  CHECK(controller.running());
  controller.stop();
  CHECK_FALSE(controller.running());
  controller.start();  // a stopped controller does not start again
  CHECK_FALSE(controller.running());
}
