#include <catch2/catch.hpp>

#include <clocale>
#include <string>

#include "common/clock.h"
#include "common/hex.h"
#include "common/secret.h"
#include "common/text.h"

using namespace berth;

TEST_CASE("to_lower_ascii folds only A-Z, whatever the locale", "[text]") {
  CHECK(to_lower_ascii("GHCR.io/Acme-1_Z") == "ghcr.io/acme-1_z");
  const std::string bytes("\xc3\x89\x00Q", 4);
  CHECK(to_lower_ascii(bytes) == std::string("\xc3\x89\x00q", 4));
  CHECK(iequals_ascii("Content-Type", "content-TYPE"));
  CHECK_FALSE(iequals_ascii("Basic", "Basi"));
  CHECK_FALSE(iequals_ascii("\xc3\x89", "\xc3\xa9"));
}

TEST_CASE("is_dns_label accepts RFC 1123 labels up to the given length", "[text]") {
  for (const char* good : {"a", "se-sto1", "0", "a--b", "local"}) {
    CAPTURE(good);
    CHECK(is_dns_label(good));
  }
  for (const char* bad : {"", "-a", "a-", "A", "a_b", "a.b", "a b"}) {
    CAPTURE(bad);
    CHECK_FALSE(is_dns_label(bad));
  }
  CHECK(is_dns_label(std::string(63, 'a')));
  CHECK_FALSE(is_dns_label(std::string(64, 'a')));
  CHECK_FALSE(is_dns_label("abcd", 3));
}

TEST_CASE("hex_lower writes two lowercase digits per byte", "[hex]") {
  CHECK(hex_lower("") == "");
  CHECK(hex_lower(std::string("\x00\x0f\xab\xff", 4)) == "000fabff");
  const unsigned char raw[] = {0xde, 0xad, 0xbe, 0xef};
  CHECK(hex_lower(raw, sizeof raw) == "deadbeef");
}

TEST_CASE("Secret::equals compares bytes and lengths", "[secret]") {
  CHECK(Secret("abc").equals(Secret("abc")));
  CHECK_FALSE(Secret("abc").equals(Secret("abd")));
  CHECK_FALSE(Secret("abc").equals(Secret("abcd")));
  CHECK_FALSE(Secret("").equals(Secret("a")));
  CHECK(Secret("").equals(Secret("")));
  CHECK(Secret(std::string("a\0b", 3)).equals(Secret(std::string("a\0b", 3))));
  CHECK_FALSE(Secret(std::string("a\0b", 3)).equals(Secret(std::string("a\0c", 3))));
}

TEST_CASE("wipe_string empties the string and zeroes its whole capacity", "[secret]") {
  std::string s = "hunter2-and-some-more-bytes-past-sso";
  s.resize(3);
  const char* data = s.data();
  const std::size_t capacity = s.capacity();
  wipe_string(s);
  CHECK(s.empty());
  REQUIRE(s.data() == data);  // wiped in place, not reallocated
  for (std::size_t i = 0; i < capacity; ++i) CHECK(data[i] == '\0');
}

TEST_CASE("trim_ascii_whitespace drops spaces, tabs, CRs and LFs at both ends only", "[text]") {
  CHECK(trim_ascii_whitespace("  token\r\n") == "token");
  CHECK(trim_ascii_whitespace("\ta b\t") == "a b");
  CHECK(trim_ascii_whitespace(" \r\n\t ").empty());
  CHECK(trim_ascii_whitespace("").empty());
  CHECK(trim_ascii_whitespace("x") == "x");
  CHECK(trim_ascii_whitespace("\vx\v") == "\vx\v");  // only the four characters above
}

TEST_CASE("url_encode keeps RFC 3986 unreserved characters and percent-encodes every other byte",
          "[text]") {
  CHECK(url_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(url_encode("app in (a,b)") == "app%20in%20%28a%2Cb%29");
  CHECK(url_encode("repository:acme/web:pull") == "repository%3Aacme%2Fweb%3Apull");
  CHECK(url_encode("eyJ2Ijo=/+") == "eyJ2Ijo%3D%2F%2B");
  CHECK(url_encode(std::string("\x00\xff%", 3)) == "%00%FF%25");
  CHECK(url_encode("").empty());
}
