#pragma once
// A scripted Transport for unit tests: no sockets, no clocks.
//   - send(): answered by `on_send` when set, else by the next queued Response (kUnavailable
//     when the queue is empty); every Request is recorded.
//   - stream(): plays the next queued WatchScript (its status, then its lines), then either
//     returns (the server ended the stream) or, with `block_until_stop`, waits until the caller's
//     stop_token fires (a watch that stays open). An empty queue behaves like a stream that
//     stays open. Every Request is recorded.
// Threading: the test thread scripts it, the code under test (possibly an informer's thread)
// calls it; a mutex guards the state, and waits for the scripted streams are on a condvar.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube/transport.h"

namespace berth::kube::testing {

struct WatchScript {
  int status = 200;
  std::vector<std::string> lines;
  std::string error_body;  // for a non-2xx status
  bool block_until_stop = false;
  std::optional<Error> transport_error;  // returned instead of a status
};

inline std::string watch_line(const std::string& type, const nlohmann::json& object) {
  return nlohmann::json{{"type", type}, {"object", object}}.dump() + "\n";
}

inline Response json_response(int status, const nlohmann::json& body) {
  return Response{status, "application/json", body.dump()};
}

inline nlohmann::json status_body(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
          {"code", code},     {"reason", reason},   {"message", message}};
}

class FakeTransport : public Transport {
 public:
  std::function<Result<Response>(const Request&)> on_send;
  // Called (without the lock) when stream() finds no script queued; set before use.
  std::function<void()> on_idle;

  void push_response(Response response) {
    std::lock_guard lock(mu_);
    responses_.push_back(std::move(response));
  }
  void push_watch(WatchScript script) {
    {
      std::lock_guard lock(mu_);
      watches_.push_back(std::move(script));
    }
    cv_.notify_all();
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<Request> stream_requests() const {
    std::lock_guard lock(mu_);
    return stream_requests_;
  }

  Result<Response> send(const Request& request) override {
    std::function<Result<Response>(const Request&)> hook;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
      hook = on_send;
      if (!hook) {
        if (responses_.empty())
          return make_error(ErrorCode::kUnavailable, "fake: no response queued");
        Response response = std::move(responses_.front());
        responses_.pop_front();
        return response;
      }
    }
    return hook(request);
  }

  Result<int> stream(const Request& request,
                     const std::function<bool(std::string_view line)>& on_line,
                     std::stop_token stop, std::string* error_body) override {
    WatchScript script;
    {
      std::unique_lock lock(mu_);
      stream_requests_.push_back(request);
      // An empty queue is a watch that stays open with nothing to say: tell the test (which
      // may stop the caller), then wait for a script pushed later, or for stop.
      if (watches_.empty() && on_idle) {
        lock.unlock();
        on_idle();
        lock.lock();
      }
      cv_.wait(lock, stop, [&] { return !watches_.empty(); });
      if (watches_.empty()) return 200;
      script = std::move(watches_.front());
      watches_.pop_front();
    }
    if (script.transport_error) return *script.transport_error;
    if (script.status < 200 || script.status > 299) {
      if (error_body != nullptr) *error_body = script.error_body;
      return script.status;
    }
    for (const auto& line : script.lines) {
      if (stop.stop_requested()) return script.status;
      if (!on_line(line)) return script.status;
    }
    if (script.block_until_stop) {
      std::unique_lock lock(mu_);
      cv_.wait(lock, stop, [] { return false; });
    }
    return script.status;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Response> responses_;
  std::deque<WatchScript> watches_;
  std::vector<Request> requests_;
  std::vector<Request> stream_requests_;
};

}  // namespace berth::kube::testing
