#pragma once
// Time source for the runtime. The real clock is steady (monotonic) time; tests use ManualClock
// and advance it explicitly, so nothing in a unit test depends on wall time.
#include <atomic>
#include <chrono>

namespace berth::runtime {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

// Thread-safe manual clock that starts at an arbitrary fixed point.
class ManualClock final : public Clock {
 public:
  TimePoint now() const override { return TimePoint(Duration(ticks_.load())); }
  void advance(Duration d) { ticks_.fetch_add(d.count()); }

 private:
  std::atomic<Duration::rep> ticks_{Duration(std::chrono::hours(1)).count()};
};

}  // namespace berth::runtime
