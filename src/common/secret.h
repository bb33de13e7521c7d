#pragma once
// Secret: a byte string that cannot be printed, logged or serialised by accident. It has no
// operator<<, no conversion to std::string and no JSON conversion; the only way to the bytes is
// reveal(), which is greppable. Its storage is wiped when it is destroyed or reassigned.
#include <string>
#include <string_view>

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

// Overwrites a buffer so the compiler cannot elide it.
void secure_wipe(void* data, std::size_t size) noexcept;

// Wipes a string's whole capacity (a shrunk string keeps old bytes past size()) and empties it.
void wipe_string(std::string& s) noexcept;

}  // namespace berth
