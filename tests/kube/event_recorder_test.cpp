// EventRecorder against a FakeTransport that answers like the API server, with an injected
// clock and no drain thread (process_pending() writes on the test thread).
#include <catch2/catch.hpp>

#include <atomic>
#include <regex>
#include <thread>

#include "kube/event_recorder.h"
#include "kube/fake_transport.h"
#include "kube/kube_itest_support.h"
#include "support/wait.h"

namespace berth::kube {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeTransport;
using testing::json_response;
using testing::status_body;

struct Fixture {
  FakeTransport transport;
  std::chrono::steady_clock::time_point t{std::chrono::hours(1000)};
  std::chrono::system_clock::time_point wall{std::chrono::hours(500000)};
  std::vector<Request> writes;
  std::function<std::optional<Response>(const Request&)> fault;
  std::unique_ptr<EventRecorder> recorder;

  explicit Fixture(EventRecorderOptions options = {}) {
    transport.on_send = [this](const Request& r) -> Result<Response> {
      writes.push_back(r);
      if (fault) {
        if (auto answer = fault(r)) return *answer;
      }
      json body = json::parse(r.body);
      return json_response(r.method == "POST" ? 201 : 200, body);
    };
    options.reporting_instance = "berth-controller-0_ab12";
    options.start_thread = false;
    options.now = [this] { return t; };
    options.wall_now = [this] { return wall; };
    recorder = std::make_unique<EventRecorder>(transport, options);
  }
  void advance(std::chrono::steady_clock::duration d) {
    t += d;
    wall += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }
  void record(const ObjectReference& ref, std::string_view reason, std::string_view note = "note",
              EventType type = EventType::kNormal) {
    recorder->record(ref, type, reason, "Deploy", note);
    recorder->process_pending();
  }
};

ObjectReference web() {
  AppService app;
  app.metadata.namespace_ = "shop";
  app.metadata.name = "web";
  app.metadata.uid = "0b7f6a52-1111-2222-3333-444455556666";
  app.metadata.resource_version = "42";
  return regarding(app);
}

TEST_CASE("an event carries the fields kubectl shows, regarding the AppService", "[kube][events]") {
  Fixture f;
  f.record(web(), "RolloutStarted", "deploying revision 3", EventType::kWarning);
  REQUIRE(f.writes.size() == 1);
  const Request& r = f.writes[0];
  CHECK(r.method == "POST");
  CHECK(r.target == "/apis/events.k8s.io/v1/namespaces/shop/events");
  const json e = json::parse(r.body);
  CHECK(e["apiVersion"] == "events.k8s.io/v1");
  CHECK(e["kind"] == "Event");
  CHECK(e["metadata"]["namespace"] == "shop");
  CHECK(e["metadata"]["name"].get<std::string>().rfind("web.", 0) == 0);
  CHECK(e["reportingController"] == "berth.dev/controller");
  CHECK(e["reportingInstance"] == "berth-controller-0_ab12");
  CHECK(e["action"] == "Deploy");
  CHECK(e["reason"] == "RolloutStarted");
  CHECK(e["note"] == "deploying revision 3");
  CHECK(e["type"] == "Warning");
  CHECK(std::regex_match(e["eventTime"].get<std::string>(),
                         std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
  CHECK(e["regarding"] == json{{"apiVersion", "berth.dev/v1alpha1"},
                               {"kind", "AppService"},
                               {"namespace", "shop"},
                               {"name", "web"},
                               {"uid", "0b7f6a52-1111-2222-3333-444455556666"},
                               {"resourceVersion", "42"}});
  CHECK_FALSE(e.contains("series"));
  CHECK(f.recorder->stats().created == 1);
}

TEST_CASE("MicroTime has six fractional digits", "[kube][events]") {
  const std::chrono::system_clock::time_point t{std::chrono::microseconds(1795813200000001)};
  CHECK(format_micro_time(t) == "2026-11-27T21:00:00.000001Z");
  CHECK(format_micro_time(std::chrono::system_clock::time_point{}) ==
        "1970-01-01T00:00:00.000000Z");
}

TEST_CASE("a repeat within the window is merged into one Event's series by a merge patch",
          "[kube][events]") {
  Fixture f;
  f.record(web(), "PullFailed");
  f.advance(1min);
  f.record(web(), "PullFailed");
  f.advance(5min);  // 5 minutes after the last one: still the same series
  f.record(web(), "PullFailed");
  REQUIRE(f.writes.size() == 3);
  const std::string name = json::parse(f.writes[0].body)["metadata"]["name"];
  for (int i = 1; i < 3; ++i) {
    CHECK(f.writes[i].method == "PATCH");
    CHECK(f.writes[i].content_type == "application/merge-patch+json");
    CHECK(f.writes[i].target == "/apis/events.k8s.io/v1/namespaces/shop/events/" + name);
  }
  const json last = json::parse(f.writes[2].body);
  CHECK(last["series"]["count"] == 3);
  CHECK(last["series"]["lastObservedTime"] == format_micro_time(f.wall));
  CHECK(f.recorder->stats().created == 1);
  CHECK(f.recorder->stats().aggregated == 2);
}

TEST_CASE("a repeat after the window starts a new Event", "[kube][events]") {
  Fixture f;
  f.record(web(), "PullFailed");
  f.advance(6min + 1s);
  f.record(web(), "PullFailed");
  REQUIRE(f.writes.size() == 2);
  CHECK(f.writes[1].method == "POST");
  CHECK(f.recorder->stats().created == 2);
}

TEST_CASE("events differing in reason, type, note or object are separate Events",
          "[kube][events]") {
  Fixture f;
  ObjectReference other = web();
  other.name = "api";
  other.uid = "another-uid";
  f.record(web(), "PullFailed");
  f.record(web(), "RolloutStarted");
  f.record(web(), "PullFailed", "note", EventType::kWarning);
  f.record(web(), "PullFailed", "another note");
  f.record(other, "PullFailed");
  for (const auto& w : f.writes) CHECK(w.method == "POST");
  CHECK(f.writes.size() == 5);
}

TEST_CASE("the note is cut at 1 KiB without splitting a UTF-8 character", "[kube][events]") {
  Fixture f;
  std::string note(1023, 'x');
  note += "\xC3\xA9 and more";  // a two-byte character across the limit
  f.record(web(), "Long", note);
  const std::string sent = json::parse(f.writes.at(0).body)["note"];
  CHECK(sent == std::string(1023, 'x'));
  f.record(web(), "Short", std::string(1024, 'y'));
  CHECK(json::parse(f.writes.at(1).body)["note"].get<std::string>().size() == 1024);
}

TEST_CASE("a crash loop on one object is rate limited, other objects are not", "[kube][events]") {
  EventRecorderOptions options;
  options.per_object_burst = 3;
  options.per_object_qps = 1.0 / 300.0;
  Fixture f(options);
  ObjectReference other = web();
  other.name = "api";
  other.uid = "another-uid";
  for (int i = 0; i < 10; ++i) f.record(web(), "Crash" + std::to_string(i));
  CHECK(f.writes.size() == 3);
  CHECK(f.recorder->stats().dropped_rate_limited == 7);
  f.record(other, "Crash0");
  CHECK(f.writes.size() == 4);
  // The bucket refills at one per five minutes.
  f.advance(300s);
  f.record(web(), "Crash99");
  CHECK(f.writes.size() == 5);
}

TEST_CASE("repeats held back by the rate limit are counted in the next series write",
          "[kube][events]") {
  EventRecorderOptions options;
  options.per_object_burst = 2;
  Fixture f(options);
  for (int i = 0; i < 5; ++i) f.record(web(), "BackOff");
  REQUIRE(f.writes.size() == 2);  // the create and one patch
  f.advance(300s);                // one token, and still within the 6-minute window
  f.record(web(), "BackOff");
  REQUIRE(f.writes.size() == 3);
  CHECK(json::parse(f.writes[2].body)["series"]["count"] == 6);
}

TEST_CASE("a full queue drops the event, counts it and says so in the log", "[kube][events]") {
  EventRecorderOptions options;
  options.queue_capacity = 2;
  Fixture f(options);
  testing::LogCapture logs;
  for (int i = 0; i < 3; ++i)
    f.recorder->record(web(), EventType::kNormal, "R" + std::to_string(i), "Deploy", "n");
  CHECK(f.recorder->stats().dropped_queue_full == 1);
  CHECK(logs.count("events: queue full, event dropped") == 1);
  f.recorder->process_pending();
  CHECK(f.writes.size() == 2);
}

TEST_CASE("a series whose Event has gone starts a new Event", "[kube][events]") {
  Fixture f;
  f.record(web(), "PullFailed");
  f.fault = [&](const Request& r) -> std::optional<Response> {
    if (r.method == "PATCH") return json_response(404, status_body(404, "NotFound", "gone"));
    return std::nullopt;
  };
  f.record(web(), "PullFailed");
  REQUIRE(f.writes.size() == 3);
  CHECK(f.writes[1].method == "PATCH");
  CHECK(f.writes[2].method == "POST");
  CHECK(f.recorder->stats().created == 2);
}

TEST_CASE("a failed write is counted and logged, never thrown back at the caller",
          "[kube][events]") {
  Fixture f;
  testing::LogCapture logs;
  f.fault = [](const Request&) -> std::optional<Response> {
    return json_response(500, status_body(500, "InternalError", "boom"));
  };
  f.record(web(), "PullFailed");
  CHECK(f.recorder->stats().failed == 1);
  CHECK(logs.count("events: creating an event failed") == 1);
}

TEST_CASE("with the drain thread, record returns at once and flush sees every event written",
          "[kube][events]") {
  FakeTransport transport;
  std::mutex mu;
  int posts = 0;
  transport.on_send = [&](const Request& r) -> Result<Response> {
    std::lock_guard lock(mu);
    ++posts;
    return json_response(201, json::parse(r.body));
  };
  EventRecorder recorder(transport, {});
  for (int i = 0; i < 5; ++i)
    recorder.record(web(), EventType::kNormal, "Step" + std::to_string(i), "Deploy", "n");
  recorder.flush();
  std::lock_guard lock(mu);
  CHECK(posts == 5);
}

TEST_CASE("shutting down against a hung API server waits one request timeout, then drops the rest",
          "[kube][events]") {
  FakeTransport transport;
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  transport.on_send = [&](const Request& r) -> Result<Response> {
    entered = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return json_response(201, json::parse(r.body));
  };
  EventRecorderOptions options;
  options.request_timeout = std::chrono::milliseconds(50);
  EventRecorder recorder(transport, options);
  for (int i = 0; i < 3; ++i)
    recorder.record(web(), EventType::kNormal, "Step" + std::to_string(i), "Deploy", "n");
  REQUIRE(berth::testing::wait_until([&] { return entered.load(); }, 10s));
  std::thread stopper([&] { recorder.shutdown(); });
  // The two events still queued are dropped while the first write hangs.
  REQUIRE(
      berth::testing::wait_until([&] { return recorder.stats().dropped_queue_full == 2; }, 10s));
  release = true;
  stopper.join();
  CHECK(recorder.stats().created == 1);
  CHECK(transport.requests().size() == 1);
}

}  // namespace
}  // namespace berth::kube
