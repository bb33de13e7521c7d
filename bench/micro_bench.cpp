// berth-bench-micro: in-memory hot paths that every request or event touches.
//   - image reference parsing (core/image_ref.h): ns per parse of a typical reference against a
//     maximal 255-character one; the contract says linear in the input length, so the cost per
//     byte should stay about the same;
//   - WorkQueue (runtime/workqueue.h): ns per add + get + done cycle with 10,000 distinct keys
//     in the queue against 100 keys (hash sets and a deque: the ratio should be about 1).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.h"
#include "core/image_ref.h"
#include "runtime/clock.h"
#include "runtime/workqueue.h"

using namespace berth;
using bench::Unit;

namespace {

// Median of `rounds` timings of `iters` parses, in ns per parse (batches hide clock overhead).
double ns_per_parse(const std::string& text, int iters, int rounds) {
  bench::Samples s;
  std::size_t sink = 0;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = bench::Clock::now();
    for (int i = 0; i < iters; ++i) {
      auto ref = core::parse_image_ref(text);
      if (!ref.ok()) bench::die("parse_image_ref", ref.error().message);
      sink += ref->repository.size();
    }
    s.add(bench::since_ns(t0) / iters);
  }
  if (sink == 0) bench::die("parse_image_ref", "nothing parsed");
  return s.p50();
}

std::string maximal_reference() {
  const std::string tail = ":v1.2.3-rc.1@sha256:" + std::string(64, 'c');
  std::string name = "registry.example.com:5000/acme";
  for (int i = 0; name.size() < 255 - tail.size(); ++i) name += "/component-" + std::to_string(i);
  name.resize(255 - tail.size());
  while (!name.empty() && (name.back() == '/' || name.back() == '-')) name.back() = 'x';
  return name + tail;
}

// ns per (add + get + done) with `keys` distinct keys queued at once; `total` cycles.
double ns_per_cycle(int keys, int total, int rounds) {
  std::vector<std::string> names;
  names.reserve(keys);
  for (int i = 0; i < keys; ++i) {
    names.push_back("3f2a6c1e-8b7d-4c2a-9e1f-" + std::to_string(100000000000LL + i));
  }
  bench::Samples s;
  for (int r = 0; r < rounds; ++r) {
    runtime::ManualClock clock;
    runtime::WorkQueue q(
        clock, runtime::BackoffPolicy{std::chrono::milliseconds(5), std::chrono::seconds(1), 0.0});
    int cycles = 0;
    const auto t0 = bench::Clock::now();
    while (cycles < total) {
      for (const auto& k : names) q.add(k);
      for (int i = 0; i < keys; ++i) {
        auto k = q.get();
        if (!k) bench::die("WorkQueue", "get returned nothing with keys queued");
        q.done(*k);
      }
      cycles += keys;
    }
    s.add(bench::since_ns(t0) / cycles);
  }
  return s.p50();
}

// ns per add of a key that is already queued (the duplicate-collapsing path), `keys` queued.
double ns_per_duplicate_add(int keys, int total) {
  runtime::ManualClock clock;
  runtime::WorkQueue q(clock, runtime::BackoffPolicy{});
  std::vector<std::string> names;
  for (int i = 0; i < keys; ++i) names.push_back("svc-" + std::to_string(1000000 + i));
  for (const auto& k : names) q.add(k);
  int n = 0;
  const auto t0 = bench::Clock::now();
  while (n < total) {
    for (const auto& k : names) q.add(k);
    n += keys;
  }
  const double ns = bench::since_ns(t0) / n;
  if (q.stats().depth != static_cast<std::size_t>(keys))
    bench::die("WorkQueue", "duplicates not collapsed");
  return ns;
}

}  // namespace

int main() {
  bench::Table t;

  t.section("image reference parsing (core::parse_image_ref)");
  const std::string typical = "ghcr.io/acme/api:1.2.3";
  const std::string maximal = maximal_reference();
  if (maximal.size() != 255) bench::die("maximal reference", "length is not 255");
  bench::progress("parsing " + std::to_string(typical.size()) + "- and " +
                  std::to_string(maximal.size()) + "-character references");
  const double typ = ns_per_parse(typical, 20000, 15);
  const double max = ns_per_parse(maximal, 4000, 15);
  t.figure("parse, typical (" + std::to_string(typical.size()) + " chars)", typ, Unit::kNanos,
           typical);
  const double len_ratio =
      static_cast<double>(maximal.size()) / static_cast<double>(typical.size());
  t.ratio("parse, maximal (255 chars) vs typical", max, typ, Unit::kNanos,
          std::round(len_ratio * 1.5), "linear");
  t.ratio("parse cost per char, maximal vs typical", max / maximal.size(), typ / typical.size(),
          Unit::kNanos, 3.0);

  t.section("work queue (runtime::WorkQueue)");
  bench::progress("work queue add/get/done with 100 and 10,000 keys");
  const double small = ns_per_cycle(100, 1'000'000, 5);
  const double large = ns_per_cycle(10'000, 1'000'000, 5);
  t.figure("add+get+done, 100 keys queued", small, Unit::kNanos);
  t.ratio("add+get+done, 10,000 keys vs 100", large, small, Unit::kNanos, 3.0);
  const double dup_small = ns_per_duplicate_add(100, 2'000'000);
  const double dup_large = ns_per_duplicate_add(10'000, 2'000'000);
  t.figure("duplicate add (collapsed), 100 keys queued", dup_small, Unit::kNanos);
  t.ratio("duplicate add, 10,000 keys vs 100", dup_large, dup_small, Unit::kNanos, 3.0);
  return 0;
}
