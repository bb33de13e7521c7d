#include "common/secret.h"

#include <cstring>

namespace berth {

void secure_wipe(void* data, std::size_t size) noexcept {
  if (data != nullptr && size > 0) explicit_bzero(data, size);
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

void Secret::wipe() noexcept {
  // Wipe the whole capacity: a shrunk string may keep old bytes past size().
  if (bytes_.capacity() > 0) secure_wipe(bytes_.data(), bytes_.capacity());
  bytes_.clear();
}

bool Secret::equals(const Secret& other) const {
  const std::size_t n = bytes_.size() > other.bytes_.size() ? bytes_.size() : other.bytes_.size();
  unsigned char diff = bytes_.size() == other.bytes_.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char a = i < bytes_.size() ? static_cast<unsigned char>(bytes_[i]) : 0;
    const unsigned char b =
        i < other.bytes_.size() ? static_cast<unsigned char>(other.bytes_[i]) : 0;
    diff |= static_cast<unsigned char>(a ^ b);
  }
  return diff == 0;
}

}  // namespace berth
