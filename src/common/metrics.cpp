#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace berth::metrics {
namespace {

[[noreturn]] void misuse(const char* what, const std::string& name) {
  // Metric names and label schemas are constants in the code: a clash is a bug to fix, not a
  // condition to handle at run time.
  std::fprintf(stderr, "metrics: %s: %s\n", what, name.c_str());
  std::abort();
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}` (with `extra` appended, e.g. le="0.5"); empty when there are no labels.
std::string label_block(const std::vector<std::string>& names,
                        const std::vector<std::string>& values, const std::string& extra = {}) {
  if (names.empty() && extra.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!names.empty()) out += ',';
    out += extra;
  }
  out += '}';
  return out;
}

void header(std::string& out, const std::string& name, const std::string& help, Type type) {
  out += "# HELP " + name + ' ' + escape_help(help) + '\n';
  out += "# TYPE " + name + ' ' + type_name(type) + '\n';
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "NaN";  // cannot happen with 64 bytes
  return std::string(buf, end);
}

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), counts_(new std::atomic<std::uint64_t>[bounds.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::observe(double v) {
  // Buckets are stored non-cumulatively (one increment per observation); render() sums them.
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  counts_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::cumulative() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

template <class Series>
std::unique_ptr<Series> Family<Series>::make() const {
  if constexpr (std::is_same_v<Series, Histogram>) {
    return std::make_unique<Histogram>(bounds_);
  } else {
    return std::make_unique<Series>();
  }
}

template <class Series>
Series& Family<Series>::with(const std::vector<std::string>& values) {
  if (values.size() != labels_.size()) misuse("wrong number of label values", name_);
  std::lock_guard lock(mu_);
  auto it = series_.find(values);
  if (it != series_.end()) return *it->second;
  std::vector<std::string> key = values;
  if (series_.size() >= kMaxSeries) {
    // Unbounded label values would grow memory and every scrape without limit; fold them.
    key.assign(labels_.size(), "_overflow");
    it = series_.find(key);
    if (it != series_.end()) return *it->second;
  }
  auto [pos, inserted] = series_.emplace(std::move(key), make());
  (void)inserted;
  return *pos->second;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

std::vector<double> exponential_buckets(double start, double factor, int count) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

std::vector<double> reconcile_time_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1,  0.15, 0.2,  0.25, 0.3,  0.35, 0.4,  0.45, 0.5, 0.6,
          0.7,   0.8,  0.9,   1.0,  1.25, 1.5,  1.75, 2.0,  2.5,  3.0,  3.5,  4.0,  4.5, 5.0,
          6.0,   7.0,  8.0,   9.0,  10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0};
}

std::vector<double> workqueue_duration_buckets() {
  // 1e-8 .. 1e3 written out rather than multiplied, so each `le` renders as a clean power of ten.
  return {1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0};
}

std::vector<double> default_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
}

Registry::Entry& Registry::declare(const std::string& name, Type type,
                                   const std::vector<std::string>& labels) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    Entry& e = families_[name];
    e.type = type;
    return e;
  }
  Entry& e = it->second;
  if (e.type != type) misuse("declared again with another type", name);
  const std::vector<std::string>* existing = nullptr;
  if (e.counter) existing = &e.counter->labels_;
  if (e.gauge) existing = &e.gauge->labels_;
  if (e.histogram) existing = &e.histogram->labels_;
  if (existing != nullptr && *existing != labels) misuse("declared again with other labels", name);
  return e;
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  Entry& e = declare(name, Type::kCounter, labels);
  if (!e.counter) e.counter.reset(new Family<Counter>(name, help, std::move(labels), {}));
  return *e.counter;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  Entry& e = declare(name, Type::kGauge, labels);
  if (!e.gauge) e.gauge.reset(new Family<Gauge>(name, help, std::move(labels), {}));
  return *e.gauge;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels,
                                       std::vector<double> bounds) {
  if (!std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end()) {
    misuse("histogram bounds are not strictly increasing", name);
  }
  std::lock_guard lock(mu_);
  Entry& e = declare(name, Type::kHistogram, labels);
  if (!e.histogram) {
    e.histogram.reset(new Family<Histogram>(name, help, std::move(labels), std::move(bounds)));
  } else if (e.histogram->bounds_ != bounds) {
    misuse("declared again with other buckets", name);
  }
  return *e.histogram;
}

Registry::Hook Registry::on_collect(std::function<void()> fn) {
  std::lock_guard lock(hooks_mu_);
  const std::uint64_t id = next_hook_++;
  hooks_.emplace(id, std::move(fn));
  return Hook(this, id);
}

void Registry::remove_hook(std::uint64_t id) {
  std::lock_guard lock(hooks_mu_);
  hooks_.erase(id);
}

Registry::Hook::Hook(Hook&& other) noexcept : registry_(other.registry_), id_(other.id_) {
  other.registry_ = nullptr;
}

Registry::Hook& Registry::Hook::operator=(Hook&& other) noexcept {
  if (this != &other) {
    if (registry_ != nullptr) registry_->remove_hook(id_);
    registry_ = other.registry_;
    id_ = other.id_;
    other.registry_ = nullptr;
  }
  return *this;
}

Registry::Hook::~Hook() {
  if (registry_ != nullptr) registry_->remove_hook(id_);
}

std::string Registry::render() const {
  {
    std::lock_guard lock(hooks_mu_);
    for (const auto& [id, fn] : hooks_) fn();
  }
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, e] : families_) {
    if (e.counter) {
      const auto& f = *e.counter;
      header(out, name, f.help_, Type::kCounter);
      std::lock_guard flock(f.mu_);
      for (const auto& [values, s] : f.series_) {
        out += name + label_block(f.labels_, values) + ' ' + format_value(s->value()) + '\n';
      }
    } else if (e.gauge) {
      const auto& f = *e.gauge;
      header(out, name, f.help_, Type::kGauge);
      std::lock_guard flock(f.mu_);
      for (const auto& [values, s] : f.series_) {
        out += name + label_block(f.labels_, values) + ' ' + format_value(s->value()) + '\n';
      }
    } else if (e.histogram) {
      const auto& f = *e.histogram;
      header(out, name, f.help_, Type::kHistogram);
      std::lock_guard flock(f.mu_);
      for (const auto& [values, s] : f.series_) {
        const auto counts = s->cumulative();
        for (std::size_t i = 0; i < f.bounds_.size(); ++i) {
          out += name + "_bucket" +
                 label_block(f.labels_, values, "le=\"" + format_value(f.bounds_[i]) + '"') + ' ' +
                 std::to_string(counts[i]) + '\n';
        }
        out += name + "_bucket" + label_block(f.labels_, values, "le=\"+Inf\"") + ' ' +
               std::to_string(counts.back()) + '\n';
        out += name + "_sum" + label_block(f.labels_, values) + ' ' + format_value(s->sum()) + '\n';
        out += name + "_count" + label_block(f.labels_, values) + ' ' +
               std::to_string(counts.back()) + '\n';
      }
    }
  }
  return out;
}

std::vector<FamilyInfo> Registry::families() const {
  std::lock_guard lock(mu_);
  std::vector<FamilyInfo> out;
  for (const auto& [name, e] : families_) {
    FamilyInfo info{name, e.type, {}, {}};
    if (e.counter) {
      info.help = e.counter->help_;
      info.labels = e.counter->labels_;
    } else if (e.gauge) {
      info.help = e.gauge->help_;
      info.labels = e.gauge->labels_;
    } else if (e.histogram) {
      info.help = e.histogram->help_;
      info.labels = e.histogram->labels_;
    }
    out.push_back(std::move(info));
  }
  return out;
}

Registry& process_registry() {
  // Never destroyed: series references handed out may be used by threads that outlive main's
  // locals (detached work at exit).
  static Registry* registry = new Registry();
  return *registry;
}

}  // namespace berth::metrics
