#include "kube/rate_limiter.h"

#include <algorithm>

namespace berth::kube {

RateLimiter::RateLimiter(double qps, int burst, Now now)
    : qps_(qps), burst_(std::max(burst, 1)), now_(std::move(now)), tokens_(burst_), last_(now_()) {}

void RateLimiter::advance(Clock::time_point now) {
  if (now <= last_) return;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min<double>(burst_, tokens_ + elapsed * qps_);
  last_ = now;
}

std::optional<RateLimiter::Clock::duration> RateLimiter::reserve(Clock::duration max_wait) {
  if (qps_ <= 0) return Clock::duration::zero();
  std::lock_guard lock(mu_);
  advance(now_());
  const double after = tokens_ - 1;
  if (after >= 0) {
    tokens_ = after;
    return Clock::duration::zero();
  }
  const auto wait =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-after / qps_));
  if (wait > max_wait) return std::nullopt;
  tokens_ = after;
  return wait;
}

void RateLimiter::cancel_reservation() {
  if (qps_ <= 0) return;
  std::lock_guard lock(mu_);
  tokens_ = std::min<double>(burst_, tokens_ + 1);
}

Status RateLimiter::wait(Clock::time_point deadline, std::stop_token stop) {
  const auto now = now_();
  const auto wait = reserve(deadline > now ? deadline - now : Clock::duration::zero());
  if (!wait)
    return make_error(ErrorCode::kDeadlineExceeded,
                      "the client-side rate limit would delay the request past its deadline");
  if (*wait <= Clock::duration::zero()) return Status::Ok();
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  // Only a stop request ends the wait early; the predicate never becomes true otherwise.
  cv.wait_for(lock, stop, *wait, [] { return false; });
  if (stop.stop_requested()) {
    cancel_reservation();
    return make_error(ErrorCode::kUnavailable, "cancelled while waiting for the rate limiter");
  }
  return Status::Ok();
}

}  // namespace berth::kube
