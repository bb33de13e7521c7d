#pragma once
// Internal to the agent link: the one I/O thread of a Server or Client and its io_context.
//
// Coroutines spawned on it hold shared_ptrs to their owners, so shutting down must destroy the
// io_context (and with it every suspended coroutine frame): otherwise the frames and their
// owners would keep each other alive.
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <thread>

namespace berth::agentlink::detail {

class IoThread {
 public:
  IoThread() { ioc_.emplace(1); }
  ~IoThread() { shut_down({}, {}); }
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  boost::asio::io_context& context() { return *ioc_; }
  void start();
  // Runs `closes` on the I/O thread, gives the closes it started a bounded time to finish,
  // then stops and joins the thread, runs `release` (the owner drops its I/O objects: they must
  // go before the io_context) and destroys what is still pending. Idempotent.
  void shut_down(std::function<void()> closes, std::function<void()> release);

 private:
  std::optional<boost::asio::io_context> ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace berth::agentlink::detail
