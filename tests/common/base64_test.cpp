#include <catch2/catch.hpp>

#include "common/base64.h"

using namespace berth;

TEST_CASE("Base64 encodes the RFC 4648 test vectors", "[base64]") {
  CHECK(base64::encode("") == "");
  CHECK(base64::encode("f") == "Zg==");
  CHECK(base64::encode("fo") == "Zm8=");
  CHECK(base64::encode("foo") == "Zm9v");
  CHECK(base64::encode("foob") == "Zm9vYg==");
  CHECK(base64::encode("fooba") == "Zm9vYmE=");
  CHECK(base64::encode("foobar") == "Zm9vYmFy");
  CHECK(base64::encode("berth:pw") == "YmVydGg6cHc=");
}

TEST_CASE("Unpadded URL-safe base64 uses - and _ and no padding", "[base64]") {
  const std::string bytes("\xfb\xff\xbf", 3);
  CHECK(base64::encode(bytes) == "+/+/");
  CHECK(base64::encode(bytes, base64::Alphabet::kUrl, false) == "-_-_");
  CHECK(base64::encode("f", base64::Alphabet::kUrl, false) == "Zg");
}

TEST_CASE("Decoding inverts encoding for every length and byte value", "[base64]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); n += 7) {
    const std::string in = all.substr(0, n);
    std::string out;
    REQUIRE(base64::decode(base64::encode(in), out));
    CHECK(out == in);
    REQUIRE(base64::decode(base64::encode(in, base64::Alphabet::kUrl, false), out,
                           base64::Alphabet::kUrl, false));
    CHECK(out == in);
  }
}

TEST_CASE("Malformed base64 is refused", "[base64]") {
  std::string out;
  CHECK_FALSE(base64::decode("Zm9v!", out));  // outside the alphabet
  CHECK_FALSE(base64::decode("Zm9 v", out));  // whitespace
  CHECK_FALSE(base64::decode("Z", out));      // impossible length
  CHECK_FALSE(base64::decode("Zm9=v", out));  // padding in the middle
  CHECK_FALSE(base64::decode("Zh==", out));   // non-zero trailing bits
  CHECK_FALSE(base64::decode("Zg=", out));    // wrong amount of padding
  CHECK_FALSE(base64::decode("Zg==", out, base64::Alphabet::kUrl, false));  // padding not allowed
  CHECK(base64::decode("Zg", out));  // padding may be omitted
  CHECK(out == "f");
}

TEST_CASE("Base64 appends to existing text and round-trips inputs larger than one block",
          "[base64]") {
  std::string out = "Basic ";
  base64::encode_to("berth:pw", out);
  CHECK(out == "Basic YmVydGg6cHc=");

  std::string big(3 * (1u << 20) + 5, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  for (const auto alphabet : {base64::Alphabet::kStandard, base64::Alphabet::kUrl}) {
    for (const bool pad : {true, false}) {
      const std::string text = base64::encode(big, alphabet, pad);
      CHECK(text.size() == base64::encoded_size(big.size(), pad));
      std::string back;
      REQUIRE(base64::decode(text, back, alphabet, pad));
      CHECK(back == big);
    }
  }
}

TEST_CASE("Decoding refuses the other alphabet and whitespace OpenSSL would skip", "[base64]") {
  std::string out;
  CHECK_FALSE(base64::decode("-_-_", out));                                 // URL chars
  CHECK_FALSE(base64::decode("+/+/", out, base64::Alphabet::kUrl, false));  // standard chars
  CHECK_FALSE(base64::decode(" Zm9v", out));                                // leading space
  CHECK_FALSE(base64::decode("Zm9v\n", out));                               // trailing newline
  CHECK_FALSE(base64::decode("Zm9vYg=\n", out));
  CHECK(base64::decode("-_-_", out, base64::Alphabet::kUrl, false));
  CHECK(out == std::string("\xfb\xff\xbf", 3));
}
