#include "api/auth_cache.h"

#include <catch2/catch.hpp>

using namespace berth::api;
using namespace std::chrono_literals;

namespace {

// A clock the test moves by hand.
struct ManualClock {
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  SteadyClock fn() {
    return [this] { return now; };
  }
};

const std::string kHeader = "Basic YWxpY2U6czNjcmV0";  // alice:s3cret

}  // namespace

TEST_CASE("A cached verification answers until its TTL passes", "[auth-cache]") {
  ManualClock clock;
  AuthCache cache(AuthCacheOptions{60s, 16}, clock.fn());
  CHECK_FALSE(cache.lookup(kHeader));
  cache.insert(kHeader, "acct-1", "alice");
  REQUIRE(cache.lookup(kHeader));
  CHECK(*cache.lookup(kHeader) == "acct-1");
  clock.now += 59s;
  CHECK(cache.lookup(kHeader));
  clock.now += 1s;
  CHECK_FALSE(cache.lookup(kHeader));
  CHECK(cache.size() == 0);  // an expired entry is removed when found
}

TEST_CASE("Only the exact header that was verified is a hit", "[auth-cache]") {
  ManualClock clock;
  AuthCache cache(AuthCacheOptions{60s, 16}, clock.fn());
  cache.insert(kHeader, "acct-1", "alice");
  CHECK_FALSE(cache.lookup("Basic YWxpY2U6czNjcmV1"));  // alice:s3cres
  CHECK_FALSE(cache.lookup(kHeader + " "));
  CHECK_FALSE(cache.lookup(""));
}

TEST_CASE("The cache holds at most its capacity, dropping the least recently used",
          "[auth-cache]") {
  ManualClock clock;
  AuthCache cache(AuthCacheOptions{60s, 3}, clock.fn());
  cache.insert("h1", "a1", "n1");
  cache.insert("h2", "a2", "n2");
  cache.insert("h3", "a3", "n3");
  CHECK(cache.lookup("h1"));  // h1 is now the most recently used; h2 the least
  cache.insert("h4", "a4", "n4");
  CHECK(cache.size() == 3);
  CHECK_FALSE(cache.lookup("h2"));
  CHECK(cache.lookup("h1"));
  CHECK(cache.lookup("h3"));
  CHECK(cache.lookup("h4"));
}

TEST_CASE("Dropping an account removes all of its entries and no other", "[auth-cache]") {
  ManualClock clock;
  AuthCache cache(AuthCacheOptions{60s, 16}, clock.fn());
  cache.insert("Basic a", "acct-1", "alice");
  cache.insert("Basic b", "acct-1", "alice");
  cache.insert("Basic c", "acct-2", "bob");
  cache.drop_account("acct-1");
  CHECK_FALSE(cache.lookup("Basic a"));
  CHECK_FALSE(cache.lookup("Basic b"));
  CHECK(cache.lookup("Basic c"));
}

TEST_CASE("The cache key is an HMAC of the header under a per-cache key, not the header",
          "[auth-cache]") {
  ManualClock clock;
  AuthCache a(AuthCacheOptions{}, clock.fn());
  AuthCache b(AuthCacheOptions{}, clock.fn());
  const std::string ka = a.key_for(kHeader);
  CHECK(ka.size() == 32);
  CHECK(ka.find("YWxpY2U6czNjcmV0") == std::string::npos);
  CHECK(ka != kHeader);
  CHECK(ka == a.key_for(kHeader));  // stable within the process
  CHECK(ka != b.key_for(kHeader));  // random key per cache
  // A known key gives the RFC 4231 test case 2 HMAC-SHA256.
  AuthCache fixed(AuthCacheOptions{}, clock.fn(), "Jefe");
  const std::string mac = fixed.key_for("what do ya want for nothing?");
  static constexpr unsigned char kExpected[] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                                0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                                0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                                0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
  CHECK(mac == std::string(reinterpret_cast<const char*>(kExpected), sizeof kExpected));
}

TEST_CASE("The limiter allows a burst of failures, then one per refill interval",
          "[auth-limiter]") {
  ManualClock clock;
  FailureLimiter limiter(LimiterOptions{3, 10s, 100}, clock.fn());
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.retry_after("10.0.0.1") == 0ms);
    limiter.record_failure("10.0.0.1");
  }
  CHECK(limiter.retry_after("10.0.0.1") == 10s);
  CHECK(limiter.retry_after("10.0.0.2") == 0ms);  // other keys are not affected
  clock.now += 4s;
  CHECK(limiter.retry_after("10.0.0.1") == 6s);
  clock.now += 6s;
  CHECK(limiter.retry_after("10.0.0.1") == 0ms);
  limiter.record_failure("10.0.0.1");
  CHECK(limiter.retry_after("10.0.0.1") == 10s);
  // A long quiet period refills up to the burst, not beyond.
  clock.now += 1h;
  for (int i = 0; i < 3; ++i) limiter.record_failure("10.0.0.1");
  CHECK(limiter.retry_after("10.0.0.1") == 10s);
}

TEST_CASE("Concurrent failures past an empty bucket do not push the wait further",
          "[auth-limiter]") {
  ManualClock clock;
  FailureLimiter limiter(LimiterOptions{1, 5s, 100}, clock.fn());
  for (int i = 0; i < 5; ++i) limiter.record_failure("alice");
  CHECK(limiter.retry_after("alice") == 5s);
}

TEST_CASE("The limiter forgets the least recently touched key beyond max_keys", "[auth-limiter]") {
  ManualClock clock;
  FailureLimiter limiter(LimiterOptions{1, 60s, 2}, clock.fn());
  limiter.record_failure("a");
  limiter.record_failure("b");
  limiter.record_failure("c");
  CHECK(limiter.size() == 2);
  CHECK(limiter.retry_after("a") == 0ms);
  CHECK(limiter.retry_after("b") == 60s);
  CHECK(limiter.retry_after("c") == 60s);
}
