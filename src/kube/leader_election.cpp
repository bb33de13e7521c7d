#include "kube/leader_election.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <random>

#include "common/hex.h"
#include "common/log.h"
#include "kube/event_recorder.h"
#include "kube/status_error.h"

namespace berth::kube {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

// client-go's JitterFactor: waits between attempts are stretched by up to 20 % at random, so
// candidates that started together do not keep colliding.
constexpr double kJitterFactor = 1.2;

class SystemClock : public ElectionClock {
 public:
  SteadyTime now() override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall_now() override {
    return std::chrono::system_clock::now();
  }
  bool sleep_until(SteadyTime until, std::stop_token stop) override {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    cv.wait_until(lock, stop, until, [] { return false; });
    return !stop.stop_requested();
  }
};

bool same_spec(const LeaseSpec& a, const LeaseSpec& b) {
  return a.holder_identity == b.holder_identity &&
         a.lease_duration_seconds == b.lease_duration_seconds && a.acquire_time == b.acquire_time &&
         a.renew_time == b.renew_time && a.lease_transitions == b.lease_transitions;
}

int whole_seconds(milliseconds d) {
  return static_cast<int>(std::max<std::int64_t>(1, (d.count() + 999) / 1000));
}

milliseconds jittered(milliseconds base) {
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> extra(0.0, kJitterFactor - 1.0);
  return milliseconds(
      static_cast<std::int64_t>(static_cast<double>(base.count()) * (1.0 + extra(rng))));
}

}  // namespace

std::shared_ptr<ElectionClock> system_election_clock() { return std::make_shared<SystemClock>(); }

std::string default_identity() {
  std::string base;
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') {
    base = pod;
  } else {
    char host[256] = {};
    base = ::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0' ? host : "berth";
  }
  // Not a secret, only distinct: random_device is enough.
  std::random_device rd;
  unsigned char bytes[4];
  for (auto& b : bytes) b = static_cast<unsigned char>(rd());
  return base + "_" + hex_lower(bytes, sizeof bytes);
}

Result<std::unique_ptr<LeaderElector>> LeaderElector::create(Transport& transport,
                                                             LeaderElectionOptions options,
                                                             LeaderCallbacks callbacks,
                                                             std::shared_ptr<ElectionClock> clock) {
  if (options.name.empty() || options.namespace_.empty())
    return make_error(ErrorCode::kInvalidArgument,
                      "leader election needs a lease name and namespace");
  if (options.lease_duration <= options.renew_deadline)
    return make_error(ErrorCode::kInvalidArgument,
                      "leader election: the lease duration must be longer than the renew deadline");
  if (static_cast<double>(options.renew_deadline.count()) <=
      kJitterFactor * static_cast<double>(options.retry_period.count()))
    return make_error(ErrorCode::kInvalidArgument,
                      "leader election: the renew deadline must exceed 1.2 retry periods");
  if (options.identity.empty()) options.identity = default_identity();
  if (!clock) clock = system_election_clock();
  return std::unique_ptr<LeaderElector>(
      new LeaderElector(transport, std::move(options), std::move(callbacks), std::move(clock)));
}

LeaderElector::LeaderElector(Transport& transport, LeaderElectionOptions options,
                             LeaderCallbacks callbacks, std::shared_ptr<ElectionClock> clock)
    : transport_(transport),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      clock_(std::move(clock)) {}

LeaderElector::~LeaderElector() { stop(); }

void LeaderElector::start() {
  thread_ = std::jthread([this](std::stop_token stop) { (void)run(stop); });
}

void LeaderElector::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

std::string LeaderElector::path(bool collection) const {
  std::string p = "/apis/coordination.k8s.io/v1/namespaces/" + options_.namespace_ + "/leases";
  if (!collection) p += "/" + options_.name;
  return p;
}

