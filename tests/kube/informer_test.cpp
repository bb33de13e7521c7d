// The informer against a scripted transport, run on the test thread: the transport stops the
// loop when its script is used up (on_idle), and backoff sleeps are recorded, not slept.
#include <future>

#include <catch2/catch.hpp>

#include "kube/fake_transport.h"
#include "kube/informer.h"

namespace berth::kube {
namespace {

using nlohmann::json;
using testing::FakeTransport;
using testing::json_response;
using testing::status_body;
using testing::watch_line;
using testing::WatchScript;

const ResourceType kApps{"berth.dev", "v1alpha1", "appservices", "AppService", true};

json obj(const std::string& ns, const std::string& name, const std::string& rv) {
  return {{"metadata", {{"name", name}, {"namespace", ns}, {"resourceVersion", rv}}}};
}

json list_body(const std::string& rv, std::vector<json> items, const std::string& cont = "") {
  json body = {{"metadata", {{"resourceVersion", rv}}}, {"items", items}};
  if (!cont.empty()) body["metadata"]["continue"] = cont;
  return body;
}

std::string query_value(const std::string& target, const std::string& key) {
  const auto at = target.find(key + "=");
  if (at == std::string::npos) return {};
  const auto start = at + key.size() + 1;
  return target.substr(start, target.find('&', start) - start);
}

// Records what handlers saw, as "add ns/name@rv", "update ...", "delete ...".
struct Recorder {
  std::vector<std::string> events;
  InformerHandlers handlers() {
    auto name = [](const json& o) {
      return o["metadata"]["namespace"].get<std::string>() + "/" +
             o["metadata"]["name"].get<std::string>() + "@" +
             o["metadata"]["resourceVersion"].get<std::string>();
    };
    return {[this, name](const json& o) { events.push_back("add " + name(o)); },
            [this, name](const json&, const json& o) { events.push_back("update " + name(o)); },
            [this, name](const json& o) { events.push_back("delete " + name(o)); }};
  }
};

struct Harness {
  FakeTransport transport;
  ResourceClient client{transport, kApps};
  std::stop_source stop;
  std::vector<std::chrono::milliseconds> sleeps;
  Recorder recorder;

