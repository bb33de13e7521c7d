#include "api/auth_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/log.h"

namespace berth::api {
namespace {

constexpr std::size_t kKeyBytes = 32;

std::string random_key() {
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1) {
    // A predictable key would make the cache keys a fast oracle for the headers.
    log::error("the system random number generator failed; stopping");
    std::abort();
  }
  return key;
}

SteadyClock or_steady(SteadyClock clock) {
  if (clock) return clock;
  return [] { return std::chrono::steady_clock::now(); };
}

}  // namespace

AuthCache::AuthCache(AuthCacheOptions options, SteadyClock clock, std::string hmac_key)
    : options_(options),
      clock_(or_steady(std::move(clock))),
      key_(hmac_key.empty() ? random_key() : std::move(hmac_key)),
      entries_(options.capacity) {}

AuthCache::~AuthCache() { OPENSSL_cleanse(key_.data(), key_.size()); }

std::string AuthCache::key_for(std::string_view authorization) const {
  std::string mac(EVP_MAX_MD_SIZE, '\0');
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(authorization.data()), authorization.size(),
       reinterpret_cast<unsigned char*>(mac.data()), &len);
  mac.resize(len);
  return mac;
}

std::optional<std::string> AuthCache::lookup(std::string_view authorization) {
  const std::string key = key_for(authorization);
  const auto now = clock_();
  std::lock_guard lock(mu_);
  Entry* e = entries_.find(key);
  if (e == nullptr) return std::nullopt;
  if (now >= e->expires) {
    entries_.erase(key);
    return std::nullopt;
  }
  return e->account_id;
}

void AuthCache::insert(std::string_view authorization, std::string account_id,
                       std::string account_name) {
  const std::string key = key_for(authorization);
  Entry e{std::move(account_id), std::move(account_name), clock_() + options_.ttl};
  std::lock_guard lock(mu_);
  entries_.put(key, std::move(e));
}

void AuthCache::drop_account(std::string_view account_id) {
  std::lock_guard lock(mu_);
  entries_.erase_if([&](const Entry& e) { return e.account_id == account_id; });
}

std::size_t AuthCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

FailureLimiter::FailureLimiter(LimiterOptions options, SteadyClock clock)
    : options_(options), clock_(or_steady(std::move(clock))), buckets_(options.max_keys) {
  options_.burst = std::max(1.0, options_.burst);
  options_.refill = std::max(options_.refill, std::chrono::milliseconds(1));
}

void FailureLimiter::refill(Bucket& b, std::chrono::steady_clock::time_point now) const {
  if (now <= b.updated) return;
  const double gained = std::chrono::duration<double>(now - b.updated) /
                        std::chrono::duration<double>(options_.refill);
  b.tokens = std::min(options_.burst, b.tokens + gained);
  b.updated = now;
}

std::chrono::milliseconds FailureLimiter::retry_after(const std::string& key) {
  const auto now = clock_();
  std::lock_guard lock(mu_);
  Bucket* b = buckets_.find(key);
  if (b == nullptr) return std::chrono::milliseconds(0);
  refill(*b, now);
  if (b->tokens >= 1.0) return std::chrono::milliseconds(0);
  const double wait_ms = (1.0 - b->tokens) * static_cast<double>(options_.refill.count());
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(wait_ms)));
}

void FailureLimiter::record_failure(const std::string& key) {
  const auto now = clock_();
  std::lock_guard lock(mu_);
  Bucket* b = buckets_.find(key);
  if (b == nullptr) b = &buckets_.put(key, Bucket{options_.burst, now});
  refill(*b, now);
  // Attempts admitted together may fail together: the bucket stays at zero, not below, so a
  // burst of concurrent failures waits one refill, not many.
  b->tokens = std::max(0.0, b->tokens - 1.0);
}

std::size_t FailureLimiter::size() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace berth::api
