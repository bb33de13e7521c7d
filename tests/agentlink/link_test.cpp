#include <catch2/catch.hpp>

#include "agentlink/client.h"
#include "agentlink/server.h"

using namespace berth;
using namespace berth::agentlink;
using std::chrono::milliseconds;

TEST_CASE("Reconnect delay starts at 200 ms, doubles and is capped at 10 s",
          "[agentlink][backoff]") {
  Backoff b;  // defaults: 200 ms, cap 10 s
  CHECK(reconnect_delay(b, 0, 0.0) == milliseconds(200));
  CHECK(reconnect_delay(b, 1, 0.0) == milliseconds(400));
  CHECK(reconnect_delay(b, 2, 0.0) == milliseconds(800));
  CHECK(reconnect_delay(b, 5, 0.0) == milliseconds(6400));
  CHECK(reconnect_delay(b, 6, 0.0) == milliseconds(10'000));
  CHECK(reconnect_delay(b, 1000, 0.0) == milliseconds(10'000));
}

TEST_CASE("Reconnect jitter shortens the delay by at most the jitter fraction",
          "[agentlink][backoff]") {
  Backoff b;
  b.jitter = 0.5;
  CHECK(reconnect_delay(b, 0, 1.0) == milliseconds(100));
  CHECK(reconnect_delay(b, 0, 0.5) == milliseconds(150));
  CHECK(reconnect_delay(b, 10, 1.0) == milliseconds(5000));
  b.jitter = 0.0;
  CHECK(reconnect_delay(b, 0, 1.0) == milliseconds(200));
}

TEST_CASE("A wss URL parses into host, port and target", "[agentlink][url]") {
  auto ep = parse_url("wss://127.0.0.1:7443");
  REQUIRE(ep.ok());
  CHECK(ep->host == "127.0.0.1");
  CHECK(ep->port == 7443);
  CHECK(ep->target == "/");

  auto v6 = parse_url("wss://[::1]:9/agents");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  CHECK(v6->port == 9);
  CHECK(v6->target == "/agents");

  auto named = parse_url("wss://controller.internal:443");
  REQUIRE(named.ok());
  CHECK(named->host == "controller.internal");
}

TEST_CASE("A plaintext or malformed agent link URL is refused", "[agentlink][url]") {
  for (const char* url :
       {"ws://127.0.0.1:7443", "https://127.0.0.1:7443", "wss://127.0.0.1", "wss://127.0.0.1:0",
        "wss://127.0.0.1:99999", "wss://:7443", "wss://a:b"}) {
    auto ep = parse_url(url);
    CHECK_FALSE(ep.ok());
    if (!ep.ok()) CHECK(ep.error().field == "url");
  }
}

TEST_CASE("A certificate is due for renewal once a third or less of its validity is left",
          "[agentlink][renewal]") {
  // Valid for 90 days from t=0: due from day 60 on.
  constexpr std::int64_t kDay = 24 * 3600;
  CHECK_FALSE(certificate_due_for_renewal(0, 90 * kDay, 0));
  CHECK_FALSE(certificate_due_for_renewal(0, 90 * kDay, 60 * kDay - 1));
  CHECK(certificate_due_for_renewal(0, 90 * kDay, 60 * kDay));
  CHECK(certificate_due_for_renewal(0, 90 * kDay, 89 * kDay));
  CHECK(certificate_due_for_renewal(0, 90 * kDay, 91 * kDay));  // expired
  // A certificate with no validity window at all is always due.
  CHECK(certificate_due_for_renewal(100, 100, 0));
}
