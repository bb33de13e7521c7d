#pragma once
// Secret: a byte string that cannot be printed, logged or serialised by accident. It has no
// conversion to std::string, operator<< is deleted, and converting it to nlohmann::json (so
// passing it, or a container, pair or optional of it, as a log field: log fields are JSON) stops
// the build with a static_assert naming the reason. The only way to the bytes is reveal(), which
// is greppable. Its storage is wiped when it is destroyed or reassigned.
// tests/common/secret_format/ holds the snippets that must not compile (ctest common/secret_*).
#include <iosfwd>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace berth {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string_view bytes) : bytes_(bytes) {}
  Secret(const Secret& other) : bytes_(other.bytes_) {}
  Secret(Secret&& other) noexcept : bytes_(std::move(other.bytes_)) { other.wipe(); }
  Secret& operator=(const Secret& other);
  Secret& operator=(Secret&& other) noexcept;
  ~Secret() { wipe(); }

  bool empty() const { return bytes_.empty(); }
  std::size_t size() const { return bytes_.size(); }
  // The plaintext. Every call site is a place the secret leaves this wrapper: keep them few.
  std::string_view reveal() const { return bytes_; }

  // Comparison whose time depends only on the lengths (CRYPTO_memcmp), not on the bytes.
  bool equals(const Secret& other) const;

 private:
  void wipe() noexcept;
  std::string bytes_;
};

// No stream output: `std::cout << secret` and `std::ostringstream() << secret` do not compile.
std::ostream& operator<<(std::ostream& out, const Secret& secret) = delete;

namespace detail {
template <typename>
inline constexpr bool kSecretNeverSerialised = false;
}  // namespace detail

// Overwrites a buffer so the compiler cannot elide it.
void secure_wipe(void* data, std::size_t size) noexcept;

// Wipes a string's whole capacity (a shrunk string keeps old bytes past size()) and empties it.
void wipe_string(std::string& s) noexcept;

}  // namespace berth

// nlohmann::json looks a type's conversion up here. Declaring one whose body cannot be
// instantiated makes `json(secret)`, `{{"password", secret}}` in a log call and every container
// of Secret a compile error with this message, instead of an overload-resolution failure (or,
// should anyone ever add a generic conversion, a silent success).
namespace nlohmann {
template <>
struct adl_serializer<berth::Secret> {
  template <typename BasicJson>
  static void to_json(BasicJson&, const berth::Secret&) {
    static_assert(berth::detail::kSecretNeverSerialised<BasicJson>,
                  "berth::Secret cannot be converted to JSON or logged: log what it is for, "
                  "never its bytes");
  }
  template <typename BasicJson>
  static void from_json(const BasicJson&, berth::Secret&) {
    static_assert(berth::detail::kSecretNeverSerialised<BasicJson>,
                  "berth::Secret is not read from JSON implicitly: parse a string, then wrap it");
  }
};
}  // namespace nlohmann
