#include "kube/event_recorder.h"

#include <cstdio>

#include "common/log.h"
#include "kube/status_error.h"

namespace berth::kube {
namespace {

using nlohmann::json;
using SteadyTime = std::chrono::steady_clock::time_point;

// The API server's limits (events.k8s.io validation): note 1 KiB, reason and action 128 bytes.
constexpr std::size_t kMaxNote = 1024;
constexpr std::size_t kMaxReasonOrAction = 128;

// `text` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string cut_utf8(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

std::string object_key(const ObjectReference& r) {
  if (!r.uid.empty()) return r.uid;
  return r.namespace_ + "/" + r.name;
}

std::string aggregation_key(const Event& e) {
  // Isomorphic events, as client-go's events recorder groups them; '\x1f' cannot occur in
  // these fields' meaningful content and keeps the parts apart.
  const char sep = '\x1f';
  return object_key(e.regarding) + sep + e.regarding.kind + sep + e.action + sep + e.reason + sep +
         e.type + sep + e.note;
}

Result<json> send_json(Transport& transport, const std::string& method, const std::string& target,
                       const std::string& content_type, const json& body,
                       std::chrono::milliseconds timeout) {
  Request request;
  request.method = method;
  request.target = target;
  request.content_type = content_type;
  request.body = body.dump();
  request.timeout = timeout;
  auto response = transport.send(request);
  if (!response) return response.take_error();
  if (response->status < 200 || response->status > 299)
    return status_error(response->status, response->body);
  json parsed = json::parse(response->body, nullptr, false);
  if (parsed.is_discarded())
    return make_error(ErrorCode::kInternal, "events: the server's answer is not JSON");
  return parsed;
}

std::string events_path(const std::string& ns) {
  return "/apis/events.k8s.io/v1/namespaces/" + ns + "/events";
}

}  // namespace

std::string format_micro_time(std::chrono::system_clock::time_point t) {
  // As core::format_rfc3339, but MicroTime always carries six fractional digits.
  using namespace std::chrono;
  const auto at = floor<microseconds>(t);
  const sys_days day = floor<days>(at);
  const year_month_day date{day};
  const hh_mm_ss<microseconds> time{at - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<int>(time.hours().count()),
                static_cast<int>(time.minutes().count()), static_cast<int>(time.seconds().count()),
                static_cast<int>(time.subseconds().count()));
  return buf;
}

ObjectReference regarding(const AppService& app) {
  ObjectReference r;
  r.api_version = AppService::kType.group + "/" + AppService::kType.version;
  r.kind = AppService::kType.kind;
  r.namespace_ = app.metadata.namespace_;
  r.name = app.metadata.name;
  r.uid = app.metadata.uid;
  r.resource_version = app.metadata.resource_version;
  return r;
}

EventRecorder::EventRecorder(Transport& transport, EventRecorderOptions options)
    : transport_(transport), options_(std::move(options)) {
  if (options_.start_thread) {
    thread_ = std::jthread([this](std::stop_token stop) { drain(stop); });
  }
}

EventRecorder::~EventRecorder() { shutdown(); }

void EventRecorder::shutdown() {
  if (!thread_.joinable()) return;
  {
    // One write timeout for what is queued: a shutdown must not wait on a dead API server for
    // every event in a full queue. What is left is dropped and counted.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, options_.request_timeout, [&] { return queue_.empty() && !busy_; });
    if (!queue_.empty()) {
      stats_.dropped_queue_full += queue_.size();
      log::warn("events: shutting down, queued events dropped", {{"count", queue_.size()}});
      queue_.clear();
    }
  }
  thread_.request_stop();
  thread_.join();
}

void EventRecorder::record(const ObjectReference& regarding, EventType type,
                           std::string_view reason, std::string_view action,
                           std::string_view note) {
  Pending p;
  p.at = options_.now();
  p.wall = options_.wall_now();
  Event& e = p.event;
  e.metadata.namespace_ = regarding.namespace_.empty() ? "default" : regarding.namespace_;
  e.reporting_controller = options_.reporting_controller;
  e.reporting_instance = options_.reporting_instance;
  e.action = cut_utf8(action, kMaxReasonOrAction);
  e.reason = cut_utf8(reason, kMaxReasonOrAction);
  e.note = cut_utf8(note, kMaxNote);
  e.type = type == EventType::kWarning ? "Warning" : "Normal";
  e.regarding = regarding;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.queue_capacity) {
      ++stats_.dropped_queue_full;
      log::warn(
          "events: queue full, event dropped",
          {{"namespace", regarding.namespace_}, {"name", regarding.name}, {"reason", e.reason}});
      return;
    }
    queue_.push_back(std::move(p));
  }
  cv_.notify_all();
}

