// LeaderElector against a scripted Lease endpoint (a FakeTransport that keeps one Lease with
// resourceVersion checks) and a fake clock: no sockets, no sleeping.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <regex>
#include <vector>

#include "kube/fake_transport.h"
#include "kube/leader_election.h"

namespace berth::kube {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeTransport;
using testing::json_response;
using testing::status_body;

const std::string kPath =
    "/apis/coordination.k8s.io/v1/namespaces/berth-system/leases/berth-controller";

// Time moves only when told, or when the elector sleeps (then it jumps to the wake-up time).
class FakeClock : public ElectionClock {
 public:
  std::chrono::steady_clock::time_point t{std::chrono::hours(1000)};
  std::chrono::system_clock::time_point wall{std::chrono::hours(500000)};
  // Called after each sleep; may request a stop through `stopper`.
  std::function<void()> after_sleep;
  int sleeps = 0;

  std::chrono::steady_clock::time_point now() override { return t; }
  std::chrono::system_clock::time_point wall_now() override { return wall; }
  bool sleep_until(std::chrono::steady_clock::time_point until, std::stop_token stop) override {
    if (stop.stop_requested()) return false;
    advance(until - t);
    ++sleeps;
    if (after_sleep) after_sleep();
    return !stop.stop_requested();
  }
  void advance(std::chrono::steady_clock::duration d) {
    if (d <= d.zero()) return;
    t += d;
    wall += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }
};

// One Lease, as the API server keeps it: create once, PUT only with the current
// resourceVersion.
struct LeaseServer {
  std::optional<json> lease;
  int rv = 1;
  std::function<std::optional<Response>(const Request&)> fault;  // answers instead, when set
  std::vector<Request> seen;

  Result<Response> handle(const Request& r) {
    seen.push_back(r);
    if (fault) {
      if (auto answer = fault(r)) return *answer;
    }
    if (r.method == "GET") {
      if (!lease) return json_response(404, status_body(404, "NotFound", "leases \"x\" not found"));
      return json_response(200, *lease);
    }
    json body = json::parse(r.body);
    if (r.method == "POST") {
      if (lease) return json_response(409, status_body(409, "AlreadyExists", "exists"));
      body["metadata"]["resourceVersion"] = std::to_string(++rv);
      lease = body;
      return json_response(201, body);
    }
    if (r.method == "PUT") {
      if (!lease || body["metadata"].value("resourceVersion", "") !=
                        (*lease)["metadata"]["resourceVersion"].get<std::string>())
        return json_response(409, status_body(409, "Conflict", "the object has been modified"));
      body["metadata"]["resourceVersion"] = std::to_string(++rv);
      lease = body;
      return json_response(200, body);
    }
    return json_response(405, status_body(405, "MethodNotAllowed", "no"));
  }
  json spec() const { return lease ? (*lease)["spec"] : json(); }
};

struct Candidate {
  FakeTransport transport;
  std::unique_ptr<LeaderElector> elector;
  std::vector<std::string> timeline;

