#include "common/secret.h"

#include <cstring>

#include <openssl/crypto.h>

namespace berth {

void secure_wipe(void* data, std::size_t size) noexcept {
  if (data != nullptr && size > 0) explicit_bzero(data, size);
}

void wipe_string(std::string& s) noexcept {
  if (s.capacity() > 0) secure_wipe(s.data(), s.capacity());
  s.clear();
}

Secret& Secret::operator=(const Secret& other) {
  if (this != &other) {
    wipe();
    bytes_ = other.bytes_;
  }
  return *this;
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    wipe();
    bytes_ = std::move(other.bytes_);
    other.wipe();
  }
  return *this;
}

void Secret::wipe() noexcept { wipe_string(bytes_); }

bool Secret::equals(const Secret& other) const {
  // The length is not secret (it shows in every protocol that carries one); the bytes are.
  if (bytes_.size() != other.bytes_.size()) return false;
  return CRYPTO_memcmp(bytes_.data(), other.bytes_.data(), bytes_.size()) == 0;
}

}  // namespace berth