void EventRecorder::drain(std::stop_token stop) {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, stop, [&] { return !queue_.empty(); });
    if (queue_.empty()) return;  // stop requested
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    write(std::move(p));
    lock.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

void EventRecorder::process_pending() {
  while (true) {
    Pending p;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) return;
      p = std::move(queue_.front());
      queue_.pop_front();
    }
    write(std::move(p));
  }
}

void EventRecorder::flush() {
  std::unique_lock lock(mu_);
  if (!thread_.joinable()) return;
  cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

EventRecorderStats EventRecorder::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool EventRecorder::allow(const std::string& key) {
  auto& limiter = limiters_[key];
  if (!limiter) {
    limiter = std::make_unique<RateLimiter>(options_.per_object_qps, options_.per_object_burst,
                                            [this] { return options_.now(); });
  }
  return limiter->reserve(std::chrono::steady_clock::duration::zero()).has_value();
}

void EventRecorder::forget_old(SteadyTime now) {
  for (auto it = series_.begin(); it != series_.end();) {
    if (now - it->second.last_seen > options_.aggregation_window) {
      it = series_.erase(it);
    } else {
      ++it;
    }
  }
}

bool EventRecorder::create_event(Pending& p, const std::string& key) {
  Event& e = p.event;
  // client-go's naming: the regarding object's name and the time in hex nanoseconds; the
  // counter keeps two events in one nanosecond apart.
  const auto nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(p.wall.time_since_epoch()).count() +
      static_cast<std::int64_t>(name_counter_++);
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "%llx", static_cast<unsigned long long>(nanos));
  e.metadata.name = (e.regarding.name.empty() ? "berth" : e.regarding.name) + "." + suffix;
  e.event_time = format_micro_time(p.wall);
  auto created = send_json(transport_, "POST", events_path(e.metadata.namespace_),
                           "application/json", e.to_json(), options_.request_timeout);
  if (!created) {
    std::lock_guard lock(mu_);
    ++stats_.failed;
    log::warn("events: creating an event failed", {{"namespace", e.regarding.namespace_},
                                                   {"name", e.regarding.name},
                                                   {"reason", e.reason},
                                                   {"error", created.error().message}});
    return false;
  }
  series_[key] = Series{e.metadata.namespace_, e.metadata.name, 1, 1, p.at};
  std::lock_guard lock(mu_);
  ++stats_.created;
  return true;
}

void EventRecorder::write(Pending p) {
  forget_old(p.at);
  const std::string key = aggregation_key(p.event);
  const bool allowed = allow(object_key(p.event.regarding));
  auto it = series_.find(key);
  if (it == series_.end()) {
    if (!allowed) {
      std::lock_guard lock(mu_);
      ++stats_.dropped_rate_limited;
      log::debug("events: rate limited, event dropped",
                 {{"namespace", p.event.regarding.namespace_},
                  {"name", p.event.regarding.name},
                  {"reason", p.event.reason}});
      return;
    }
    (void)create_event(p, key);
    return;
  }
  Series& s = it->second;
  ++s.count;
  s.last_seen = p.at;
  if (!allowed) {
    // Counted; the next repeat that gets through writes the count.
    std::lock_guard lock(mu_);
    ++stats_.dropped_rate_limited;
    return;
  }
  const json patch = {
      {"series", {{"count", s.count}, {"lastObservedTime", format_micro_time(p.wall)}}}};
  auto patched = send_json(transport_, "PATCH", events_path(s.namespace_) + "/" + s.name,
                           "application/merge-patch+json", patch, options_.request_timeout);
  if (patched) {
    s.written = s.count;
    std::lock_guard lock(mu_);
    ++stats_.aggregated;
    return;
  }
  if (patched.error().code == ErrorCode::kNotFound) {
    // The Event expired (the server's TTL) or was deleted: start a new one.
    series_.erase(it);
    (void)create_event(p, key);
    return;
  }
  std::lock_guard lock(mu_);
  ++stats_.failed;
  log::warn("events: updating an event series failed", {{"namespace", p.event.regarding.namespace_},
                                                        {"name", p.event.regarding.name},
                                                        {"reason", p.event.reason},
                                                        {"error", patched.error().message}});
}

}  // namespace berth::kube
