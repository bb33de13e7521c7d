#pragma once
// Rollout progress -> AppService status.progress, off the agent link's thread.
//
// The reconciler tells its progress listener every report an agent sends (runtime::Reconciler::
// set_progress_listener) and nullopt when a rollout's progress goes away. Each write to the API
// server is a request with a deadline of seconds, so it must not run on the thread that reads
// every agent's messages, and must not happen for every report. ProgressWriter takes the calls
// at once (report(): memory only), and one worker thread writes them:
//
//   - per app at most one write per `interval` (3 s): reports in between replace each other and
//     only the latest is written when the interval is over;
//   - a removal (nullopt) is written at once, after any write of that app already under way, and
//     replaces a report still waiting: progress written before the final status never survives
//     it, and a report that waits is never written after it;
//   - a removal for an app that has nothing written is dropped (no request);
//   - a failed removal is retried (every interval, a few times) unless the app is gone.
//
// ProgressThrottle is the decision part without thread or clock (the unit tests drive it with
// their own times); ProgressWriter adds the worker and the clock.
//
// Threading: every ProgressWriter method is safe from any thread; the write function runs on
// the worker only, one app at a time. ProgressThrottle is not synchronised.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "core/progress.h"

namespace berth::kube {

class ProgressThrottle {
 public:
  struct Write {
    std::string id;
    std::optional<core::RolloutProgress> progress;  // nullopt: remove status.progress
    int attempt = 0;                                // a removal's earlier failed attempts
  };

  explicit ProgressThrottle(core::UnixMillis interval_ms, int clear_attempts = 5)
      : interval_ms_(interval_ms), clear_attempts_(clear_attempts) {}

  // The latest state of app `id` at `now`.
  void offer(const std::string& id, const std::optional<core::RolloutProgress>& progress,
             core::UnixMillis now);
  // The writes due at `now` (each app at most once), taken: they count as written at `now`.
  std::vector<Write> take_due(core::UnixMillis now);
  // After a taken write failed: a removal is offered again (due one interval later) unless
  // `retry` is false or its attempts are used up; a failed report is not (a later one follows).
  void failed(const Write& write, bool retry, core::UnixMillis now);
  // When the earliest waiting write is due; nullopt when none waits.
  std::optional<core::UnixMillis> next_due() const;
  // Apps with any state (written progress or a waiting write), for tests.
  std::size_t tracked() const { return apps_.size(); }

 private:
  struct App {
    bool shown = false;            // progress is (or may be) in status
    core::UnixMillis written = 0;  // when the last report was taken
    bool waiting = false;
    std::optional<core::RolloutProgress> next;  // valid when waiting
    core::UnixMillis clear_due = 0;             // a waiting removal is due then
    int clear_failures = 0;
  };
  core::UnixMillis due(const App& a) const;

  core::UnixMillis interval_ms_;
  int clear_attempts_;
  std::map<std::string, App> apps_;
};

struct ProgressWriterOptions {
  std::chrono::milliseconds interval{3000};
  std::function<core::UnixMillis()> now;  // the wall clock (system_now)
};

class ProgressWriter {
 public:
  using WriteFn =
      std::function<Status(const std::string& id, const std::optional<core::RolloutProgress>&)>;
  ProgressWriter(WriteFn write, ProgressWriterOptions options);
  ~ProgressWriter();  // stop()
  ProgressWriter(const ProgressWriter&) = delete;
  ProgressWriter& operator=(const ProgressWriter&) = delete;

  void start();
  // Ends the worker after the write under way; writes still waiting are dropped (the process
  // is ending; the next leader's status writes start from the objects).
  void stop();
  // Never blocks on the network: the listener to hand to Reconciler::set_progress_listener.
  void report(const std::string& id, const std::optional<core::RolloutProgress>& progress);
  // Writes attempted so far (for tests and the benchmark).
  std::uint64_t writes() const;

 private:
  void run();

  WriteFn write_;
  ProgressWriterOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  ProgressThrottle throttle_;
  bool stopping_ = false;
  std::uint64_t writes_ = 0;
  std::thread worker_;
};

}  // namespace berth::kube