  Candidate(LeaseServer& server, std::shared_ptr<FakeClock> clock, const std::string& id) {
    transport.on_send = [&server](const Request& r) { return server.handle(r); };
    LeaderElectionOptions options;
    options.identity = id;
    LeaderCallbacks callbacks;
    callbacks.on_started_leading = [this] { timeline.push_back("started"); };
    callbacks.on_stopped_leading = [this] { timeline.push_back("stopped"); };
    callbacks.on_new_leader = [this](const std::string& h) { timeline.push_back("holder:" + h); };
    auto made = LeaderElector::create(transport, options, callbacks, clock);
    REQUIRE(made.ok());
    elector = std::move(made.value());
  }
  bool attempt(FakeClock& clock) { return elector->try_acquire_or_renew(clock.now() + 10s); }
};

TEST_CASE("a candidate creates a missing Lease and holds it with controller-runtime's timings",
          "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  Candidate a(server, clock, "a");
  REQUIRE(a.attempt(*clock));
  CHECK(server.seen.at(1).method == "POST");
  const json spec = server.spec();
  CHECK(spec["holderIdentity"] == "a");
  CHECK(spec["leaseDurationSeconds"] == 15);
  CHECK_FALSE(spec.contains("leaseTransitions"));  // zero
  CHECK(std::regex_match(spec["renewTime"].get<std::string>(),
                         std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
  CHECK(spec["acquireTime"] == spec["renewTime"]);
  CHECK(a.elector->holder() == "a");
}

TEST_CASE("a live lease is taken only after it went unrenewed for its duration on the local clock",
          "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  Candidate a(server, clock, "a");
  Candidate b(server, clock, "b");
  REQUIRE(a.attempt(*clock));
  // The holder's clock is an hour behind: its renewTime says nothing to b, which goes by when
  // it saw the lease change.
  (*server.lease)["spec"]["renewTime"] = "2000-01-01T00:00:00.000000Z";
  CHECK_FALSE(b.attempt(*clock));
  CHECK(b.elector->holder() == "a");
  clock->advance(14s);
  CHECK_FALSE(b.attempt(*clock));
  clock->advance(1s);
  REQUIRE(b.attempt(*clock));
  CHECK(server.spec()["holderIdentity"] == "b");
  CHECK(server.spec()["leaseTransitions"] == 1);
}

TEST_CASE("a renewal seen by a standby restarts its wait for expiry", "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  Candidate a(server, clock, "a");
  Candidate b(server, clock, "b");
  REQUIRE(a.attempt(*clock));
  CHECK_FALSE(b.attempt(*clock));
  clock->advance(10s);
  REQUIRE(a.attempt(*clock));      // renewal
  CHECK_FALSE(b.attempt(*clock));  // b polls and sees it
  clock->advance(6s);              // 16 s since b first saw the lease, 6 s since it saw the renewal
  CHECK_FALSE(b.attempt(*clock));
  clock->advance(9s);
  CHECK(b.attempt(*clock));
}

TEST_CASE("renewing keeps acquireTime and leaseTransitions and moves renewTime", "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  Candidate a(server, clock, "a");
  REQUIRE(a.attempt(*clock));
  const json first = server.spec();
  clock->advance(2s);
  REQUIRE(a.attempt(*clock));
  const json second = server.spec();
  CHECK(second["acquireTime"] == first["acquireTime"]);
  CHECK(second["renewTime"] != first["renewTime"]);
  CHECK(second.value("leaseTransitions", 0) == first.value("leaseTransitions", 0));
}

TEST_CASE("a write answered 409 means another candidate won: not leader", "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  Candidate a(server, clock, "a");
  Candidate b(server, clock, "b");
  REQUIRE(a.attempt(*clock));
  clock->advance(20s);  // a's lease has expired for b
  CHECK_FALSE(b.attempt(*clock));
  clock->advance(16s);
  // Between b's read and its write a renews: the PUT carries a stale resourceVersion.
  server.fault = [&](const Request& r) -> std::optional<Response> {
    if (r.method != "PUT") return std::nullopt;
    server.fault = nullptr;
    (*server.lease)["metadata"]["resourceVersion"] = std::to_string(++server.rv);
    return std::nullopt;
  };
  CHECK_FALSE(b.attempt(*clock));
  CHECK(server.spec()["holderIdentity"] == "a");
  CHECK_FALSE(b.elector->is_leader());
}

TEST_CASE("a released lease is taken at once by a standby, counting a transition",
          "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  Candidate a(server, clock, "a");
  Candidate b(server, clock, "b");
  REQUIRE(a.attempt(*clock));
  CHECK_FALSE(b.attempt(*clock));
  a.elector->release();
  CHECK_FALSE(server.spec().contains("holderIdentity"));
  CHECK(server.spec()["leaseDurationSeconds"] == 1);
  REQUIRE(b.attempt(*clock));  // no time has passed
  CHECK(server.spec()["holderIdentity"] == "b");
  CHECK(server.spec()["leaseTransitions"] == 1);  // the release itself is no transition
}

TEST_CASE("a leader that cannot renew stops leading within the renew deadline, at once",
          "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  Candidate a(server, clock, "a");
  std::chrono::steady_clock::time_point last_renewal;
  std::chrono::steady_clock::time_point stopped_at;
  std::vector<std::chrono::milliseconds> timeouts;
  // After two renewals every request stalls until its own timeout, as a hung API server would.
  int renewals = 0;
  server.fault = [&](const Request& r) -> std::optional<Response> {
    if (r.method == "PUT" && renewals < 2) {
      ++renewals;
      last_renewal = clock->now();
      return std::nullopt;
    }
    if (renewals < 2) return std::nullopt;
    timeouts.push_back(r.timeout);
    clock->advance(r.timeout);
    return json_response(504, status_body(504, "Timeout", "stalled"));
  };
  LeaderCallbacks callbacks;
  bool was_leader_in_callback = true;
  LeaderElectionOptions options;
  options.identity = "a";
  LeaderElector* raw = nullptr;
  callbacks.on_stopped_leading = [&] {
    stopped_at = clock->now();
    was_leader_in_callback = raw->is_leader();
  };
  callbacks.on_started_leading = [] {};
  auto made = LeaderElector::create(a.transport, options, callbacks, clock);
  REQUIRE(made.ok());
  raw = made->get();
  std::stop_source never;
  const Status result = (*made)->run(never.get_token());
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::kUnavailable);
  CHECK(stopped_at <= last_renewal + 10s);
  CHECK(stopped_at >= last_renewal + 10s - 1ms);
  CHECK_FALSE(was_leader_in_callback);
  CHECK_FALSE((*made)->is_leader());
  for (auto t : timeouts) CHECK(t <= 10s);
}

TEST_CASE("a clean stop releases the lease and then calls on_stopped_leading", "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  std::vector<std::string> timeline;
  FakeTransport transport;
  transport.on_send = [&](const Request& r) { return server.handle(r); };
  std::stop_source stop;
  LeaderCallbacks callbacks;
  callbacks.on_started_leading = [&] { timeline.push_back("started"); };
  callbacks.on_stopped_leading = [&] {
    timeline.push_back(server.spec().contains("holderIdentity") ? "stopped-held" : "stopped");
  };
  clock->after_sleep = [&] {
    if (clock->sleeps == 3) stop.request_stop();
  };
  LeaderElectionOptions options;
  options.identity = "a";
  auto made = LeaderElector::create(transport, options, callbacks, clock);
  REQUIRE(made.ok());
  CHECK((*made)->run(stop.get_token()).ok());
  CHECK(timeline == std::vector<std::string>{"started", "stopped"});
  CHECK_FALSE(server.spec().contains("holderIdentity"));
  CHECK_FALSE((*made)->is_leader());
}

TEST_CASE("a standby keeps campaigning every retry period and leads once the lease expires",
          "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  Candidate a(server, clock, "a");
  REQUIRE(a.attempt(*clock));
  std::stop_source stop;
  std::vector<std::string> timeline;
  LeaderCallbacks callbacks;
  callbacks.on_started_leading = [&] {
    timeline.push_back("started");
    stop.request_stop();
  };
  callbacks.on_stopped_leading = [&] { timeline.push_back("stopped"); };
  FakeTransport transport;
  transport.on_send = [&](const Request& r) { return server.handle(r); };
  LeaderElectionOptions options;
  options.identity = "b";
  const auto begin = clock->now();
  auto made = LeaderElector::create(transport, options, callbacks, clock);
  REQUIRE(made.ok());
  CHECK((*made)->run(stop.get_token()).ok());
  CHECK(timeline == std::vector<std::string>{"started", "stopped"});
  CHECK(clock->now() - begin >= 15s);
  CHECK(clock->now() - begin <= 15s + 3s);  // one jittered retry period at most after expiry
  CHECK(clock->sleeps >= 7);
}

TEST_CASE("is_leader turns false once the last renewal is older than the renew deadline",
          "[kube][leader]") {
  LeaseServer server;
  auto clock = std::make_shared<FakeClock>();
  FakeTransport transport;
  transport.on_send = [&](const Request& r) { return server.handle(r); };
  std::stop_source stop;
  bool before = false;
  bool after = true;
  LeaderElector* raw = nullptr;
  LeaderCallbacks callbacks;
  callbacks.on_started_leading = [&] {
    before = raw->is_leader();
    clock->advance(10s);  // the election thread is stuck, nothing renews
    after = raw->is_leader();
    stop.request_stop();
  };
  LeaderElectionOptions options;
  options.identity = "a";
  auto made = LeaderElector::create(transport, options, callbacks, clock);
  REQUIRE(made.ok());
  raw = made->get();
  (void)(*made)->run(stop.get_token());
  CHECK(before);
  CHECK_FALSE(after);
}

TEST_CASE("timings that cannot work are refused", "[kube][leader]") {
  FakeTransport transport;
  LeaderElectionOptions options;
  options.renew_deadline = 15s;
  CHECK(LeaderElector::create(transport, options, {}).error().code == ErrorCode::kInvalidArgument);
  options = {};
  options.retry_period = 9s;  // 1.2 * 9 s > 10 s
  CHECK_FALSE(LeaderElector::create(transport, options, {}).ok());
  options = {};
  options.name = "";
  CHECK_FALSE(LeaderElector::create(transport, options, {}).ok());
  options = {};
  auto made = LeaderElector::create(transport, options, {});
  REQUIRE(made.ok());
  CHECK((*made)->options().lease_duration == 15s);
  CHECK((*made)->options().renew_deadline == 10s);
  CHECK((*made)->options().retry_period == 2s);
  CHECK((*made)->options().namespace_ == "berth-system");
  CHECK((*made)->options().name == "berth-controller");
}

TEST_CASE("the default identity is the pod name with a random suffix", "[kube][leader]") {
  ::setenv("POD_NAME", "berth-controller-7d9f-abcde", 1);
  const std::string one = default_identity();
  const std::string two = default_identity();
  ::unsetenv("POD_NAME");
  CHECK(one.rfind("berth-controller-7d9f-abcde_", 0) == 0);
  CHECK(one != two);
  CHECK_FALSE(default_identity().empty());
}

}  // namespace
}  // namespace berth::kube
