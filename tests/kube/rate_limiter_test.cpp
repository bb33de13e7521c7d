// The token bucket's arithmetic, on a clock that moves only when the test moves it.
#include <catch2/catch.hpp>

#include <chrono>

#include "kube/rate_limiter.h"

using namespace berth::kube;
using namespace std::chrono_literals;

namespace {

struct FakeClock {
  RateLimiter::Clock::time_point now{};
  RateLimiter::Now fn() {
    return [this] { return now; };
  }
};

constexpr auto kForever = std::chrono::hours(1);

}  // namespace

TEST_CASE("a full bucket lets `burst` requests through at once, then spaces them 1/qps apart",
          "[kube][rate_limiter]") {
  FakeClock clock;
  RateLimiter limiter(5, 10, clock.fn());
  for (int i = 0; i < 10; ++i)
    CHECK(limiter.reserve(kForever) == RateLimiter::Clock::duration::zero());
  // Callers queue behind each other: the 11th waits one interval, the 12th two.
  CHECK(limiter.reserve(kForever) ==
        std::chrono::duration_cast<RateLimiter::Clock::duration>(200ms));
  CHECK(limiter.reserve(kForever) ==
        std::chrono::duration_cast<RateLimiter::Clock::duration>(400ms));
}

TEST_CASE("the bucket refills at qps and never holds more than burst", "[kube][rate_limiter]") {
  FakeClock clock;
  RateLimiter limiter(2, 3, clock.fn());
  for (int i = 0; i < 3; ++i)
    REQUIRE(limiter.reserve(kForever) == RateLimiter::Clock::duration::zero());
  clock.now += 1s;  // two tokens back
  CHECK(limiter.reserve(kForever) == RateLimiter::Clock::duration::zero());
  CHECK(limiter.reserve(kForever) == RateLimiter::Clock::duration::zero());
  CHECK(limiter.reserve(kForever) ==
        std::chrono::duration_cast<RateLimiter::Clock::duration>(500ms));
  clock.now += 1h;  // long idle: back to burst, not more
  for (int i = 0; i < 3; ++i)
    CHECK(limiter.reserve(kForever) == RateLimiter::Clock::duration::zero());
  CHECK(limiter.reserve(kForever) > RateLimiter::Clock::duration::zero());
}

TEST_CASE("a wait longer than the caller allows takes nothing", "[kube][rate_limiter]") {
  FakeClock clock;
  RateLimiter limiter(1, 1, clock.fn());
  REQUIRE(limiter.reserve(kForever) == RateLimiter::Clock::duration::zero());
  CHECK_FALSE(limiter.reserve(500ms).has_value());
  // The refused reservation left the bucket as it was: the next caller still waits one second.
  CHECK(limiter.reserve(kForever) == std::chrono::duration_cast<RateLimiter::Clock::duration>(1s));
}

TEST_CASE("a cancelled reservation gives its token back", "[kube][rate_limiter]") {
  FakeClock clock;
  RateLimiter limiter(1, 1, clock.fn());
  REQUIRE(limiter.reserve(kForever) == RateLimiter::Clock::duration::zero());
  REQUIRE(limiter.reserve(kForever) ==
          std::chrono::duration_cast<RateLimiter::Clock::duration>(1s));
  limiter.cancel_reservation();
  CHECK(limiter.reserve(kForever) == std::chrono::duration_cast<RateLimiter::Clock::duration>(1s));
}

TEST_CASE("wait() refuses a delay past the deadline without sleeping", "[kube][rate_limiter]") {
  FakeClock clock;
  RateLimiter limiter(1, 1, clock.fn());
  REQUIRE(limiter.wait(clock.now + 1h).ok());
  auto refused = limiter.wait(clock.now + 10ms);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == berth::ErrorCode::kDeadlineExceeded);
}

TEST_CASE("qps 0 turns limiting off", "[kube][rate_limiter]") {
  FakeClock clock;
  RateLimiter limiter(0, 1, clock.fn());
  for (int i = 0; i < 1000; ++i) CHECK(limiter.reserve(0s) == RateLimiter::Clock::duration::zero());
}
