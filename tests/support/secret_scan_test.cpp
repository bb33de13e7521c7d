#include "support/secret_scan.h"

#include <algorithm>

#include <catch2/catch.hpp>

using berth::testing::SecretScan;

namespace {
const std::string kUser = "berth";
const std::string kSecret = "berth-canary-0123abcd\"\\4567ef89";

bool found(const SecretScan& scan, const std::string& text) { return !scan.find_in(text).empty(); }
}  // namespace

TEST_CASE("The secret scan finds the raw password", "[secret-scan]") {
  SecretScan scan(kSecret, kUser);
  CHECK(found(scan, "x " + kSecret + " y"));
  CHECK_FALSE(found(scan, "nothing to see here"));
}

TEST_CASE("The secret scan finds base64 of user:password as an auth file holds it",
          "[secret-scan]") {
  SecretScan scan(kSecret, kUser);
  const std::string auth = R"({"auths":{"127.0.0.1:5000":{"auth":")" +
                           berth::testing::base64(kUser + ":" + kSecret) + R"("}}})";
  CHECK(auth.find(kSecret) == std::string::npos);
  const auto names = scan.find_in(auth);
  CHECK(std::find(names.begin(), names.end(), "base64(user:password #0)") != names.end());
  // A Basic header too.
  CHECK(found(scan, "Authorization: Basic " + berth::testing::base64(kUser + ":" + kSecret)));
}

TEST_CASE("The secret scan finds base64 of the password alone at any alignment", "[secret-scan]") {
  SecretScan scan(kSecret);
  for (const std::string prefix : {"", "a", "ab", "abc", "abcd"}) {
    INFO("prefix: " << prefix);
    const std::string encoded = berth::testing::base64(prefix + kSecret + "tail");
    CHECK(encoded.find(kSecret) == std::string::npos);
    CHECK(found(scan, encoded));
  }
}

TEST_CASE("The secret scan finds the JSON-escaped and URL-encoded password", "[secret-scan]") {
  SecretScan scan(kSecret);
  const std::string json = R"({"password":"berth-canary-0123abcd\"\\4567ef89"})";
  CHECK(json.find(kSecret) == std::string::npos);
  CHECK(found(scan, json));
  const std::string url = "https://x/?p=berth-canary-0123abcd%22%5C4567ef89";
  CHECK(found(scan, url));
  CHECK(found(scan, "p=berth-canary-0123abcd%22%5c4567ef89"));
}

TEST_CASE("The secret scan reports the lines that hold a secret, for failure messages",
          "[secret-scan]") {
  SecretScan scan;
  scan.add(kSecret);
  scan.add("second-secret-value");
  const auto lines = scan.lines_in("clean\nleak second-secret-value here\nclean too\n");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "raw(#1): leak second-secret-value here");
}