  Harness() {
    transport.on_idle = [this] { stop.request_stop(); };
  }
  InformerOptions options() {
    InformerOptions o;
    o.sleep = [this](std::chrono::milliseconds d, std::stop_token s) {
      sleeps.push_back(d);
      return !s.stop_requested();
    };
    o.random = [] { return 0.5; };
    return o;
  }
};

TEST_CASE("the informer lists every page, then watches from the list's version",
          "[kube][informer]") {
  Harness h;
  h.transport.push_response(json_response(200, list_body("10", {obj("a", "one", "3")}, "p2")));
  h.transport.push_response(json_response(200, list_body("10", {obj("b", "two", "4")})));
  h.transport.push_watch({200, {watch_line("ADDED", obj("a", "three", "11"))}, "", true});
  InformerOptions options = h.options();
  options.page_size = 1;
  // The watch stays open, so the last add handler stops the loop.
  InformerHandlers handlers = h.recorder.handlers();
  auto on_add = handlers.on_add;
  handlers.on_add = [&, on_add](const json& o) {
    on_add(o);
    if (o["metadata"]["name"] == "three") h.stop.request_stop();
  };
  Informer informer2(h.client, options, handlers);
  CHECK_FALSE(informer2.has_synced());
  informer2.run(h.stop.get_token());

  CHECK(informer2.has_synced());
  CHECK(h.recorder.events ==
        std::vector<std::string>{"add a/one@3", "add b/two@4", "add a/three@11"});
  const auto watch = h.transport.stream_requests().at(0);
  CHECK(query_value(watch.target, "resourceVersion") == "10");
  CHECK(query_value(watch.target, "allowWatchBookmarks") == "true");
  CHECK(informer2.resource_version() == "11");
  CHECK(informer2.get("a", "one").has_value());
  CHECK_FALSE(informer2.get("b", "one").has_value());
  CHECK(informer2.list("a").size() == 2);
  CHECK(informer2.list("b").size() == 1);
  CHECK(informer2.list().size() == 3);
  CHECK(informer2.list("c").empty());
}

TEST_CASE("a bookmark advances the version the next watch resumes from", "[kube][informer]") {
  Harness h;
  h.transport.push_response(json_response(200, list_body("10", {})));
  h.transport.push_watch({200,
                          {watch_line("BOOKMARK", {{"kind", "AppService"},
                                                   {"metadata", {{"resourceVersion", "50"}}}})}});
  Informer informer(h.client, h.options(), h.recorder.handlers());
  informer.run(h.stop.get_token());
  CHECK(h.recorder.events.empty());
  const auto watches = h.transport.stream_requests();
  REQUIRE(watches.size() == 2);
  CHECK(query_value(watches[1].target, "resourceVersion") == "50");
  CHECK(informer.resource_version() == "50");
}

TEST_CASE("a watch that ends or fails is resumed from the last version seen, without a relist",
          "[kube][informer]") {
  Harness h;
  h.transport.push_response(json_response(200, list_body("10", {obj("a", "one", "9")})));
  // The server ends the stream after one event (timeout or dropped connection)...
  h.transport.push_watch({200, {watch_line("MODIFIED", obj("a", "one", "12"))}});
  // ...then the connection fails outright.
  WatchScript broken;
  broken.transport_error = make_error(ErrorCode::kUnavailable, "connection reset");
  h.transport.push_watch(broken);
  h.transport.push_watch({200, {watch_line("DELETED", obj("a", "one", "13"))}});
  Informer informer(h.client, h.options(), h.recorder.handlers());
  informer.run(h.stop.get_token());

  CHECK(h.recorder.events ==
        std::vector<std::string>{"add a/one@9", "update a/one@12", "delete a/one@13"});
  const auto watches = h.transport.stream_requests();
  REQUIRE(watches.size() == 4);
  CHECK(query_value(watches[0].target, "resourceVersion") == "10");
  CHECK(query_value(watches[1].target, "resourceVersion") == "12");
  CHECK(query_value(watches[2].target, "resourceVersion") == "12");
  CHECK(query_value(watches[3].target, "resourceVersion") == "13");
  CHECK(h.transport.requests().size() == 1);  // one list only
  CHECK_FALSE(informer.get("a", "one").has_value());
  CHECK(informer.list("a").empty());
}

TEST_CASE(
    "410 Gone relists: objects deleted while away are reported as deletes, changed ones as "
    "updates, new ones as adds",
    "[kube][informer]") {
  Harness h;
  const bool in_stream = GENERATE(false, true);
  INFO((in_stream ? "in-stream ERROR" : "HTTP 410"));
  h.transport.push_response(json_response(
      200,
      list_body("10", {obj("a", "kept", "1"), obj("a", "changed", "2"), obj("b", "gone", "3")})));
  if (in_stream) {
    h.transport.push_watch(
        {200, {watch_line("ERROR", status_body(410, "Expired", "too old resource version"))}});
  } else {
    h.transport.push_watch(
        {410, {}, status_body(410, "Expired", "too old resource version: 10 (40)").dump()});
  }
  h.transport.push_response(json_response(
      200,
      list_body("40", {obj("a", "kept", "1"), obj("a", "changed", "30"), obj("c", "new", "35")})));
  Informer informer(h.client, h.options(), h.recorder.handlers());
  informer.run(h.stop.get_token());

  CHECK(h.recorder.events == std::vector<std::string>{"add a/changed@2", "add a/kept@1",
                                                      "add b/gone@3", "delete b/gone@3",
                                                      "update a/changed@30", "add c/new@35"});
  CHECK(h.transport.requests().size() == 2);
  const auto watches = h.transport.stream_requests();
  REQUIRE(watches.size() == 2);
  CHECK(query_value(watches[1].target, "resourceVersion") == "40");
  CHECK(informer.list("b").empty());
  CHECK(informer.list().size() == 3);
  // A relist is not a failure: no backoff.
  CHECK(h.sleeps.empty());
}

TEST_CASE("errors are retried with a growing, jittered backoff that a success resets",
          "[kube][informer]") {
  Harness h;
  h.transport.push_response(json_response(500, status_body(500, "InternalError", "boom")));
  h.transport.push_response(json_response(429, status_body(429, "TooManyRequests", "slow down")));
  h.transport.push_response(json_response(200, list_body("10", {})));
  h.transport.push_watch({503, {}, status_body(503, "ServiceUnavailable", "busy").dump()});
  h.transport.push_watch({200, {watch_line("ADDED", obj("a", "one", "11"))}});
  h.transport.push_watch({503, {}, status_body(503, "ServiceUnavailable", "busy").dump()});
  InformerOptions options = h.options();
  options.backoff_initial = std::chrono::milliseconds(100);
  options.backoff_max = std::chrono::milliseconds(1000);
  Informer informer(h.client, options, h.recorder.handlers());
  informer.run(h.stop.get_token());

  // random() = 0.5: half of the delay plus a quarter. Two list failures (100, 200), the first
  // watch failure after a successful list starts again at 100, and so does the one after a
  // watch that delivered an event.
  using ms = std::chrono::milliseconds;
  CHECK(h.sleeps == std::vector<ms>{ms(75), ms(150), ms(75), ms(75)});
  CHECK(informer.has_synced());
}

TEST_CASE("the backoff doubles up to its maximum, its random part never below half",
          "[kube][informer]") {
  FakeTransport t;
  ResourceClient client(t, kApps);
  InformerOptions options;
  options.backoff_initial = std::chrono::milliseconds(800);
  options.backoff_max = std::chrono::seconds(30);
  Informer informer(client, options, {});
  using ms = std::chrono::milliseconds;
  CHECK(informer.backoff(0, 0.0) == ms(400));
  CHECK(informer.backoff(0, 1.0) == ms(800));
  CHECK(informer.backoff(1, 1.0) == ms(1600));
  CHECK(informer.backoff(3, 0.0) == ms(3200));
  CHECK(informer.backoff(10, 1.0) == ms(30000));
  CHECK(informer.backoff(100, 0.0) == ms(15000));
}

TEST_CASE("a watch that ends with no events waits before reopening", "[kube][informer]") {
  Harness h;
  h.transport.push_response(json_response(200, list_body("10", {})));
  h.transport.push_watch({200, {}});
  Informer informer(h.client, h.options(), h.recorder.handlers());
  informer.run(h.stop.get_token());
  CHECK(h.sleeps.size() == 1);
}

TEST_CASE("start runs the informer on its own thread and stop ends an open watch and joins",
          "[kube][informer]") {
  FakeTransport t;
  t.push_response(json_response(200, list_body("10", {obj("a", "one", "3")})));
  t.push_watch({200, {}, "", true});  // stays open until stopped
  ResourceClient client(t, kApps);
  std::promise<void> added;
  InformerHandlers handlers;
  handlers.on_add = [&](const json&) { added.set_value(); };
  Informer informer(client, {}, handlers);
  informer.start();
  added.get_future().wait();
  CHECK(informer.has_synced());
  CHECK(informer.get("a", "one").has_value());
  informer.stop();
  informer.stop();  // idempotent
  CHECK(t.stream_requests().size() <= 1);
}

}  // namespace
}  // namespace berth::kube

