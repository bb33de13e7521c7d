#pragma once
// A small Prometheus metrics registry: counters, gauges and histograms with fixed label schemas,
// rendered in the text exposition format 0.0.4 (docs/metrics.md says why it is written here
// rather than taken from a library).
//
// Contract:
//   - A family (one metric name) is declared once with its type, help text and label names;
//     declaring it again with the same type and label names returns the same family, anything
//     else is a programming error and aborts (names are constants in the code, never input).
//   - Label values are chosen by the caller from a bounded set (a controller name, an outcome,
//     a route template, an HTTP status code): never an id, a name a user chose, a path or a
//     secret. As a safety net a family holds at most kMaxSeries series; further label values
//     all land in one series whose every label is "_overflow".
//   - family.with(values) takes the family's lock (a map lookup); the series it returns lives as
//     long as the registry, so hot paths look it up once and keep the reference. inc(), set(),
//     observe() on a series are lock-free atomics.
//   - render() takes a consistent-enough snapshot: each series is read atomically, a histogram's
//     _count is the sum of its buckets (so it always equals the +Inf bucket). Collect hooks
//     (on_collect) run first, on the rendering thread, to refresh gauges computed on demand.
//   - Thread-safe throughout. A registry must outlive every series reference and every hook.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace berth::metrics {

inline constexpr std::size_t kMaxSeries = 512;

class Counter {
 public:
  void inc(double by = 1.0) { value_.fetch_add(by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double by) { value_.fetch_add(by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `bounds`: strictly increasing upper bounds; +Inf is implicit.
  explicit Histogram(const std::vector<double>& bounds);
  void observe(double v);
  // Cumulative counts per bound, then the +Inf count (== total count).
  std::vector<std::uint64_t> cumulative() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1 (the +Inf one)
  std::atomic<double> sum_{0.0};
};

enum class Type { kCounter, kGauge, kHistogram };

// One metric name with its label schema and its series.
template <class Series>
class Family {
 public:
  // The series for these label values (one per label name, in declaration order). A wrong
  // number of values aborts: it is a programming error.
  Series& with(const std::vector<std::string>& values);
  // The series of a family without labels.
  Series& get() { return with({}); }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds)
      : name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(labels)),
        bounds_(std::move(bounds)) {}
  std::unique_ptr<Series> make() const;

  std::string name_;
  std::string help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Series>> series_;
};

// Bucket layouts of controller-runtime and client-go, so that dashboards written for them
// (histogram_quantile over these `le`s) read berth's metrics the same way.
// controller_runtime_reconcile_time_seconds: 5 ms .. 60 s.
std::vector<double> reconcile_time_buckets();
// workqueue_queue_duration_seconds / workqueue_work_duration_seconds: 10 ns .. 1000 s, x10.
std::vector<double> workqueue_duration_buckets();
// Prometheus' default buckets (5 ms .. 10 s), for request latencies.
std::vector<double> default_buckets();
// `count` bounds from `start`, each `factor` times the previous.
std::vector<double> exponential_buckets(double start, double factor, int count);

struct FamilyInfo {
  std::string name;
  Type type;
  std::string help;
  std::vector<std::string> labels;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> labels = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> labels = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<std::string> labels, std::vector<double> bounds);

  // A hook run at the start of every render(); unregistered when the returned handle is
  // destroyed (which waits for a render that is running it). Use it for values that are
  // cheaper to compute on a scrape than to keep current (e.g. the age of running work).
  class Hook {
   public:
    Hook() = default;
    Hook(Hook&& other) noexcept;
    Hook& operator=(Hook&& other) noexcept;
    ~Hook();

   private:
    friend class Registry;
    Hook(Registry* r, std::uint64_t id) : registry_(r), id_(id) {}
    Registry* registry_ = nullptr;
    std::uint64_t id_ = 0;
  };
  [[nodiscard]] Hook on_collect(std::function<void()> fn);

  // The whole registry in the text exposition format 0.0.4, families sorted by name.
  std::string render() const;
  // Every declared family, sorted by name (`berth-controller metrics-list`, tests).
  std::vector<FamilyInfo> families() const;

 private:
  struct Entry {
    Type type;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  Entry& declare(const std::string& name, Type type, const std::vector<std::string>& labels);
  void remove_hook(std::uint64_t id);

  mutable std::mutex mu_;  // families_
  std::map<std::string, Entry> families_;
  mutable std::mutex hooks_mu_;  // held while hooks run, so a Hook's destructor waits for them
  std::map<std::uint64_t, std::function<void()>> hooks_;
  std::uint64_t next_hook_ = 1;
};

// The process-wide registry that the composition roots serve on /metrics. Components take a
// Registry& (tests pass their own) and default to this one.
Registry& process_registry();

// Text-format helpers, exposed for tests.
std::string escape_label_value(std::string_view v);  // \ " and newline escaped
std::string escape_help(std::string_view v);         // \ and newline escaped
std::string format_value(double v);                  // +Inf, -Inf, NaN, shortest round-trip

}  // namespace berth::metrics