Result<json> LeaderElector::call(const std::string& method, const std::string& target,
                                 const json* body, SteadyTime deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - clock_->now());
  if (left <= milliseconds(0))
    return make_error(ErrorCode::kDeadlineExceeded, "leader election: no time left for the call");
  Request request;
  request.method = method;
  request.target = target;
  request.timeout = left;
  if (body != nullptr) {
    request.content_type = "application/json";
    request.body = body->dump();
  }
  auto response = transport_.send(request);
  if (!response) return response.take_error();
  if (response->status < 200 || response->status > 299)
    return status_error(response->status, response->body);
  json parsed = json::parse(response->body, nullptr, false);
  if (parsed.is_discarded())
    return make_error(ErrorCode::kInternal, "leader election: the server's answer is not JSON");
  return parsed;
}

void LeaderElector::observe(const Lease& lease) {
  std::string new_holder;
  bool changed_holder = false;
  {
    std::lock_guard lock(mu_);
    if (!observed_ || !same_spec(observed_->spec, lease.spec)) {
      // The spec changed: the lease is alive as of now, by our own clock.
      observed_time_ = clock_->now();
      changed_holder = !observed_ || observed_->spec.holder_identity != lease.spec.holder_identity;
      new_holder = lease.spec.holder_identity;
    }
    observed_ = lease;
  }
  if (changed_holder) {
    log::info("leader election: new holder observed",
              {{"lease", options_.namespace_ + "/" + options_.name},
               {"holder", new_holder},
               {"identity", options_.identity}});
    if (callbacks_.on_new_leader) callbacks_.on_new_leader(new_holder);
  }
}

bool LeaderElector::try_acquire_or_renew(SteadyTime deadline) {
  const std::string now_text = format_micro_time(clock_->wall_now());
  auto read = call("GET", path(false), nullptr, deadline);
  if (!read && read.error().code == ErrorCode::kNotFound) {
    Lease lease;
    lease.metadata.name = options_.name;
    lease.metadata.namespace_ = options_.namespace_;
    lease.spec.holder_identity = options_.identity;
    lease.spec.lease_duration_seconds = whole_seconds(options_.lease_duration);
    lease.spec.acquire_time = now_text;
    lease.spec.renew_time = now_text;
    const json body = lease.to_json();
    auto created = call("POST", path(true), &body, deadline);
    if (!created) {
      // 409 AlreadyExists: another candidate created it first; read it next time.
      log::debug("leader election: creating the lease failed",
                 {{"identity", options_.identity}, {"error", created.error().message}});
      return false;
    }
    auto typed = Lease::from_json(created.value());
    if (!typed) return false;
    observe(typed.value());
    return true;
  }
  if (!read) {
    log::warn("leader election: reading the lease failed",
              {{"identity", options_.identity}, {"error", read.error().message}});
    return false;
  }
  auto current = Lease::from_json(read.value());
  if (!current) {
    log::warn("leader election: the lease does not decode",
              {{"identity", options_.identity}, {"error", current.error().message}});
    return false;
  }
  observe(current.value());

  Lease next = current.value();
  const LeaseSpec& old = current->spec;
  const bool mine = old.holder_identity == options_.identity;
  if (!old.holder_identity.empty() && !mine) {
    // Held by someone else: ours only once it has gone unrenewed for its whole duration.
    const auto duration = old.lease_duration_seconds > 0
                              ? milliseconds(old.lease_duration_seconds * 1000LL)
                              : options_.lease_duration;
    std::lock_guard lock(mu_);
    if (observed_time_ + duration > clock_->now()) return false;
  }
  next.spec.holder_identity = options_.identity;
  next.spec.lease_duration_seconds = whole_seconds(options_.lease_duration);
  next.spec.renew_time = now_text;
  if (!mine) {
    next.spec.acquire_time = now_text;
    next.spec.lease_transitions = old.lease_transitions + 1;
  }
  const json body = next.to_json();  // carries the resourceVersion we read
  auto written = call("PUT", path(false), &body, deadline);
  if (!written) {
    log::debug("leader election: writing the lease failed",
               {{"identity", options_.identity}, {"error", written.error().message}});
    return false;
  }
  auto typed = Lease::from_json(written.value());
  if (!typed) return false;
  observe(typed.value());
  return true;
}