namespace berth::kube {
namespace {

TEST_CASE("handlers run after the cache has the change and may read it", "[kube][informer]") {
  Harness h;
  h.transport.push_response(json_response(200, list_body("10", {})));
  h.transport.push_watch(
      {200,
       {watch_line("ADDED", obj("a", "one", "11")), watch_line("ADDED", obj("a", "one", "12")),
        watch_line("DELETED", obj("a", "ghost", "13"))}});
  std::vector<std::string> seen;
  Informer* self = nullptr;
  InformerHandlers handlers;
  handlers.on_add = [&](const json& o) {
    auto cached = self->get("a", o["metadata"]["name"]);
    seen.push_back("add " + (cached ? (*cached)["metadata"]["resourceVersion"].get<std::string>()
                                    : std::string("missing")));
  };
  handlers.on_update = [&](const json& old_object, const json& o) {
    seen.push_back("update " + old_object["metadata"]["resourceVersion"].get<std::string>() + "->" +
                   o["metadata"]["resourceVersion"].get<std::string>() + " cached " +
                   (*self->get("a", "one"))["metadata"]["resourceVersion"].get<std::string>());
  };
  handlers.on_delete = [&](const json& o) {
    seen.push_back("delete " + o["metadata"]["name"].get<std::string>());
  };
  Informer informer(h.client, h.options(), handlers);
  self = &informer;
  informer.run(h.stop.get_token());
  // A second ADDED for a cached object is an update; a delete of an object the cache never
  // held is still reported (the server says it existed).
  CHECK(seen == std::vector<std::string>{"add 11", "update 11->12 cached 12", "delete ghost"});
  CHECK(informer.resource_version() == "13");
}

}  // namespace
}  // namespace berth::kube
