#include "kube/progress_writer.h"

#include <algorithm>
#include <utility>

#include "common/log.h"

namespace berth::kube {

// --- ProgressThrottle ---------------------------------------------------------------------------

void ProgressThrottle::offer(const std::string& id,
                             const std::optional<core::RolloutProgress>& progress,
                             core::UnixMillis now) {
  if (!progress) {
    auto it = apps_.find(id);
    if (it == apps_.end()) return;
    App& a = it->second;
    // Nothing of this rollout reached status: a waiting report is simply never written.
    if (!a.shown) {
      apps_.erase(it);
      return;
    }
    a.waiting = true;
    a.next.reset();
    a.clear_due = now;
    a.clear_failures = 0;
    return;
  }
  App& a = apps_[id];
  a.waiting = true;
  a.next = progress;
}

core::UnixMillis ProgressThrottle::due(const App& a) const {
  if (!a.next) return a.clear_due;
  return a.shown ? a.written + interval_ms_ : 0;  // the first report of a rollout: at once
}

std::vector<ProgressThrottle::Write> ProgressThrottle::take_due(core::UnixMillis now) {
  std::vector<Write> out;
  for (auto it = apps_.begin(); it != apps_.end();) {
    App& a = it->second;
    if (!a.waiting || due(a) > now) {
      ++it;
      continue;
    }
    if (a.next) {
      out.push_back(Write{it->first, std::move(a.next), 0});
      a.next.reset();
      a.waiting = false;
      a.shown = true;
      a.written = now;
      ++it;
    } else {
      // A removal taken leaves nothing behind: the next rollout's first report writes at once.
      out.push_back(Write{it->first, std::nullopt, a.clear_failures});
      it = apps_.erase(it);
    }
  }
  return out;
}

void ProgressThrottle::failed(const Write& write, bool retry, core::UnixMillis now) {
  // A failed report may or may not have reached status; `shown` stays set so its removal is
  // still written. A later report (they come every second or so while pulling) replaces it.
  if (write.progress || !retry || write.attempt + 1 >= clear_attempts_) return;
  App& a = apps_[write.id];
  if (a.waiting) return;  // a newer state arrived meanwhile; it is written instead
  a.shown = true;
  a.waiting = true;
  a.next.reset();
  a.clear_due = now + interval_ms_;
  a.clear_failures = write.attempt + 1;
}

std::optional<core::UnixMillis> ProgressThrottle::next_due() const {
  std::optional<core::UnixMillis> next;
  for (const auto& [id, a] : apps_) {
    if (!a.waiting) continue;
    const core::UnixMillis d = due(a);
    if (!next || d < *next) next = d;
  }
  return next;
}

// --- ProgressWriter -----------------------------------------------------------------------------

ProgressWriter::ProgressWriter(WriteFn write, ProgressWriterOptions options)
    : write_(std::move(write)),
      options_(std::move(options)),
      throttle_(static_cast<core::UnixMillis>(options_.interval.count())) {}

ProgressWriter::~ProgressWriter() { stop(); }

void ProgressWriter::start() {
  std::lock_guard lock(mu_);
  if (worker_.joinable()) return;
  stopping_ = false;
  worker_ = std::thread([this] { run(); });
}

void ProgressWriter::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void ProgressWriter::report(const std::string& id,
                            const std::optional<core::RolloutProgress>& progress) {
  {
    std::lock_guard lock(mu_);
    throttle_.offer(id, progress, options_.now());
  }
  cv_.notify_one();
}

std::uint64_t ProgressWriter::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

void ProgressWriter::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const core::UnixMillis now = options_.now();
    std::vector<ProgressThrottle::Write> due = throttle_.take_due(now);
    if (due.empty()) {
      // Woken by report() or when the earliest waiting write is due; never sleeps longer than
      // one interval, so a wall-clock step cannot strand a write.
      auto wait = options_.interval;
      if (auto next = throttle_.next_due())
        wait =
            std::min(wait, std::chrono::milliseconds(std::max<core::UnixMillis>(1, *next - now)));
      else
        wait = std::chrono::hours(1);
      cv_.wait_for(lock, wait);
      continue;
    }
    for (const auto& w : due) {
      if (stopping_) break;
      lock.unlock();
      Status st = write_(w.id, w.progress);
      lock.lock();
      ++writes_;
      if (!st.ok()) {
        log::info("writing rollout progress failed",
                  {{"app", w.id}, {"removal", !w.progress}, {"error", st.error().message}});
        throttle_.failed(w, st.error().code != ErrorCode::kNotFound, options_.now());
      }
    }
  }
}

}  // namespace berth::kube