void LeaderElector::release() {
  std::optional<Lease> lease;
  {
    std::lock_guard lock(mu_);
    if (!observed_ || observed_->spec.holder_identity != options_.identity) return;
    lease = observed_;
  }
  const std::string now_text = format_micro_time(clock_->wall_now());
  lease->spec.holder_identity.clear();
  // client-go's release: a one-second lease that a standby may take at once.
  lease->spec.lease_duration_seconds = 1;
  lease->spec.acquire_time = now_text;
  lease->spec.renew_time = now_text;
  const json body = lease->to_json();
  auto written = call("PUT", path(false), &body, clock_->now() + options_.retry_period);
  if (!written) {
    // A 409 means someone else already wrote it; either way the standby takes over after
    // the lease expires, so this is only worth a line.
    log::warn("leader election: releasing the lease failed",
              {{"identity", options_.identity}, {"error", written.error().message}});
    return;
  }
  if (auto typed = Lease::from_json(written.value())) observe(typed.value());
  log::info(
      "leader election: lease released",
      {{"lease", options_.namespace_ + "/" + options_.name}, {"identity", options_.identity}});
}

void LeaderElector::set_leading(bool leading) {
  std::lock_guard lock(mu_);
  leading_ = leading;
  if (leading) last_renew_ = clock_->now();
}

bool LeaderElector::is_leader() const {
  std::lock_guard lock(mu_);
  return leading_ && clock_->now() < last_renew_ + options_.renew_deadline;
}

std::string LeaderElector::holder() const {
  std::lock_guard lock(mu_);
  return observed_ ? observed_->spec.holder_identity : std::string();
}

Status LeaderElector::run(std::stop_token stop) {
  const json lease_field = options_.namespace_ + "/" + options_.name;
  log::info("leader election: campaigning",
            {{"lease", lease_field}, {"identity", options_.identity}});
  // Acquire: every attempt bounded by the renew deadline, retried every jittered retry period.
  while (!stop.stop_requested()) {
    if (try_acquire_or_renew(clock_->now() + options_.renew_deadline)) break;
    if (!clock_->sleep_until(clock_->now() + jittered(options_.retry_period), stop)) break;
  }
  if (stop.stop_requested()) return Status::Ok();

  set_leading(true);
  log::info("leader election: started leading",
            {{"lease", lease_field}, {"identity", options_.identity}});
  if (callbacks_.on_started_leading) callbacks_.on_started_leading();

  bool lost = false;
  while (!stop.stop_requested()) {
    if (!clock_->sleep_until(clock_->now() + options_.retry_period, stop)) break;
    // One renewal round: retry every retry period until it succeeds or the deadline passes,
    // counted from the last successful renewal.
    SteadyTime deadline;
    {
      std::lock_guard lock(mu_);
      deadline = last_renew_ + options_.renew_deadline;
    }
    bool renewed = false;
    while (!stop.stop_requested() && clock_->now() < deadline) {
      if (try_acquire_or_renew(deadline)) {
        renewed = true;
        break;
      }
      const auto next = std::min(deadline, clock_->now() + options_.retry_period);
      if (!clock_->sleep_until(next, stop)) break;
    }
    if (stop.stop_requested()) break;
    if (!renewed) {
      lost = true;
      break;
    }
    set_leading(true);
  }

  {
    std::lock_guard lock(mu_);
    leading_ = false;
  }
  if (lost) {
    log::error("leader election: lost the lease; stopping all work",
               {{"lease", lease_field}, {"identity", options_.identity}});
  } else if (options_.release_on_cancel) {
    release();
  }
  if (callbacks_.on_stopped_leading) callbacks_.on_stopped_leading();
  if (lost) return make_error(ErrorCode::kUnavailable, "leader election lost");
  return Status::Ok();
}

}  // namespace berth::kube
