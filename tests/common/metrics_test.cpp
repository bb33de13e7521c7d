#include "common/metrics.h"

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

using namespace berth::metrics;

namespace {
bool contains(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}
}  // namespace

TEST_CASE("a counter renders with HELP, TYPE and one line per label set", "[metrics]") {
  Registry r;
  auto& total = r.counter("demo_requests_total", "Requests served.", {"route", "code"});
  total.with({"/a/{id}", "200"}).inc();
  total.with({"/a/{id}", "200"}).inc(2);
  total.with({"/b", "404"}).inc();
  const std::string text = r.render();
  CHECK(contains(text, "# HELP demo_requests_total Requests served.\n"));
  CHECK(contains(text, "# TYPE demo_requests_total counter\n"));
  CHECK(contains(text, "demo_requests_total{route=\"/a/{id}\",code=\"200\"} 3\n"));
  CHECK(contains(text, "demo_requests_total{route=\"/b\",code=\"404\"} 1\n"));
}

TEST_CASE("a metric without labels renders without braces", "[metrics]") {
  Registry r;
  r.gauge("demo_leader", "1 when leading.").get().set(1);
  CHECK(contains(r.render(), "\ndemo_leader 1\n"));
}

TEST_CASE("a declared family with no series still says its HELP and TYPE", "[metrics]") {
  Registry r;
  r.counter("demo_unused_total", "Never touched.", {"x"});
  const std::string text = r.render();
  CHECK(contains(text, "# TYPE demo_unused_total counter\n"));
  CHECK_FALSE(contains(text, "demo_unused_total{"));
}

TEST_CASE("label values escape backslash, quote and newline, help escapes backslash and newline",
          "[metrics]") {
  CHECK(escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  CHECK(escape_help("x\\y\nz \"q\"") == "x\\\\y\\nz \"q\"");
  Registry r;
  r.counter("demo_escaped_total", "Line one\nline two.", {"v"}).with({"say \"hi\"\n"}).inc();
  const std::string text = r.render();
  CHECK(contains(text, "# HELP demo_escaped_total Line one\\nline two.\n"));
  CHECK(contains(text, "demo_escaped_total{v=\"say \\\"hi\\\"\\n\"} 1\n"));
}

TEST_CASE("values render as Prometheus expects: integers plainly, infinities and NaN by name",
          "[metrics]") {
  CHECK(format_value(0) == "0");
  CHECK(format_value(42) == "42");
  CHECK(format_value(0.25) == "0.25");
  CHECK(format_value(1e-8) == "1e-08");
  CHECK(format_value(1.0 / 0.0) == "+Inf");
  CHECK(format_value(-1.0 / 0.0) == "-Inf");
  CHECK(format_value(0.0 / 0.0) == "NaN");
}

TEST_CASE("a histogram renders cumulative buckets, +Inf, _sum and _count", "[metrics]") {
  Registry r;
  auto& h = r.histogram("demo_seconds", "Latency.", {"route"}, {0.1, 0.5, 1});
  auto& s = h.with({"/x"});
  s.observe(0.05);
  s.observe(0.1);  // on a bound: counted in that bucket (le is "less or equal")
  s.observe(0.7);
  s.observe(3);
  const std::string text = r.render();
  CHECK(contains(text, "# TYPE demo_seconds histogram\n"));
  CHECK(contains(text, "demo_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"));
  CHECK(contains(text, "demo_seconds_bucket{route=\"/x\",le=\"0.5\"} 2\n"));
  CHECK(contains(text, "demo_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"));
  CHECK(contains(text, "demo_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"));
  CHECK(contains(text, "demo_seconds_sum{route=\"/x\"} 3.85\n"));
  CHECK(contains(text, "demo_seconds_count{route=\"/x\"} 4\n"));
}

TEST_CASE("the bucket layouts are controller-runtime's and client-go's", "[metrics]") {
  const auto reconcile = reconcile_time_buckets();
  REQUIRE(reconcile.size() == 40);
  CHECK(reconcile.front() == 0.005);
  CHECK(reconcile.back() == 60.0);
  const auto queue = workqueue_duration_buckets();
  REQUIRE(queue.size() == 12);
  CHECK(queue.front() == 1e-8);
  CHECK(queue.back() == 1000.0);
  CHECK(exponential_buckets(1, 2, 4) == std::vector<double>{1, 2, 4, 8});
}

TEST_CASE("declaring a family again returns the same series", "[metrics]") {
  Registry r;
  r.counter("demo_total", "x", {"a"}).with({"1"}).inc();
  r.counter("demo_total", "x", {"a"}).with({"1"}).inc();
  CHECK(r.counter("demo_total", "x", {"a"}).with({"1"}).value() == 2);
  REQUIRE(r.families().size() == 1);
  CHECK(r.families()[0].labels == std::vector<std::string>{"a"});
}

TEST_CASE("label values beyond the series limit fold into one _overflow series", "[metrics]") {
  Registry r;
  auto& f = r.counter("demo_many_total", "x", {"v"});
  for (std::size_t i = 0; i < kMaxSeries + 10; ++i) f.with({std::to_string(i)}).inc();
  const std::string text = r.render();
  CHECK(contains(text, "demo_many_total{v=\"_overflow\"} 10\n"));
  CHECK_FALSE(contains(text, "demo_many_total{v=\"" + std::to_string(kMaxSeries + 5) + "\"}"));
}

TEST_CASE("collect hooks run on render and stop when their handle goes away", "[metrics]") {
  Registry r;
  auto& g = r.gauge("demo_computed", "x");
  int calls = 0;
  {
    auto hook = r.on_collect([&] {
      ++calls;
      g.get().set(7);
    });
    CHECK(contains(r.render(), "\ndemo_computed 7\n"));
  }
  (void)r.render();
  CHECK(calls == 1);
}

TEST_CASE("counters and histograms lose no update under concurrent writers", "[metrics]") {
  Registry r;
  auto& c = r.counter("demo_concurrent_total", "x").get();
  auto& h = r.histogram("demo_concurrent_seconds", "x", {}, {1}).get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        h.observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(c.value() == 40000);
  CHECK(h.cumulative().back() == 40000);
  CHECK(h.sum() == 20000);
}
