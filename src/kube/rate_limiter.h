#pragma once
// Client-side rate limiting as client-go does it (flowcontrol's token bucket, itself
// golang.org/x/time/rate): the bucket holds at most `burst` tokens, starts full and refills at
// `qps` tokens a second. Every request takes one token. When none is left the request waits
// until its token will have accrued; tokens go negative, so waiting callers queue in the order
// they asked and a burst of callers is spread at exactly 1/qps apart. qps <= 0 turns limiting
// off (every reservation is immediate).
//
// Threading: every member may be called from any thread. The clock is injected so the
// arithmetic can be tested without time passing.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>

#include "common/result.h"

namespace berth::kube {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  RateLimiter(
      double qps, int burst, Now now = [] { return Clock::now(); });

  // Takes one token and returns how long the caller must wait before using it (zero when one
  // was in the bucket). When that wait would be longer than `max_wait` nothing is taken and
  // the result is nullopt (as x/time/rate's Wait refuses a wait past the context's deadline).
  std::optional<Clock::duration> reserve(Clock::duration max_wait);

  // Gives back a token reserved but not used (the caller gave up while waiting).
  void cancel_reservation();

  // reserve() and then sleep out the wait. kDeadlineExceeded when the wait would pass
  // `deadline` (nothing is taken); kUnavailable when `stop` is requested while waiting (the
  // token is given back).
  Status wait(Clock::time_point deadline, std::stop_token stop = {});

  double qps() const { return qps_; }
  int burst() const { return burst_; }

 private:
  void advance(Clock::time_point now);

  const double qps_;
  const int burst_;
  const Now now_;
  std::mutex mu_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace berth::kube
