#pragma once
// Helpers shared by the benchmark executables: latency samples, resident memory, running a
// measurement in a forked child (so each phase starts from a small, clean heap and its maxrss
// high-water mark is its own), and the result table.
//
// Contract: single-threaded callers only; run_child must be called while the process has no
// other threads (fork). Benchmarks report, they never fail on a figure: a ratio outside its
// expected bound prints a "CHECK" verdict and the exit status stays 0. A broken benchmark (a
// store call that fails, a run that does not converge) exits non-zero via bench::die.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace berth::bench {

using Clock = std::chrono::steady_clock;

inline double since_ns(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

// Per-call latencies in nanoseconds.
class Samples {
 public:
  void add(double ns) { ns_.push_back(ns); }
  std::size_t size() const { return ns_.size(); }
  double mean() const;
  double percentile(double q);  // q in [0, 1], nearest rank
  double p50() { return percentile(0.50); }
  double p99() { return percentile(0.99); }

 private:
  std::vector<double> ns_;
  bool sorted_ = false;
};

// Calls fn(i) n times, timing each call.
template <class Fn>
Samples sample(int n, Fn&& fn) {
  Samples s;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    fn(i);
    s.add(since_ns(t0));
  }
  return s;
}

// Peak resident set (getrusage ru_maxrss) and current resident set (/proc/self/statm), bytes.
std::int64_t maxrss_bytes();
std::int64_t rss_bytes();

// Named figures a phase hands back to the parent.
using Figures = std::map<std::string, double>;

// Runs fn in a forked child and returns the figures it filled in. Progress lines the child
// writes to stderr pass through. A child that exits non-zero or is killed ends the benchmark.
Figures run_child(const std::string& what, const std::function<void(Figures&)>& fn);

[[noreturn]] void die(std::string_view what, std::string_view why);
void progress(std::string_view line);  // "bench: <line>" on stderr

// The result table. Every row is one figure; rows with a baseline print the ratio and a verdict
// ("scales: ratio 1.10 (<= 3 expected)" or "CHECK: ratio 7.20 (> 3 expected)").
enum class Unit { kNanos, kBytes, kCount, kPerSecond };
std::string format(double value, Unit unit);
// n with thousands separators: 12345 -> "12,345" (counts in section titles).
std::string thousands(int n);

struct Table {
  std::string title;
  void section(const std::string& name);
  // A figure without a baseline.
  void figure(const std::string& name, double value, Unit unit, const std::string& note = {});
  // value / baseline, judged against `limit` ("scales" when the ratio is at most `limit`, the
  // word `good` replaces "scales" for ratios that are overheads rather than scaling).
  void ratio(const std::string& name, double value, double baseline, Unit unit, double limit,
             const std::string& good = "scales");
  // value / baseline against a floor: "good: ratio 0.82 (>= 0.7 target)" or "CHECK: ratio 0.41
  // (< 0.7 target)". For throughputs measured against what the machine can do.
  void ratio_at_least(const std::string& name, double value, double baseline, Unit unit,
                      double floor);
};

// Exit status of a benchmark's --smoke run when a program it needs is missing (ctest's
// SKIP_RETURN_CODE, as the test suites use).
inline constexpr int kSkipped = 77;

// Whether an executable `name` is on PATH.
bool on_path(const std::string& name);

}  // namespace berth::bench
