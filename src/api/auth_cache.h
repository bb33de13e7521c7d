#pragma once
// The two pieces of state that make API authentication cheap and hard to abuse (docs/api.md,
// "Authentication"):
//
//   AuthCache: successful HTTP Basic verifications, so scrypt runs once per credential per TTL
//     instead of once per request. Keyed by HMAC-SHA256(per-process random key, Authorization
//     header): the map holds neither the header nor the password, and a memory dump of it is no
//     oracle for guessing passwords offline without the key. Entries expire after `ttl`, the
//     least recently used entry goes when `capacity` is reached, and drop_account() removes an
//     account's entries (each entry carries the account id and name for that).
//
//   FailureLimiter: a token bucket of failed attempts per key (a client address, or an account
//     name). `burst` failures are allowed at once, then one more every `refill`; retry_after()
//     says how long a key must wait (zero: it may try now). Bounded: beyond `max_keys` the least
//     recently touched bucket is forgotten.
//
// Both are thread-safe (one mutex each, held for a map operation, never while hashing more
// than one HMAC) and read time only through the clock they are given, so tests drive it.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace berth::api {

using SteadyClock = std::function<std::chrono::steady_clock::time_point()>;

// A map with least-recently-used eviction; not thread-safe (its owners lock).
template <class V>
class LruMap {
 public:
  explicit LruMap(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // The value, marked most recently used; nullptr when absent.
  V* find(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }
  // Inserts or replaces, evicting the least recently used entry beyond capacity.
  V& put(const std::string& key, V value) {
    if (V* v = find(key)) return *v = std::move(value);
    order_.emplace_front(key, std::move(value));
    index_.emplace(key, order_.begin());
    if (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return order_.front().second;
  }
  void erase(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    order_.erase(it->second);
    index_.erase(it);
  }
  template <class Pred>
  void erase_if(Pred pred) {
    for (auto it = order_.begin(); it != order_.end();) {
      if (pred(it->second)) {
        index_.erase(it->first);
        it = order_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::size_t size() const { return order_.size(); }

 private:
  using Entry = std::pair<std::string, V>;
  std::size_t capacity_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, typename std::list<Entry>::iterator> index_;
};

struct AuthCacheOptions {
  std::chrono::milliseconds ttl{60'000};
  std::size_t capacity = 4096;
};

class AuthCache {
 public:
  // `hmac_key` empty: 32 bytes from the system random number generator.
  AuthCache(AuthCacheOptions options, SteadyClock clock, std::string hmac_key = {});
  AuthCache(const AuthCache&) = delete;
  AuthCache& operator=(const AuthCache&) = delete;
  ~AuthCache();

  // The account id verified for exactly this Authorization value, while fresh.
  std::optional<std::string> lookup(std::string_view authorization);
  void insert(std::string_view authorization, std::string account_id, std::string account_name);
  // Every entry of this account goes: call it when the account's password changes or the
  // account is removed.
  void drop_account(std::string_view account_id);
  std::size_t size() const;
  // The map key for a header value: HMAC-SHA256 under this cache's key (raw 32 bytes).
  std::string key_for(std::string_view authorization) const;

 private:
  struct Entry {
    std::string account_id;
    std::string account_name;
    std::chrono::steady_clock::time_point expires;
  };
  AuthCacheOptions options_;
  SteadyClock clock_;
  std::string key_;
  mutable std::mutex mu_;
  LruMap<Entry> entries_;  // guarded by mu_
};

struct LimiterOptions {
  double burst = 10;                        // failures allowed back to back
  std::chrono::milliseconds refill{3'000};  // then one more per interval
  std::size_t max_keys = 10'000;
};

class FailureLimiter {
 public:
  FailureLimiter(LimiterOptions options, SteadyClock clock);

  // Zero when `key` may try now, else the wait until it may (rounded up to a millisecond).
  std::chrono::milliseconds retry_after(const std::string& key);
  void record_failure(const std::string& key);
  std::size_t size() const;

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point updated;
  };
  void refill(Bucket& b, std::chrono::steady_clock::time_point now) const;

  LimiterOptions options_;
  SteadyClock clock_;
  mutable std::mutex mu_;
  LruMap<Bucket> buckets_;  // guarded by mu_
};

}  // namespace berth::api
