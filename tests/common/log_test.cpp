#include <catch2/catch.hpp>

#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/log.h"

using namespace berth;
using nlohmann::json;

namespace {

// Captures the lines written while alive, parsed, and restores the previous sink.
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

TEST_CASE("a scoped field is on every line written while the scope is alive, and only then",
          "[log]") {
  Lines lines;
  log::info("before");
  {
    log::ScopedFields scope({{"reconcile_id", "0123456789abcdef"}, {"name", "web"}});
    log::info("inside", {{"step", 1}});
    log::warn("inside again");
  }
  log::info("after");
  const auto all = lines.all();
  REQUIRE(all.size() == 4);
  CHECK_FALSE(all[0].contains("reconcile_id"));
  CHECK(all[1]["reconcile_id"] == "0123456789abcdef");
  CHECK(all[1]["name"] == "web");
  CHECK(all[1]["step"] == 1);
  CHECK(all[2]["reconcile_id"] == "0123456789abcdef");
  CHECK_FALSE(all[3].contains("reconcile_id"));
  CHECK_FALSE(all[3].contains("name"));
}

TEST_CASE("nested scopes add up, the inner scope wins over the outer, the call over both",
          "[log]") {
  Lines lines;
  {
    log::ScopedFields outer({{"namespace", "shop"}, {"name", "outer"}});
    {
      log::ScopedFields inner({{"name", "inner"}, {"revision", 3}});
      log::info("nested");
      log::info("call wins", {{"revision", 4}});
    }
    log::info("outer again");
  }
  const auto all = lines.all();
  REQUIRE(all.size() == 3);
  CHECK(all[0]["namespace"] == "shop");
  CHECK(all[0]["name"] == "inner");
  CHECK(all[0]["revision"] == 3);
  CHECK(all[1]["revision"] == 4);
  CHECK(all[1]["name"] == "inner");
  CHECK(all[2]["name"] == "outer");
  CHECK_FALSE(all[2].contains("revision"));
}

TEST_CASE("a scope cannot replace ts, level or msg, and a non-object adds nothing", "[log]") {
  Lines lines;
  {
    log::ScopedFields bad({{"msg", "forged"}, {"level", "debug"}, {"ts", "never"}, {"ok", true}});
    log::ScopedFields not_an_object(json::array({1, 2}));
    log::error("real message");
  }
  const auto all = lines.all();
  REQUIRE(all.size() == 1);
  CHECK(all[0]["msg"] == "real message");
  CHECK(all[0]["level"] == "error");
  CHECK(all[0]["ts"] != "never");
  CHECK(all[0]["ok"] == true);
  CHECK(all[0].size() == 4);
}

TEST_CASE("a scope belongs to its thread: lines written on another thread do not carry it",
          "[log]") {
  Lines lines;
  log::ScopedFields scope({{"reconcile_id", "aaaaaaaaaaaaaaaa"}});
  std::thread other([] { log::info("from another thread"); });
  other.join();
  log::info("from this thread");
  const auto all = lines.all();
  REQUIRE(all.size() == 2);
  CHECK(all[0]["msg"] == "from another thread");
  CHECK_FALSE(all[0].contains("reconcile_id"));
  CHECK(all[1]["reconcile_id"] == "aaaaaaaaaaaaaaaa");
}

TEST_CASE("lines below the level are dropped with their scoped fields", "[log]") {
  Lines lines;
  const auto saved = log::level();
  log::set_level(log::Level::kWarn);
  {
    log::ScopedFields scope({{"reconcile_id", "bbbbbbbbbbbbbbbb"}});
    log::info("dropped");
    log::warn("kept");
  }
  log::set_level(saved);
  const auto all = lines.all();
  REQUIRE(all.size() == 1);
  CHECK(all[0]["msg"] == "kept");
  CHECK(all[0]["reconcile_id"] == "bbbbbbbbbbbbbbbb");
}
